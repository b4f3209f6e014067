"""What ``crossgrad report`` and ``crossgrad diff`` accept: every input table checked in
full (a malformed or truncated one is exit 2 naming the file, never a PASS or a traceback),
incomplete runs refused unless allowed, repro copies named safely and kept inside repro/,
and never a file from outside the inputs' own folders copied."""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path

import pandas as pd
import pytest
from support import CASES

from harness.cli import main
from harness.report.repro import repro_name, write_repro
from harness.verdict.compare import RESULT_COLUMNS

SEED = (CASES / "seed.yaml").read_text(encoding="utf-8")
SECRET = "TOP-SECRET-3f9a1c"


def failing_case(name: str) -> str:
    """The seed case renamed, with a published output nobody reproduces: expect_failed."""
    text = SEED.replace("name: seed-1-1-1", f"name: {json.dumps(name)}")
    return text.replace("output: [[0.8506]]", "output: [[0.1234]]")


@pytest.fixture(scope="module")
def passing(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("passing")
    assert main(["run", str(CASES / "seed.yaml"), "-b", "numpy", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def failing(tmp_path_factory) -> Path:
    """A failing run of two case files that share a folder name and a file name."""
    root = tmp_path_factory.mktemp("failing")
    for folder, name in (("a", "-h"), ("b", "--out")):
        (root / folder / "x").mkdir(parents=True)
        (root / folder / "x" / "c.yaml").write_text(failing_case(name), encoding="utf-8")
    out = root / "report"
    files = [str(root / "a" / "x" / "c.yaml"), str(root / "b" / "x" / "c.yaml")]
    assert main(["run", *files, "-b", "numpy", "--out", str(out)]) == 1
    return out


def no_traceback(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# --- repro names and commands ---------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "/c.yaml",  # at the filesystem root: "__".join(parts[-2:]) gave "/__c.yaml"
        "/",
        "x/../..",
        "../../c.yaml",
        "/tmp/.hidden/.c.yaml",
        "/tmp/-rf/-h.yaml",
        "/tmp/a b/c;rm -rf ~.yaml",
        "/tmp/x/" + "y" * 400 + ".yaml",
        "/tmp/repro/..",
    ],
)
def test_a_repro_name_is_a_plain_file_name_inside_repro(source, tmp_path):
    name = repro_name(Path(source))
    assert name and "/" not in name and "\\" not in name
    assert name not in (".", "..") and not name.startswith((".", "-"))
    assert len(name.encode()) <= 255
    folder = tmp_path / "repro"
    assert (folder / name).resolve().parent == folder.resolve()


def test_write_repro_tells_equal_names_apart_and_copies_the_same_file_once(tmp_path):
    files = []
    for folder in ("a", "b"):
        path = tmp_path / folder / "x" / "c.yaml"
        path.parent.mkdir(parents=True)
        path.write_text(f"# {folder}\n", encoding="utf-8")
        files.append(path)
    pairs = [("one", "numpy"), ("two", "numpy"), ("one", "torch")]
    sources = {pairs[0]: files[0], pairs[1]: files[1], pairs[2]: files[0]}
    out = tmp_path / "out"
    lines = write_repro(pairs, sources, out)
    assert sorted(p.name for p in (out / "repro").iterdir()) == [
        "commands.sh",
        "pairs.json",
        "x__c-2.yaml",
        "x__c.yaml",
    ]
    assert (out / "repro" / "x__c.yaml").read_text() == "# a\n"
    assert (out / "repro" / "x__c-2.yaml").read_text() == "# b\n"
    assert [shlex.split(line)[2] for line in lines] == [
        str(out / "repro" / "x__c.yaml"),
        str(out / "repro" / "x__c-2.yaml"),
        str(out / "repro" / "x__c.yaml"),
    ]
    # Deterministic: the same failing pairs give the same names again.
    assert write_repro(pairs, sources, out) == lines


def test_write_repro_replaces_a_planted_link_instead_of_writing_through_it(tmp_path):
    source = tmp_path / "cases" / "c.yaml"
    source.parent.mkdir()
    source.write_text("# case\n", encoding="utf-8")
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched", encoding="utf-8")
    (tmp_path / "out" / "repro").mkdir(parents=True)
    for name in ("cases__c.yaml", "commands.sh", "pairs.json"):
        (tmp_path / "out" / "repro" / name).symlink_to(victim)
    write_repro([("c", "numpy")], {("c", "numpy"): source}, tmp_path / "out")
    assert victim.read_text() == "untouched"
    assert (tmp_path / "out" / "repro" / "cases__c.yaml").read_text() == "# case\n"


def test_colliding_case_files_and_dash_names_each_get_a_repro_that_reruns_them(
    failing, tmp_path, monkeypatch
):
    repro = failing / "repro"
    lines = (repro / "commands.sh").read_text().splitlines()
    assert len(lines) == 2
    copies = sorted(p.name for p in repro.glob("*.yaml"))
    assert copies == ["x__c-2.yaml", "x__c.yaml"]
    monkeypatch.chdir(tmp_path)
    for line, case in zip(lines, ("-h", "--out"), strict=True):
        words = shlex.split(line)
        assert words[:2] == ["crossgrad", "run"]
        assert main(words[1:]) == 1  # the case's expect fails again
        table = pd.read_csv(tmp_path / "reports" / "repro" / "results.csv", keep_default_na=False)
        assert set(table["case"]) == {case}
        assert set(table["backend"]) == {"numpy"}


def test_merging_a_failing_report_keeps_working_repro_commands(failing, tmp_path, monkeypatch):
    merged = tmp_path / "merged"
    assert main(["report", str(failing), "--out", str(merged)]) == 1
    lines = (merged / "repro" / "commands.sh").read_text().splitlines()
    assert [shlex.split(line)[2] for line in lines] == [
        str(merged / "repro" / "x__c.yaml"),
        str(merged / "repro" / "x__c-2.yaml"),
    ]
    for name in ("x__c.yaml", "x__c-2.yaml"):
        assert (merged / "repro" / name).read_bytes() == (failing / "repro" / name).read_bytes()
    monkeypatch.chdir(tmp_path)
    assert main(shlex.split(lines[1])[1:]) == 1
    table = pd.read_csv(tmp_path / "reports" / "repro" / "results.csv", keep_default_na=False)
    assert set(table["case"]) == {"--out"}


# --- report copies nothing from outside its inputs ------------------------------------


def _poisoned(failing: Path, tmp_path: Path, file: str | None = None, link: str = "") -> Path:
    """A copy of the failing report whose pairs.json names ``file`` (or a link to ``link``)."""
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET, encoding="utf-8")
    folder = tmp_path / "artifact"
    shutil.copytree(failing, folder)
    entries = json.loads((folder / "repro" / "pairs.json").read_text())
    if link:
        (folder / "repro" / "planted.yaml").symlink_to(link)
        file = "planted.yaml"
    entries[0]["file"] = file.replace("SECRET", str(secret)) if file else file
    (folder / "repro" / "pairs.json").write_text(json.dumps(entries))
    return folder


@pytest.mark.parametrize(
    "file, link",
    [
        ("SECRET", ""),  # an absolute path
        ("../../secret.txt", ""),
        ("../../../../../../../../../../..SECRET", ""),
        (None, "../../secret.txt"),  # a link pointing out of the folder
        (None, "SECRET"),
    ],
    ids=["absolute", "dotdot", "deep-dotdot", "relative-link", "absolute-link"],
)
def test_report_never_copies_a_file_from_outside_its_inputs(failing, tmp_path, capsys, file, link):
    secret = str(tmp_path / "secret.txt")
    folder = _poisoned(failing, tmp_path, file, link.replace("SECRET", secret))
    out = tmp_path / "out"
    assert main(["report", str(folder), "--out", str(out)]) == 2
    err = no_traceback(capsys)
    assert str(folder / "repro" / "pairs.json") in err and "entry 1" in err
    for path in out.rglob("*") if out.exists() else []:
        assert SECRET not in path.read_text(errors="replace"), path


def test_report_accepts_a_link_that_stays_inside_its_input(failing, tmp_path):
    folder = tmp_path / "artifact"
    shutil.copytree(failing, folder)
    entries = json.loads((folder / "repro" / "pairs.json").read_text())
    (folder / "repro" / "again.yaml").symlink_to(entries[0]["file"])
    entries[0]["file"] = "again.yaml"
    (folder / "repro" / "pairs.json").write_text(json.dumps(entries))
    out = tmp_path / "out"
    assert main(["report", str(folder), "--out", str(out)]) == 1
    (entry, _) = json.loads((out / "repro" / "pairs.json").read_text())
    assert entry["case"] == "-h"
    assert (out / "repro" / entry["file"]).read_text() == failing_case("-h")


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "pairs.json:1:2"),
        ('{"case": "a"}', "expected a list"),
        ('[{"case": 1, "backend": "numpy", "file": "x.yaml"}]', "entry 1"),
    ],
)
def test_a_malformed_pairs_json_is_exit_2(failing, tmp_path, capsys, text, message):
    folder = tmp_path / "artifact"
    shutil.copytree(failing, folder)
    (folder / "repro" / "pairs.json").write_text(text)
    assert main(["report", str(folder), "--out", str(tmp_path / "out")]) == 2
    assert message in no_traceback(capsys)


