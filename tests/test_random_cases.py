"""benchmarks/random_cases.py: seeded, valid, covering the vocabulary, honest about its rules.

Default tier (about 2 s): one generation of 120 cases, three full decks of every knob
(8 losses, 10 activations, 5 optimizers, 2 dtypes, 5 initial-value kinds: 40 cases a
round), loaded back once, and a few small generations.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from backends.numpy.eager import NumpyBackend
from benchmarks.random_cases import main
from harness.cases.inputs import make_inputs
from harness.cases.loader import load_cases
from harness.cases.model import ACTIVATIONS, DTYPES, INIT_SCHEMES, LOSSES, OPTIMIZERS, Case

COUNT = 120
NAME = re.compile(
    r"rand-s(?P<seed>\d+)-(?P<index>\d{4})-(?P<activation>\w+)-(?P<output_activation>\w+)"
    r"-(?P<loss>\w+)-(?P<optimizer>\w+)-(?P<dtype>\w+)"
)


def generate(out: Path, seed: int, count: int, *extra: str) -> dict[str, bytes]:
    assert main(["--seed", str(seed), "--count", str(count), "--out", str(out), *extra]) == 0
    return {path.name: path.read_bytes() for path in sorted(out.iterdir())}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("random") / "cases"
    generate(out, 3, COUNT)
    return out


@pytest.fixture(scope="module")
def cases(folder: Path) -> list[Case]:
    return load_cases([folder])


def test_every_file_loads_with_the_project_loader(folder: Path, cases: list[Case]):
    files = sorted(folder.iterdir())
    assert len(files) == COUNT == len(cases)
    assert sorted(f"{case.name}.yaml" for case in cases) == [f.name for f in files]
    for case in cases:
        match = NAME.fullmatch(case.name)
        assert match, case.name
        assert match["activation"] == case.network.activation
        assert match["output_activation"] == case.network.output_activation
        assert (match["loss"], match["optimizer"]) == (case.loss.name, case.optimizer.name)
        assert match["dtype"] == case.dtype


def test_the_same_seed_writes_byte_identical_files(tmp_path: Path):
    first = generate(tmp_path / "a", 11, 15)
    assert first == generate(tmp_path / "b", 11, 15)
    # case i does not depend on --count: a smaller count writes a prefix
    assert generate(tmp_path / "c", 11, 5) == dict(list(first.items())[:5])


def test_different_seeds_write_different_cases(tmp_path: Path):
    def bodies(files: dict[str, bytes]) -> list[bytes]:  # without the name and the comment
        return [b"\n".join(text.splitlines()[2:]) for text in files.values()]

    one, two = bodies(generate(tmp_path / "a", 1, 10)), bodies(generate(tmp_path / "b", 2, 10))
    assert all(a != b for a, b in zip(one, two, strict=True))


def test_the_whole_vocabulary_appears(cases: list[Case]):
    assert {c.network.activation for c in cases} == set(ACTIVATIONS)
    assert {c.network.output_activation for c in cases} == set(ACTIVATIONS)
    assert {c.loss.name for c in cases} == set(LOSSES)
    assert {c.optimizer.name for c in cases} == set(OPTIMIZERS)
    assert {c.dtype for c in cases} == {"float32", "float64"}  # half precision is opt-in
    schemes = {c.network.init.scheme for c in cases if c.network.init is not None}
    assert schemes == set(INIT_SCHEMES)
    assert any(c.network.params is not None for c in cases)
    assert {"huber"} <= {c.loss.name for c in cases if c.loss.args != LOSSES[c.loss.name]}


def test_every_optimizer_argument_is_drawn_away_from_its_default(cases: list[Case]):
    never = [
        f"{name}.{arg}"
        for name, defaults in OPTIMIZERS.items()
        for arg, default in defaults.items()
        if not any(c.optimizer.name == name and c.optimizer.args[arg] != default for c in cases)
    ]
    assert never == []


def test_half_adds_float16_and_bfloat16(tmp_path: Path):
    generate(tmp_path, 5, 12, "--half")
    assert {c.dtype for c in load_cases([tmp_path])} == set(DTYPES)


def test_sizes_and_rates_stay_in_the_promised_ranges(cases: list[Case]):
    for case in cases:
        sizes = case.network.sizes
        assert 1 <= len(sizes) - 2 <= 3 and all(1 <= s <= 5 for s in sizes), case.name
        assert 1 <= make_inputs(case).x.shape[0] <= 6 and 1 <= case.steps <= 3
        assert 1e-3 <= case.optimizer.args["lr"] <= 0.1


def test_targets_are_valid_for_their_loss(cases: list[Case]):
    for case in cases:
        y = make_inputs(case).y
        if case.loss.name in ("bce", "bce_logits"):
            assert ((y >= 0) & (y <= 1)).all(), case.name
        if case.loss.name == "bce":
            assert case.network.output_activation == "sigmoid"
        if case.loss.name in ("bce_logits", "cross_entropy"):
            assert case.network.output_activation == "identity"
        if case.loss.name == "cross_entropy":
            assert y.shape[1] >= 2 and (y >= 0).all(), case.name
            np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-6, err_msg=case.name)
        if case.optimizer.name == "sgd" and case.optimizer.args["nesterov"]:
            assert case.optimizer.args["momentum"] > 0 and case.optimizer.args["dampening"] == 0


def test_targets_straddle_the_first_output(cases: list[Case]):
    """With two rows or more, every output column has rows on both sides of its target,
    so the batch gradient's per-row terms partly cancel."""
    straddled = 0
    for case in cases:
        inputs = make_inputs(case)
        if inputs.x.shape[0] < 2 or case.loss.name == "cross_entropy":
            continue
        out = NumpyBackend().build(case, inputs).forward().astype(np.float64)
        if case.loss.name == "bce_logits":
            out = 1 / (1 + np.exp(-out))
        above, below = (inputs.y > out).any(axis=0), (inputs.y < out).any(axis=0)
        assert (above & below).all(), case.name
        straddled += 1
    assert straddled > COUNT // 2


