"""The plugin route: adapters found through fake ``crossgrad.backends`` entry points.

As pluggy's own tests do, ``importlib.metadata.entry_points`` is replaced, so nothing has
to be installed for a plugin to be found, listed, loaded, rejected or warned about.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

import pytest
from support import CASES

from backends import registry
from harness.cases.loader import load_cases
from harness.cli import main
from harness.errors import BackendUnavailable, CrossgradError
from harness.run.runner import run


@dataclass(frozen=True)
class FakeDistribution:
    name: str


@dataclass(frozen=True)
class FakeEntryPoint:
    name: str
    value: str
    dist: FakeDistribution | None
    group: str = registry.ENTRY_POINT_GROUP


def install(monkeypatch: pytest.MonkeyPatch, *points: FakeEntryPoint) -> None:
    """Make ``points`` the only entry points installed (of any group)."""

    def entry_points(*, group: str) -> list[FakeEntryPoint]:
        return [p for p in points if p.group == group]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


ECHO = FakeEntryPoint("echo", "fake_plugins:EchoPluginBackend", FakeDistribution("crossgrad-echo"))
GHOST = FakeEntryPoint(
    "ghost", "fake_plugins:MissingFrameworkBackend", FakeDistribution("crossgrad-ghost")
)
BROKEN = FakeEntryPoint("broken", "broken_plugin:Backend", FakeDistribution("crossgrad-broken"))
NO_CLASS = FakeEntryPoint("noclass", "fake_plugins:NoSuchClass", FakeDistribution("crossgrad-nc"))


def backends_listing(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    assert main(["backends"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["backend", "status", "version", "source"]
    return {line.split()[0]: line for line in lines[1:]}


def test_a_plugin_is_listed_with_its_distribution_and_version(monkeypatch, capsys):
    install(monkeypatch, ECHO)
    listing = backends_listing(capsys)
    # Built-ins, their other execution modes (listed, run only when named), then plugins.
    assert list(listing) == ["numpy", "torch", "jax", "tensorflow", *registry.MODES, "echo"]
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


def test_builtins_declared_as_entry_points_are_not_duplicates(monkeypatch):
    # pyproject.toml lists the built-ins in the same group: same name, same target.
    crossgrad = FakeDistribution("crossgrad")
    install(
        monkeypatch,
        *(FakeEntryPoint(name, target, crossgrad) for name, target in registry.BUILTINS.items()),
    )
    found = registry.entries()
    assert list(found) == [*registry.BUILTINS, *registry.MODES]
    assert {entry.source for entry in found.values()} == {"built-in"}


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