# --- incomplete runs ------------------------------------------------------------------


def _incomplete(source: Path, tmp_path: Path, **record) -> Path:
    folder = tmp_path / "stopped"
    shutil.copytree(source, folder)
    run = json.loads((folder / "run.json").read_text())
    run.update({"complete": False, "state": "stopped", **record})
    (folder / "run.json").write_text(json.dumps(run))
    return folder


def test_report_and_diff_refuse_an_incomplete_run_and_say_why(passing, tmp_path, capsys):
    reason = "interrupted by SIGTERM; 0 of 1 case × backend pairs finished"
    folder = _incomplete(passing, tmp_path, reason=reason)
    for args in (
        ["report", str(folder), "--out", str(tmp_path / "out")],
        ["report", str(folder / "results.csv"), "--out", str(tmp_path / "out")],
        ["diff", str(passing), str(folder)],
        ["diff", str(folder / "results.parquet"), str(passing)],
    ):
        assert main(args) == 2, args
        err = no_traceback(capsys)
        assert f"{folder} is an incomplete run" in err and reason in err
        assert "--allow-incomplete" in err
    assert not (tmp_path / "out" / "results.csv").exists()


def test_a_run_that_never_finished_is_refused_as_such(passing, tmp_path, capsys):
    folder = _incomplete(passing, tmp_path, state="running", reason="")
    assert main(["diff", str(passing), str(folder)]) == 2
    assert "never finished" in no_traceback(capsys)