def test_bad_arguments_exit_2(tmp_path: Path, capsys):
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    bad = [
        ["--seed", "1", "--count", "0", "--out", str(tmp_path / "x")],
        ["--seed", "-1", "--count", "3", "--out", str(tmp_path / "x")],
        ["--seed", "one", "--count", "3", "--out", str(tmp_path / "x")],
        ["--count", "3", "--out", str(tmp_path / "x")],
        ["--seed", "1", "--count", "3", "--out", str(tmp_path / "notes.txt")],
        ["--seed", "1", "--count", "3", "--out", str(tmp_path)],  # holds someone's file
    ]
    for argv in bad:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2, argv
        assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_folder_of_earlier_cases_needs_overwrite(tmp_path: Path, capsys):
    generate(tmp_path, 1, 4)
    with pytest.raises(SystemExit) as exit_info:
        main(["--seed", "1", "--count", "2", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--overwrite" in capsys.readouterr().err
    assert len(generate(tmp_path, 1, 2, "--overwrite")) == 2  # the four old files are gone


def test_a_case_the_loader_refuses_is_a_generator_bug(tmp_path: Path, monkeypatch, capsys):
    import benchmarks.random_cases as random_cases

    real = random_cases.render
    monkeypatch.setattr(random_cases, "render", lambda *a: real(*a) + "learning_rate: 0.1\n")
    assert main(["--seed", "1", "--count", "1", "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "generator bug" in err and "learning_rate" in err
    assert not (tmp_path / "x").exists()  # nothing written


def test_numbers_are_numbers_to_plain_yaml_too(folder: Path):
    """1.0e-06, not 1e-06: a YAML 1.1 reader (plain PyYAML) would read the latter as text."""
    import yaml

    def strings(value):
        if isinstance(value, dict):
            return [s for item in value.values() for s in strings(item)]
        if isinstance(value, list):
            return [s for item in value for s in strings(item)]
        return [value] if isinstance(value, str) else []

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for path in sorted(folder.iterdir())[:40]:
        for text in strings(yaml.load(path.read_text(encoding="utf-8"), Loader=loader)):
            with pytest.raises(ValueError):
                float(text)
