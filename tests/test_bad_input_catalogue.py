"""Every kind of bad input issue 5 lists: exit 2, file:line:col and key path, no traceback.

tests/test_bad_input.py covers unknown keys, wrong types, wrong shapes, an unknown
activation, malformed YAML and a missing path; this file covers the rest, and runs the
most hostile files through a real process to see that no traceback reaches the terminal.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT, write_case
from test_bad_input import GOOD

from harness.cases.loader import MAX_FILE_BYTES
from harness.cases.yaml_nodes import MAX_DEPTH
from harness.cli import main


def _billion_laughs() -> str:
    """Seven levels of ten aliases each: 10**7 values once expanded, a few lines of text."""
    lines = ["lol0: &lol0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 7):
        refs = ", ".join([f"*lol{level - 1}"] * 10)
        lines.append(f"lol{level}: &lol{level} [{refs}]")
    return GOOD + "description:\n" + "".join(f"  {line}\n" for line in lines)


def _nested(depth: int) -> str:
    return "[" * depth + "0.8" + "]" * depth


# name -> (file text, what the message must say after the file name; "…" stands for anything)
BAD_FILES = {
    "tab indentation": (
        GOOD.replace("  sizes: [1, 1, 1]", "\tsizes: [1, 1, 1]"),
        ":3:1: invalid YAML: found character '\\t' that cannot start any token (tabs are not allowed",
    ),
    "duplicate key": (
        GOOD + "loss: mae\n",
        ":14:1: loss: duplicate key (first defined at line 12)",
    ),
    "nan in params": (
        GOOD.replace("layers.0.bias: [-0.14]", "layers.0.bias: [.nan]"),
        ":6:20: network.params.layers.0.bias: expected finite numbers, got nan at index [0]",
    ),
    "inf in data": (
        GOOD.replace("y: [[1.0]]", "y: [[-.inf]]"),
        ":11:6: data.y: expected finite numbers, got -inf at index [0, 0]",
    ),
    "empty file": ("", ": empty file: expected a case mapping or 'cases: [...]'"),
    "only comments": ("# nothing here yet\n", ": empty file"),
    "unknown loss": (
        GOOD.replace("loss: mse", "loss: huberr"),
        ":12:7: loss: unknown value 'huberr' (did you mean 'huber'?)",
    ),
    "unknown optimizer": (
        GOOD.replace("{name: sgd, lr: 0.1}", "{name: adamm, lr: 0.1}"),
        ":13:19: optimizer.name: unknown value 'adamm' (did you mean 'adam'?)",
    ),
    "unknown output activation": (
        GOOD.replace("  sizes: [1, 1, 1]\n", "  sizes: [1, 1, 1]\n  output_activation: tanhh\n"),
        ":4:22: network.output_activation: unknown value 'tanhh' (did you mean 'tanh'?)",
    ),
    "bce_logits with a sigmoid output": (
        GOOD.replace("loss: mse", "loss: bce_logits"),
        ":12:7: loss: bce_logits takes logits: it requires network.output_activation: identity, got sigmoid",
    ),
    "cross_entropy with one output": (
        GOOD.replace(
            "  sizes: [1, 1, 1]\n", "  sizes: [1, 1, 1]\n  output_activation: identity\n"
        ).replace("loss: mse", "loss: cross_entropy"),
        ":13:7: loss: cross_entropy needs at least 2 outputs",
    ),
    "matrix key that does not exist": (
        GOOD + "matrix:\n  network.activaton: [relu, tanh]\n",
        ":15:3: matrix.network.activaton: not a case key that a matrix can vary",
    ),
    "layer too wide": (
        GOOD.replace("sizes: [1, 1, 1]", "sizes: [1, 5000, 1]"),
        ":3:14: network.sizes.1: expected an integer in 1..4,096, got 5,000",
    ),
    "too many parameters": (
        GOOD.replace("sizes: [1, 1, 1]", "sizes: [4096, 4096, 4096, 4096, 4096]"),
        ":3:10: network.sizes: network has 67,125,248 parameters; the limit is 50,000,000",
    ),
    "matrix too large": (
        GOOD
        + "matrix:\n  steps: ["
        + ", ".join(str(i) for i in range(1, 1002))
        + "]\n  optimizer.lr: ["
        + ", ".join(f"0.{i:04d}" for i in range(1, 1001))
        + "]\n",
        ":15:3: matrix: this matrix expands to 1,001,000 cases: a run may hold at most 1,000,000 cases",
    ),
    "tag constructing an object": (
        GOOD.replace("name: ok-case", "name: !!python/object/apply:os.system [echo owned]"),
        ":1:7: name: YAML tag '!!python/object/apply:os.system' is not allowed",
    ),
    "tag naming a function": (
        GOOD.replace("loss: mse", "loss: !!python/name:os.system"),
        ":12:7: loss: YAML tag '!!python/name:os.system' is not allowed",
    ),
    "custom tag": (GOOD.replace("loss: mse", "loss: !mine mse"), ":12:7: loss: YAML tag '!mine'"),
    "billion laughs": (
        _billion_laughs(),
        ":1:1: document expands to more than 2,000,000 values through its aliases",
    ),
    "recursive alias": (
        GOOD + "description: &me [*me]\n",
        ":14:14: description.0: invalid YAML: an alias refers to a value that contains it",
    ),
    "nesting too deep": (
        GOOD.replace("x: [[0.8]]", f"x: {_nested(MAX_DEPTH + 8)}"),
        f":10:36: data.x{'.0' * (MAX_DEPTH - 2)}: invalid YAML: nested more than {MAX_DEPTH} levels deep",
    ),
    "nesting past the recursion limit": (
        GOOD.replace("x: [[0.8]]", f"x: {_nested(5000)}"),
        # PyYAML's own recursion gives up first; the column is where its parser was.
        f":10:…: invalid YAML: nested more than {MAX_DEPTH} levels deep",
    ),
    "control character": (
        GOOD.replace("loss: mse", "loss: m\x07se"),
        ":12:8: invalid YAML: control character U+0007",
    ),
    "not a mapping": ("- just\n- a list\n", ":1:1: expected a case mapping or 'cases: [...]'"),
    "cases not a list": ("cases: 3\n", ":1:8: cases: expected a non-empty list of case mappings"),
}


@pytest.mark.parametrize("text, expected", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_case_file_is_exit_2_naming_the_place(tmp_path, capsys, text, expected):
    path = write_case(tmp_path, text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    _assert_says(err, path, expected)
    assert "Traceback" not in err


def _assert_says(err: str, path: Path, expected: str) -> None:
    first, *rest = expected.split("…")
    assert f"{path}{first}" in err, err
    assert all(part in err for part in rest), err


def test_non_utf8_bytes_are_located(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(GOOD.replace("ok-case", "café").encode("latin-1"))
    assert main(["validate", str(path)]) == 2
    assert f"{path}:1:10: not UTF-8 text: byte 0xe9 cannot be decoded" in capsys.readouterr().err


def test_a_file_too_large_to_be_a_case_file_is_refused_unread(tmp_path, capsys):
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: no need to write the bytes
    assert main(["validate", str(path)]) == 2
    assert f"{path}: file is 2.0 MiB; a case file may hold at most 2 MiB" in capsys.readouterr().err


def test_duplicate_case_names_across_files_name_both_places(tmp_path, capsys):
    write_case(tmp_path, GOOD, "a.yaml")
    write_case(tmp_path, GOOD, "b.yaml")
    assert main(["validate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert (
        f"{tmp_path / 'b.yaml'}:1:1: name: duplicate case name 'ok-case' (first defined at {tmp_path / 'a.yaml'}:1)"
        in err
    )


def test_a_directory_with_no_cases_is_exit_2(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a case")
    assert main(["run", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert f"{tmp_path}: directory holds no case files (*.yaml, *.yml)" in capsys.readouterr().err


def test_a_missing_path_given_to_run_is_exit_2(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    assert f"{tmp_path / 'nowhere'}: no such file or directory" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_problems_of_every_kind_in_one_file_are_reported_together(tmp_path, capsys):
    text = GOOD.replace("loss: mse", "loss: !!python/name:os.system") + "steps: x\nsteps: 2\n"
    path = write_case(tmp_path, text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "3 problems" in err
    assert f"{path}:12:7: loss: YAML tag" in err
    assert f"{path}:14:8: steps: expected an integer, got str 'x'" in err
    assert f"{path}:15:1: steps: duplicate key (first defined at line 14)" in err


HOSTILE = ["tag constructing an object", "billion laughs", "nesting past the recursion limit"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_files_give_no_traceback_in_a_real_process(tmp_path, name):
    text, expected = BAD_FILES[name]
    path = write_case(tmp_path, text)
    result = subprocess.run(
        [sys.executable, "-m", "harness", "run", str(path), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 2
    _assert_says(result.stderr, path, expected)
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