def test_allow_incomplete_uses_the_run_and_marks_the_merged_report(passing, tmp_path, capsys):
    reason = "stopped by --fail-fast at the first failure"
    folder = _incomplete(passing, tmp_path, reason=reason)
    out = tmp_path / "out"
    assert main(["report", str(folder), "--allow-incomplete", "--out", str(out)]) == 0
    assert f"**INCOMPLETE** — {folder} is an incomplete run" in (out / "summary.md").read_text()
    assert reason in no_traceback(capsys)
    assert main(["diff", str(passing), str(folder), "--allow-incomplete"]) == 0
    err = no_traceback(capsys)
    assert "warning: " in err and reason in err and "no change" in err


# --- malformed results tables ---------------------------------------------------------


def _csv_variants(good: str) -> dict[str, bytes]:
    header, *rows = good.splitlines(keepends=True)
    last = rows[-1]
    value_at = last.index(",", len(last) // 3)  # somewhere inside a number of the last row
    table = pd.read_csv(
        pd.io.common.StringIO(good), dtype=str, keep_default_na=False, na_filter=False
    )

    def edited(change) -> bytes:
        return change(table.copy()).to_csv(index=False).encode()

    def put(column, value, row=0):
        def change(t):
            t.loc[row, column] = value
            return t

        return edited(change)

    return {
        "empty": b"",
        "header-only": header.encode(),
        "binary-garbage": bytes(range(256)) * 8,
        "truncated-mid-number": (header + "".join(rows[:-1]) + last[: value_at - 3]).encode(),
        "truncated-last-field": (header + "".join(rows))[:-1].encode() + b"",
        "short-row-in-the-middle": (
            header + rows[0] + ",".join(rows[1].split(",")[:5]) + "\n" + "".join(rows[2:])
        ).encode(),
        "nan-in-step": put("step", "NaN"),
        "negative-step": put("step", "-3"),
        "fractional-step": put("step", "1.5"),
        "string-in-value": put("value", "abc", row=len(table) - 1),
        "string-in-index": put("index", "x"),
        "unknown-status": put("status", "fine"),
        "unknown-quantity": put("quantity", "weights"),
        "unknown-cause": put("cause", "cosmic rays"),
        "empty-case": put("case", ""),
        "missing-column": edited(lambda t: t.drop(columns=["status"])),
        "duplicated-row": edited(lambda t: pd.concat([t, t.iloc[[2]]], ignore_index=True)),
        "unterminated-quote": (header + "".join(rows) + 'seed,"numpy\n').encode(),
    }


def _parquet_variants(good: pd.DataFrame, tmp_path: Path) -> dict[str, bytes]:
    def parquet(table: pd.DataFrame) -> bytes:
        path = tmp_path / "variant.parquet"
        table.to_parquet(path, index=False)
        return path.read_bytes()

    whole = parquet(good)
    nan_step = good.assign(step=good["step"].astype("float64"))
    nan_step.loc[0, "step"] = float("nan")
    return {
        "empty": b"",
        "binary-garbage": bytes(range(256)) * 8,
        "truncated": whole[: len(whole) // 2],
        "header-only": parquet(good.iloc[:0]),
        "nan-in-step": parquet(nan_step),
        "float-step": parquet(good.assign(step=good["step"].astype("float64") + 0.5)),
        "string-in-value": parquet(good.assign(value="abc")),
        "number-as-status": parquet(good.assign(status=1)),
        "missing-column": parquet(good.drop(columns=["value"])),
        "duplicated-row": parquet(pd.concat([good, good.iloc[[1]]], ignore_index=True)),
    }


def test_every_malformed_results_table_is_exit_2_naming_the_file(passing, tmp_path, capsys):
    """A small fuzz of both readers: each variant is refused by diff and report alike."""
    good_csv = (passing / "results.csv").read_text(encoding="utf-8")
    variants = {f"{k}.csv": v for k, v in _csv_variants(good_csv).items()}
    good = pd.read_parquet(passing / "results.parquet")
    variants |= {f"{k}.parquet": v for k, v in _parquet_variants(good, tmp_path).items()}
    accepted = []
    for name, data in variants.items():
        path = tmp_path / "inputs" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        for args in (
            ["diff", str(passing), str(path)],
            ["report", str(path), "--out", str(tmp_path / "out")],
        ):
            status = main(args)
            err = capsys.readouterr().err
            assert "Traceback" not in err, (name, err)
            if status != 2 or str(path) not in err:
                accepted.append((name, args[0], status, err))
    assert not accepted
    assert not (tmp_path / "out").exists()  # nothing written from a refused input


@pytest.mark.parametrize(
    "variant, message",
    [
        ("truncated-mid-number", f"expected {len(RESULT_COLUMNS)} fields"),
        ("truncated-last-field", "does not end with a line end"),
        ("nan-in-step", "column step expected an integer >= 0"),
        ("string-in-value", "column value expected a number"),
        ("unknown-status", "column status is not one of"),
        ("duplicated-row", "the same case, backend, step, quantity, param and index as row 4"),
    ],
)
def test_a_malformed_csv_names_the_row_and_the_column(passing, tmp_path, capsys, variant, message):
    data = _csv_variants((passing / "results.csv").read_text(encoding="utf-8"))[variant]
    path = tmp_path / "bad.csv"
    path.write_bytes(data)
    assert main(["diff", str(passing), str(path)]) == 2
    err = no_traceback(capsys)
    assert message in err, err
    assert f"{path}: " in err


def test_a_truncated_csv_of_a_report_folder_no_longer_passes(passing, tmp_path, capsys):
    """The finding: the last row cut mid-number, and the merged report said PASS."""
    folder = tmp_path / "cut"
    shutil.copytree(passing, folder)
    (folder / "results.parquet").unlink()
    text = (folder / "results.csv").read_bytes()
    (folder / "results.csv").write_bytes(text[: len(text) - 40])
    assert main(["report", str(folder), "--out", str(tmp_path / "out")]) == 2
    assert str(folder / "results.csv") in no_traceback(capsys)


def test_a_table_cut_at_a_row_boundary_is_caught_by_run_json_row_count(passing, tmp_path, capsys):
    folder = tmp_path / "cut"
    shutil.copytree(passing, folder)
    (folder / "results.parquet").unlink()
    lines = (folder / "results.csv").read_text().splitlines(keepends=True)
    (folder / "results.csv").write_text("".join(lines[:-2]))
    assert json.loads((folder / "run.json").read_text())["rows"] == len(lines) - 1
    assert main(["diff", str(passing), str(folder)]) == 2
    err = no_traceback(capsys)
    assert f"holds {len(lines) - 3:,} rows" in err and "run.json" in err


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("run.json", "{", "run.json:1:2"),
        ("run.json", "[]", "expected a JSON object"),
        ("run.json", '{"complete": "yes"}', "complete: expected true or false"),
        ("environment.json", '{"python": "3"}', "expected a list of environment objects"),
        ("coverage.csv", "knob,value\n", "not a crossgrad coverage table"),
        ("coverage.csv", "knob,value,backend,status,pairs\nloss,mse,numpy,ok,x\n", "row 2"),
    ],
)
def test_a_malformed_side_file_is_exit_2_naming_it(passing, tmp_path, capsys, name, text, message):
    folder = tmp_path / "input"
    shutil.copytree(passing, folder)
    (folder / name).write_text(text)
    assert main(["report", str(folder), "--out", str(tmp_path / "out")]) == 2
    err = no_traceback(capsys)
    assert str(folder / name) in err and message in err, err


