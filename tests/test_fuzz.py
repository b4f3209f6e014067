"""crossgrad fuzz: generation across the vocabulary, signatures, and campaigns that find,
shrink and report a planted bug once (docs/fuzzing.md).

Default tier: the generator's vocabulary and validity, signatures, bad input. Full tier: a
campaign of 2,000 cases against an adapter whose hidden tanh slope is a relative 1e-4 off
(tests/adapters.py), its resumption, and a clean campaign.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fake_plugins import register
from hypothesis import find, settings
from support import ROOT

from harness.cases.loader import load_file, load_mappings
from harness.cases.model import ACTIVATIONS, DTYPES, LOSSES, OPTIMIZERS
from harness.cli import main
from harness.fuzz.campaign import FamilyStream, alternatives
from harness.fuzz.casefile import dump_cases
from harness.fuzz.generate import (
    ARGUMENT_VALUES,
    MAX_LAYERS,
    MAX_ROWS,
    MAX_STEPS,
    MAX_WIDTH,
    optimizers,
)
from harness.fuzz.signature import Kind, Signature, first_failures, knobs

FAMILIES = 300


@pytest.fixture(scope="module")
def families():
    stream = FamilyStream(seed=5, dtypes=DTYPES)
    try:
        return list(itertools.islice(stream, FAMILIES))
    finally:
        stream.close()


# Full tier: 300 generated families (about 10 s); the other generator tests stay quick.
@pytest.mark.full
def test_generation_reaches_every_name_and_size_of_the_vocabulary(families):
    seen: Counter[str] = Counter()
    for family in families:
        structure = family.structure
        network = structure["network"]
        loss = structure["loss"]
        seen.update(
            [
                f"activation:{network['activation']}",
                f"output_activation:{network['output_activation']}",
                f"loss:{loss if isinstance(loss, str) else loss['name']}",
                f"optimizer:{structure['optimizer']['name']}",
                f"dtype:{structure['dtype']}",
                f"layers:{len(network['sizes']) - 1}",
                f"steps:{structure['steps']}",
            ]
        )
        seen.update(f"argument:{a}" for a in structure["optimizer"] if a != "name")
        seen.update(f"width:{w}" for w in network["sizes"])
        seen.update(f"rows:{len(v['x'])}" for v in family.variants)
    expected = (
        [f"activation:{a}" for a in ACTIVATIONS]
        + [f"output_activation:{a}" for a in ACTIVATIONS]
        + [f"loss:{name}" for name in LOSSES]
        + [f"optimizer:{name}" for name in OPTIMIZERS]
        + [f"dtype:{d}" for d in DTYPES]
        + [f"argument:{a}" for args in OPTIMIZERS.values() for a in args if a != "nesterov"]
        + [f"layers:{n}" for n in (1, MAX_LAYERS)]
        + [f"width:{n}" for n in (1, MAX_WIDTH)]
        + ["rows:1"]
        + [f"steps:{n}" for n in (1, MAX_STEPS)]
    )
    assert [name for name in expected if not seen[name]] == []
    # Hypothesis draws integers toward the small end: the largest batches are rare.
    assert max(int(k.partition(":")[2]) for k in seen if k.startswith("rows:")) >= MAX_ROWS * 3 // 4


def test_every_optimizer_argument_has_candidate_values_and_each_is_drawn():
    arguments = {a for args in OPTIMIZERS.values() for a in args}
    assert arguments <= set(ARGUMENT_VALUES)
    drawn: list[dict] = []

    def enough(optimizer: dict) -> bool:
        drawn.append(optimizer)
        return len(drawn) >= 600

    find(
        optimizers("float32"),
        enough,
        settings=settings(database=None, max_examples=10**6),
        random=random.Random(0),
    )
    for name, args in OPTIMIZERS.items():
        mine = [o for o in drawn if o["name"] == name]
        assert {a for o in mine for a in o} - {"name"} == set(args), name


# Full tier: uses the 300 families above.
@pytest.mark.full
def test_generated_cases_load_the_same_from_memory_and_from_their_file(families, tmp_path):
    for number, family in enumerate(families[:60]):
        mappings = family.cases(f"f{number}")
        file = tmp_path / f"f{number}.yaml"
        file.write_text(dump_cases(mappings), encoding="utf-8")
        from_file = load_file(file)
        from_memory = load_mappings(mappings, str(file))
        assert [c.name for c in from_file] == [m["name"] for m in mappings]
        assert list(map(_exact, from_file)) == list(map(_exact, from_memory))


def _exact(value):
    """A comparable form of a Case: arrays by dtype, shape and bytes (bit for bit)."""
    if dataclasses.is_dataclass(value):
        return tuple(
            (f.name, _exact(getattr(value, f.name)))
            for f in dataclasses.fields(value)
            if f.name != "source"  # file:line; a mapping in memory has no line
        )
    if isinstance(value, np.ndarray):
        return (str(value.dtype), value.shape, value.tobytes())
    if isinstance(value, dict):
        return tuple(sorted((k, _exact(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(map(_exact, value))
    return value


# Full tier: uses the 300 families above.
@pytest.mark.full
def test_the_same_seed_generates_the_same_families(families):
    stream = FamilyStream(seed=5, dtypes=DTYPES)
    try:
        again = list(itertools.islice(stream, 40))
    finally:
        stream.close()
    assert again == families[:40]


def test_dtypes_can_be_restricted():
    stream = FamilyStream(seed=1, dtypes=("float64",))
    try:
        assert {f.structure["dtype"] for f in itertools.islice(stream, 30)} == {"float64"}
    finally:
        stream.close()


def _mapping(**changes):
    mapping = {
        "name": "c",
        "network": {"sizes": [1, 2, 1], "activation": "tanh", "output_activation": "sigmoid"},
        "loss": "mse",
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "steps": 1,
        "dtype": "float32",
    }
    mapping.update(changes)
    return mapping


def test_knobs_name_what_a_case_sets_and_no_hidden_activation_without_a_hidden_layer():
    found = knobs(_mapping())
    assert found == {
        "activation": "tanh",
        "output_activation": "sigmoid",
        "loss": "mse",
        "optimizer": "sgd",
        "optimizer.lr": 0.1,
        "optimizer.momentum": 0.9,
        "dtype": "float32",
    }
    shallow = _mapping(network={"sizes": [1, 1], "activation": "tanh", "output_activation": "relu"})
    assert "activation" not in knobs(shallow)


def test_a_signature_matches_its_kind_and_the_knob_values_that_matter():
    kind = Kind("torch", "diverged", "grad", "hidden layer")
    signature = Signature(kind, {"activation": "tanh", "optimizer.momentum": 0.9})
    assert signature.matches(kind, knobs(_mapping()))
    # A numeric argument matters by being set, whatever its value.
    other_momentum = _mapping(optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.5})
    assert signature.matches(kind, knobs(other_momentum))
    assert not signature.matches(kind, knobs(_mapping(optimizer={"name": "sgd", "lr": 0.1})))
    relu = _mapping(network={"sizes": [1, 2, 1], "activation": "relu", "output_activation": "relu"})
    assert not signature.matches(kind, knobs(relu))
    assert not signature.matches(Kind("jax", "diverged", "grad", "hidden layer"), knobs(_mapping()))
    assert signature.slug() == "torch-grad-hidden-tanh-momentum"


def _table(reference_values, backend_values, statuses):
    keys = [(0, "output", "", 0), (0, "loss", "", 0), (0, "grad", "layers.0.weight", 0)]
    rows = [
        {
            "case": "c",
            "backend": backend,
            "step": step,
            "quantity": quantity,
            "param": param,
            "index": index,
            "value": value,
            "status": status,
        }
        for backend, values, row_statuses in (
            ("numpy", reference_values, ["ok"] * 3),
            ("torch", backend_values, statuses),
        )
        for (step, quantity, param, index), value, status in zip(
            keys, values, row_statuses, strict=True
        )
    ]
    return pd.DataFrame(rows)


def test_a_divergence_after_the_reference_overflowed_is_marked_so():
    layers = {"c": 1}
    finite = _table([1.0, 2.0, 3.0], [1.0, 2.0, 3.5], ["ok", "ok", "diverged"])
    (kind,) = first_failures(finite, layers, "numpy").values()
    assert kind == Kind("torch", "diverged", "grad", "output layer", overflow=False)
    # The reference's loss is inf before the failing gradient: past the overflow.
    blown = _table([1.0, np.inf, np.nan], [1.0, np.inf, 0.0], ["ok", "ok", "diverged"])
    assert next(iter(first_failures(blown, layers, "numpy").values())).overflow
    # A backend that overflows where the reference is finite is a finding.
    theirs = _table([1.0, 2.0, 3.0], [1.0, np.inf, np.nan], ["ok", "diverged", "diverged"])
    (kind,) = first_failures(theirs, layers, "numpy").values()
    assert (kind.stage, kind.overflow) == ("loss", False)


def test_probes_change_one_knob_to_simpler_values():
    case = _mapping(network={**_mapping()["network"], "params": {}}, data={"x": [], "y": []})
    activations = [p["network"]["activation"] for p in alternatives(case, "activation")]
    assert activations == ["identity", "sigmoid", "softplus"]
    (probe,) = alternatives(case, "optimizer.momentum")
    assert probe["optimizer"] == {"name": "sgd", "lr": 0.1}
    assert [p["dtype"] for p in alternatives(case, "dtype")] == ["float64"]
    assert [p["loss"] for p in alternatives(case, "loss")] == ["sse", "half_sse", "mae"]
    bce = _mapping(loss="bce")
    assert alternatives(bce, "output_activation") == []  # bce fixes it
    assert case["optimizer"]["momentum"] == 0.9  # each probe is a copy


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--budget", "0"], "--budget"),
        (["--budget", "10", "--time", "5"], "not allowed with"),
        (["--dtype", "float8", "--backend", "torch"], "unknown --dtype"),
        (["--backend", "numpy"], "needs a backend besides the reference"),
        (["--seed", "-1"], "--seed"),
        (["--backend", "nosuch"], "unknown backend 'nosuch'"),
        (["--backend", "torch", "--known", "/nonexistent.yaml"], "/nonexistent.yaml"),
        (["--backend", "torch", "--shrink-time", "0"], "--shrink-time"),
    ],
)
def test_bad_input_exits_2_with_a_message_and_no_traceback(argv, message, capsys, tmp_path):
    try:
        status = main(["fuzz", "--out", str(tmp_path / "out"), *argv])
    except SystemExit as exc:  # argparse's own refusals
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- campaigns (full tier)

PLANTED_BUDGET = 2_000
PLANTED_SEED = 0


def test_verdicts_are_reused_for_clean_families_when_known_entries_are_only_added(tmp_path):
    from harness.fuzz.campaign import Judge
    from harness.fuzz.model import Options
    from harness.verdict.known import known_option

    entries = known_option(None)
    options = Options(0, 10, None, ["numpy"], "numpy", entries[:-1], 60.0, None)
    path = tmp_path / "verdicts.jsonl"

    def reused(options: Options) -> set[str]:
        judge = Judge(options, path, None)
        judge.close()
        return set(judge.ran)

    first = Judge(options, path, None)
    first.record("clean", ["numpy"], [])
    first.record("failing", ["numpy"], [(0, Kind("numpy", "diverged", "grad", "output", False))])
    first.close()
    assert reused(options) == {"clean", "failing"}
    added = dataclasses.replace(options, known=entries)
    assert reused(added) == {"clean"}  # the failing family is judged again
    assert reused(added) == {"clean"}  # and the file now says so
    # A removed entry can change any verdict: nothing is reused.
    assert reused(dataclasses.replace(options, known=entries[:-2])) == set()


@pytest.fixture
def planted(monkeypatch):
    register(monkeypatch, {"tanh_off": "adapters:TanhGradientOffBackend"})


def _campaign(out: Path, backend: str, budget: int, seed: int) -> int:
    argv = ["fuzz", "--backend", backend, "--budget", str(budget), "--seed", str(seed)]
    return main([*argv, "--known", "none", "--out", str(out)])


@pytest.mark.full
def test_a_planted_bug_is_found_shrunk_to_a_minimal_case_and_reported_once(
    planted, tmp_path, capsys
):
    out = tmp_path / "fuzz"
    assert _campaign(out, "tanh_off", PLANTED_BUDGET, PLANTED_SEED) == 1
    printed = capsys.readouterr()
    findings = load_file(out / "findings.yaml")
    assert len(findings) == 1, printed.out
    case = findings[0]
    assert case.network.n_layers <= 2
    assert max(case.network.sizes) <= 2
    assert case.network.activation == "tanh"
    assert case.steps <= 2
    assert len(case.x) == 1
    markdown = (out / "findings.md").read_text(encoding="utf-8")
    assert "diverged on tanh_off at grad of the hidden layer" in markdown
    assert "activation=tanh" in markdown
    assert f"crossgrad run {out / 'findings.yaml'} --case={case.name}" in markdown
    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert (record["command"], record["cases"], record["findings"]) == ("fuzz", PLANTED_BUDGET, 1)
    assert (out / "results.parquet").is_file()  # the report of everything that ran
    first_findings = (out / "findings.yaml").read_bytes()

    # The minimal case, run as a user would, shows the bug.
    assert (
        main(
            [
                "run",
                str(out / "findings.yaml"),
                "--backend",
                "tanh_off",
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 1
    )

    # A second campaign into the same folder resumes: nothing runs again, the same finding.
    assert _campaign(out, "tanh_off", PLANTED_BUDGET, PLANTED_SEED) == 1
    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert (record["cases"], record["cases_cached"]) == (0, PLANTED_BUDGET)
    assert (out / "findings.yaml").read_bytes() == first_findings


@pytest.mark.full
def test_a_clean_adapter_gives_no_finding_and_exit_0(monkeypatch, tmp_path, capsys):
    register(monkeypatch, {"echo": "fake_plugins:EchoPluginBackend"})
    out = tmp_path / "fuzz"
    assert _campaign(out, "echo", 300, 3) == 0
    assert not (out / "findings.yaml").exists()  # no finding: no case file to hold one
    assert "No finding" in (out / "findings.md").read_text(encoding="utf-8")


CLI_WITH_PLANTED_ADAPTER = f"""
import sys
sys.path.insert(0, {str(ROOT / "tests")!r})
from fake_plugins import register
register(None, {{"tanh_off": "adapters:TanhGradientOffBackend"}})
from harness.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.full
def test_ctrl_c_keeps_what_was_found_in_a_report_marked_incomplete(tmp_path):
    out = tmp_path / "fuzz"
    argv = ["fuzz", "-b", "tanh_off", "--budget", str(PLANTED_BUDGET), "--seed", "0"]
    process = subprocess.Popen(
        [sys.executable, "-c", CLI_WITH_PLANTED_ADAPTER, *argv, "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    # Wait for a progress line that counts a divergence, then press Ctrl-C.
    for line in process.stderr:
        if re.search(r"cases run .* [1-9][0-9,]* unexplained divergence", line):
            break
    else:
        pytest.fail(f"no divergence before the campaign ended: {process.communicate()}")
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=120)
    assert process.returncode == 130, rest
    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert record["complete"] is False
    assert "SIGINT" in record["reason"]
    kept = load_file(out / "findings.yaml")
    assert len(kept) == 1 and kept[0].network.activation == "tanh"
    assert "not shrunk: the campaign was interrupted" in (out / "findings.md").read_text(
        encoding="utf-8"
    )
