"""nox sessions: one per backend (each in its own virtualenv), the Keras plugin, report,
regression, tests, lint."""

from __future__ import annotations

import shutil

import nox

BACKENDS = ["numpy", "torch", "jax", "tensorflow"]
# The pip extra each backend needs; numpy ships with crossgrad itself.
EXTRAS = {"numpy": "", "torch": "[torch]", "jax": "[jax]", "tensorflow": "[tensorflow]"}
BASELINE = "reports/baseline"


def _run_baseline_cases(session: nox.Session, out: str) -> None:
    # A divergence (exit 1) is part of what the baseline records, not a failed session.
    session.run(
        "crossgrad",
        "run",
        *_baseline_cases(),
        "--backend",
        ",".join(BACKENDS),
        "--out",
        out,
        success_codes=[0, 1],
    )


def _baseline_cases() -> list[str]:
    """The case files the baseline covers, listed in reports/baseline/CASES."""
    with open(f"{BASELINE}/CASES", encoding="utf-8") as listing:
        return [line.strip() for line in listing if line.strip() and not line.startswith("#")]


nox.options.sessions = ["run", "keras_torch", "tests", "lint"]
KERAS_PLUGIN = "plugins/crossgrad-keras"
nox.options.reuse_existing_virtualenvs = True


def _install(session: nox.Session, extras: str) -> None:
    session.install("-c", "constraints.txt", f".{extras}")


@nox.session
@nox.parametrize("backend", BACKENDS, ids=BACKENDS)
def run(session: nox.Session, backend: str) -> None:
    """Run cases/ on one backend (plus the numpy reference); results in reports/<backend>/."""
    _install(session, EXTRAS[backend])
    session.run(
        "crossgrad", "run", "--backend", backend, "--out", f"reports/{backend}", *session.posargs
    )


@nox.session
def report(session: nox.Session) -> None:
    """Merge the run(backend) sessions' results into reports/merged/, as one run would give."""
    _install(session, "")
    folders = [f"reports/{backend}" for backend in BACKENDS]
    session.run("crossgrad", "report", *folders, "--out", "reports/merged", *session.posargs)


@nox.session
def regression(session: nox.Session) -> None:
    """Run the baseline's cases (reports/baseline/CASES) on the built-ins; diff with the baseline."""
    _install(session, "[all]")
    _run_baseline_cases(session, "reports/latest")
    session.run("crossgrad", "diff", BASELINE, "reports/latest")


@nox.session
def baseline(session: nox.Session) -> None:
    """Deliberately refresh reports/baseline/ from a fresh run; review and commit the diff."""
    _install(session, "[all]")
    # reports/baseline/ keeps committed files of its own (CASES, .gitignore): not a report
    # folder a run may replace whole (docs/running.md). Run aside, copy the committed files.
    _run_baseline_cases(session, "reports/latest")
    for name in ("results.csv", "summary.md", "environment.json"):
        shutil.copyfile(f"reports/latest/{name}", f"{BASELINE}/{name}")


@nox.session
def keras_torch(session: nox.Session) -> None:
    """The crossgrad-keras plugin: its own suite (the conformance battery), then cases/ on it."""
    session.install("-c", "constraints.txt", ".[test]", f"./{KERAS_PLUGIN}")
    with session.chdir(KERAS_PLUGIN):
        session.run("pytest", *session.posargs)
    session.run("crossgrad", "run", "--backend", "keras_torch", "--out", "reports/keras_torch")


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite with every backend installed."""
    _install(session, "[all,test]")
    session.install("-c", "constraints.txt", "-e", KERAS_PLUGIN)
    session.run("pytest", "--full", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("-c", "constraints.txt", "ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
