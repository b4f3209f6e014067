"""The plugin route: adapters found through fake ``crossgrad.backends`` entry points.

As pluggy's own tests do, ``importlib.metadata.entry_points`` is replaced, so nothing has
to be installed for a plugin to be found, listed, loaded, rejected or warned about. The
built-ins are entry points too: crossgrad's own, as installed, stay beside the fakes.
"""

from __future__ import annotations

import importlib.metadata
import tomllib

import pytest
from fake_plugins import FakeDistribution, FakeEntryPoint, add_entry_points
from support import CASES, ROOT

from backends import registry
from harness.cases.loader import load_cases
from harness.cli import main
from harness.errors import BackendUnavailable, CrossgradError
from harness.run.runner import run

BUILTINS = ["numpy", "torch", "jax", "tensorflow", "jax:eager", "tensorflow:eager", "torch:compile"]


def install(monkeypatch: pytest.MonkeyPatch, *points: FakeEntryPoint) -> None:
    """Make ``points`` the only plugins installed, beside crossgrad's own entry points."""
    add_entry_points(monkeypatch, *points, only_builtins=True)


ECHO = FakeEntryPoint("echo", "fake_plugins:EchoPluginBackend", FakeDistribution("crossgrad-echo"))
GHOST = FakeEntryPoint(
    "ghost", "fake_plugins:MissingFrameworkBackend", FakeDistribution("crossgrad-ghost")
)
BROKEN = FakeEntryPoint("broken", "broken_plugin:Backend", FakeDistribution("crossgrad-broken"))
NO_CLASS = FakeEntryPoint("noclass", "fake_plugins:NoSuchClass", FakeDistribution("crossgrad-nc"))
OPT_IN = FakeEntryPoint(
    "echo:slow", "fake_plugins:OptInPluginBackend", FakeDistribution("crossgrad-echo")
)