def test_the_checked_reader_keeps_every_value_of_a_good_table(passing, tmp_path):
    out = tmp_path / "out"
    assert main(["report", str(passing / "results.csv"), "--out", str(out)]) == 0
    assert (out / "results.csv").read_bytes() == (passing / "results.csv").read_bytes()
    assert os.path.getsize(out / "results.parquet") > 0


def _two_backends(passing: Path) -> pd.DataFrame:
    """The passing numpy table with a second backend that recorded the same values."""
    table = pd.read_csv(passing / "results.csv", dtype=str, keep_default_na=False)
    return pd.concat([table, table.assign(backend="torch", mode="eager")], ignore_index=True)


def test_a_pair_cut_short_at_a_row_boundary_is_caught_without_run_json(passing, tmp_path, capsys):
    table = _two_backends(passing)
    cut, kept = tmp_path / "cut.csv", tmp_path / "no-activations.csv"
    table.iloc[:-1].to_csv(cut, index=False)  # torch's output_after row is gone
    table[~((table["backend"] == "torch") & (table["quantity"] == "activation"))].to_csv(
        kept, index=False
    )
    assert main(["diff", str(kept), str(cut)]) == 2
    err = no_traceback(capsys)
    assert f"{cut}: case 'seed-1-1-1' on 'torch' has " in err and "fewer than" in err
    # Activations are optional (an adapter without layer_outputs records none): accepted.
    assert main(["diff", str(kept), str(kept)]) == 0
