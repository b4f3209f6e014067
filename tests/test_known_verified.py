"""Known divergences are verified: a planted bug under a broad entry still diverges, and a
plugin's own known file applies beside the built-in one."""

from __future__ import annotations

import pandas as pd
import pytest
from fake_plugins import register
from support import CASES

from harness.cli import main
from harness.verdict.known import BUILTIN_KNOWN, adapter_known, known_option, load_known

PLANTED = {
    "tensorflow_rmsprop_alpha_off": (("rmsprop",), "planted_tensorflow:RmspropAlphaOff"),
    "tensorflow_adam_beta2_off": (("adam", "adamw"), "planted_tensorflow:AdamBeta2Off"),
    "tensorflow_adagrad_lr_off": (("adagrad",), "planted_tensorflow:AdagradLrOff"),
}


def _pair_status(table: pd.DataFrame) -> pd.Series:
    order = ["crashed", "diverged", "known", "ok", "skipped"]
    return table.groupby(["case", "backend"])["status"].agg(
        lambda s: next(status for status in order if (s == status).any())
    )


@pytest.mark.full
def test_planted_optimizer_bugs_under_the_broad_keras_entries_stay_diverged(tmp_path, monkeypatch):
    """RMSprop's alpha off by 0.04, Adam's beta2 0.99, Adagrad's lr 2% high: each in the
    real TensorFlow adapter, under entries (eps inside the square root, epsilon-hat,
    decoupled weight decay) that a name-matched registry applied to every such case."""
    register(monkeypatch, {name: target for name, (_, target) in PLANTED.items()})
    backends = ",".join(["numpy", "tensorflow:eager", *PLANTED])
    out = tmp_path / "out"
    args = ["run", str(CASES / "optimizers.yaml"), "-b", backends, "--out", str(out)]
    assert main(args) == 1
    table = pd.read_parquet(out / "results.parquet")
    status = _pair_status(table)
    optimizer = table.groupby("case")["case"].first().str.extract(r"name:(\w+)")[0]
    for name, (planted_optimizers, _) in PLANTED.items():
        affected = optimizer[optimizer.isin(planted_optimizers)].index
        assert len(affected) >= 4
        for case in affected:
            assert status[(case, name)] == "diverged", (case, name)
            rows = table[(table["case"] == case) & (table["backend"] == name)]
            tried = rows.loc[rows["status"] == "diverged", "detail"]
            assert tried.str.contains("tried: the reference with").any(), (case, name)
        # The planted bug touches nothing else: its other cases are what TensorFlow's are.
        for case in optimizer[~optimizer.isin(planted_optimizers)].index:
            assert status[(case, name)] == status[(case, "tensorflow:eager")], (case, name)
    unplanted = status.xs("tensorflow:eager", level="backend")
    assert set(unplanted) <= {"ok", "known", "skipped"}, unplanted.to_string()
    assert (unplanted == "known").sum() >= 10


def test_a_plugin_ships_its_known_divergences_and_the_built_in_ones_still_apply(
    tmp_path, monkeypatch
):
    register(monkeypatch, {"ships_known": "adapters:ShippedKnownBackend"})
    combined = [entry.id for entry in adapter_known(["ships_known"], known_option(None))]
    assert combined == [*(e.id for e in load_known(BUILTIN_KNOWN)), "ships-known-bias-gradient"]
    out = tmp_path / "out"
    seed = str(CASES / "seed.yaml")
    assert main(["run", seed, "-b", "numpy,ships_known", "--out", str(out)]) == 0
    table = pd.read_parquet(out / "results.parquet")
    known = table[table["status"] == "known"]
    assert not known.empty and set(known["backend"]) == {"ships_known"}
    assert known["detail"].str.startswith("known divergence ships-known-bias-gradient").all()
    # --known none applies no entries at all, the plugin's included.
    none = tmp_path / "none"
    assert (
        main(["run", seed, "-b", "numpy,ships_known", "--known", "none", "--out", str(none)]) == 1
    )


@pytest.mark.full
def test_the_built_in_entries_apply_beside_a_plugins_own(tmp_path, monkeypatch):
    register(monkeypatch, {"ships_known": "adapters:ShippedKnownBackend"})
    out = tmp_path / "out"
    files = [str(CASES / "edge_cases.yaml"), str(CASES / "seed.yaml")]
    args = ["run", *files, "-k", "edge-softplus-threshold*", "-k", "seed-1-1-1"]
    args += ["-b", "numpy,torch,ships_known", "--out", str(out)]
    assert main([*args]) == 0
    table = pd.read_parquet(out / "results.parquet")
    known = table[table["status"] == "known"]
    details = set(known["detail"].str.extract(r"^known divergence ([\w.-]+)")[0])
    assert details == {"torch-softplus-threshold", "ships-known-bias-gradient"}