def backends_listing(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    assert main(["backends"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["backend", "status", "version", "source"]
    return {line.split()[0]: line for line in lines[1:]}


def test_a_plugin_is_listed_with_its_distribution_and_version(monkeypatch, capsys):
    install(monkeypatch, ECHO)
    listing = backends_listing(capsys)
    # Built-ins, their other execution modes (listed, run only when named), then plugins.
    assert list(listing) == [*BUILTINS, "echo"]
    assert listing["echo"].split()[1:] == [
        "available",
        importlib.metadata.version("numpy"),
        "plugin",
        "crossgrad-echo",
    ]


def test_a_plugin_runs_cases_like_a_builtin(monkeypatch):
    install(monkeypatch, ECHO)
    cases = load_cases([CASES / "seed.yaml"])
    raw = run(cases, ["numpy", "echo"])
    assert set(raw.loc[raw["backend"] == "echo", "status"]) == {"ok"}
    assert "echo" in registry.available_names()


def test_a_plugin_without_its_framework_is_unavailable_with_the_reason(monkeypatch, capsys):
    install(monkeypatch, GHOST)
    listing = backends_listing(capsys)
    assert "unavailable (crossgrad_no_such_framework not installed" in listing["ghost"]
    assert listing["ghost"].endswith("plugin crossgrad-ghost")
    assert "ghost" not in registry.available_names()


@pytest.mark.parametrize(
    "point, error",
    [(BROKEN, "simulated broken plugin"), (NO_CLASS, "NoSuchClass")],
    ids=["import-error", "missing-class"],
)
def test_a_plugin_that_fails_to_load_is_a_warning_naming_it(monkeypatch, capsys, point, error):
    install(monkeypatch, ECHO, point)
    with pytest.warns(UserWarning, match=rf"adapter '{point.name}' \(plugin {point.dist.name}\)"):
        listing = backends_listing(capsys)
    assert f"unavailable ({point.value} failed to load" in listing[point.name]
    assert error in listing[point.name]
    assert listing["echo"].split()[1] == "available"  # the other plugin is unaffected


def test_a_broken_plugin_does_not_stop_a_run_of_the_others(monkeypatch):
    install(monkeypatch, BROKEN)
    with pytest.warns(UserWarning, match="broken"):
        assert "broken" not in registry.available_names()
    with pytest.raises(BackendUnavailable, match="failed to load"), pytest.warns(UserWarning):
        registry.create("broken")


def test_two_adapters_with_one_name_are_an_error_naming_both_sources(monkeypatch, capsys):
    impostor = FakeEntryPoint(
        "torch", "fake_plugins:EchoPluginBackend", FakeDistribution("crossgrad-impostor")
    )
    install(monkeypatch, impostor)
    with pytest.raises(CrossgradError) as caught:
        registry.entries()
    message = str(caught.value)
    assert "backends.torch.eager:TorchBackend (built-in)" in message
    assert "fake_plugins:EchoPluginBackend (plugin crossgrad-impostor)" in message
    assert main(["backends"]) == 2
    assert "two adapters are named 'torch'" in capsys.readouterr().err


def test_two_plugins_with_one_name_are_an_error_naming_both(monkeypatch):
    twin = FakeEntryPoint("echo", "fake_plugins:MissingFrameworkBackend", FakeDistribution("twin"))
    install(monkeypatch, ECHO, twin)
    with pytest.raises(CrossgradError, match=r"crossgrad-echo.*twin|twin.*crossgrad-echo"):
        registry.entries()


def test_the_builtins_are_crossgrads_entry_points_as_pyproject_lists_them():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "entry-points"
    ][registry.ENTRY_POINT_GROUP]
    installed = {
        ep.name: ep.value
        for ep in importlib.metadata.entry_points(group=registry.ENTRY_POINT_GROUP)
        if ep.dist is not None and ep.dist.name == registry.DISTRIBUTION
    }
    assert installed == declared, "crossgrad's installed metadata is stale: pip install -e ."
    found = registry.entries()
    assert [name for name in found if name in declared] == BUILTINS
    assert {found[name].source for name in declared} == {"built-in"}
    assert {name: found[name].target for name in declared} == declared


def test_builtins_list_usual_modes_by_rank_then_the_opt_in_modes_by_name():
    classes = {name: registry.load_class(name) for name in BUILTINS}
    usual = [name for name, cls in classes.items() if not cls.opt_in]
    assert usual == ["numpy", "torch", "jax", "tensorflow"] == registry.available_names()[:4]
    assert [classes[name].rank for name in usual] == sorted(classes[name].rank for name in usual)
    assert [name for name, cls in classes.items() if cls.opt_in] == sorted(
        ["jax:eager", "tensorflow:eager", "torch:compile"]
    )


def test_one_adapter_seen_twice_is_not_a_duplicate(monkeypatch):
    # Two copies of one distribution's metadata on the path: same name, same target.
    target = registry.entries()["torch"].target
    install(monkeypatch, FakeEntryPoint("torch", target, FakeDistribution("crossgrad")))
    found = registry.entries()
    assert list(found) == BUILTINS
    assert found["torch"] == registry.AdapterEntry("torch", target, "built-in")


def test_a_plugin_can_ship_an_opt_in_mode(monkeypatch, capsys):
    install(monkeypatch, ECHO, OPT_IN)
    listing = backends_listing(capsys)
    assert list(listing) == [*BUILTINS, "echo", "echo:slow"]
    assert listing["echo:slow"].split()[1] == "available"
    assert "echo:slow" not in registry.available_names()
    assert "echo" in registry.available_names()
    raw = run(load_cases([CASES / "seed.yaml"]), ["numpy", "echo:slow"])
    rows = raw[raw["backend"] == "echo:slow"]
    assert set(rows["status"]) == {"ok"}
    assert set(rows["mode"]) == {"slow"}


def test_an_unknown_backend_lists_the_plugins_too(monkeypatch, capsys):
    install(monkeypatch, ECHO)
    assert main(["run", str(CASES / "seed.yaml"), "--backend", "ech"]) == 2
    err = capsys.readouterr().err
    assert "unknown backend 'ech'" in err
    assert "echo" in err


def test_checking_an_unavailable_plugin_is_exit_2_with_the_reason(monkeypatch, capsys):
    install(monkeypatch, GHOST)
    assert main(["check-adapter", "ghost"]) == 2
    assert "backend 'ghost' is unavailable: crossgrad_no_such_framework not installed" in (
        capsys.readouterr().err
    )
