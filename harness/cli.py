"""``crossgrad`` command line: run | report | diff | validate | backends | check-adapter.

Exit status (docs/spec.md §8.1): 0 every comparison agrees, 1 a divergence / failed expect /
crash, 2 bad input or usage, reported in one message without a traceback, 128 + signal when
a signal stopped the run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from backends import registry
from harness.errors import BackendUnavailable, CaseError, CrossgradError, UnknownBackend, UsageError
from harness.run import determinism
from harness.run.workers import DEFAULT_TIMEOUT
from harness.text import safe_output, terminal, unfiltered

if TYPE_CHECKING:
    from harness.cases.model import Case

# The commands import what they use when they run: a spawned worker process re-imports
# the module that started it (this one, via the console script), and pandas, the reports
# and the comparison code would cost every worker most of a second of CPU for nothing.

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    # Everything printed goes through harness.text: no control character or escape
    # sequence from a case name, a path or an adapter's message reaches the terminal, and
    # a stream that cannot encode "×" (PYTHONIOENCODING=ascii) gets an escape, not a crash.
    with safe_output():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    determinism.apply_environment()
    warnings.formatwarning = _plain_warning
    try:
        return int(args.handler(args))
    except CaseError as exc:
        count = len(exc.problems)
        print(
            f"crossgrad: {count} problem{'s' * (count != 1)} in case files:\n{exc}", file=sys.stderr
        )
        return EXIT_USAGE
    except CrossgradError as exc:
        print(f"crossgrad: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("crossgrad: interrupted", file=sys.stderr)
        return 130


def _plain_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    line: str | None = None,
) -> str:
    """A warning as one line, without source lines.

    crossgrad's own (a plugin that failed to load, a report folder left behind) reads
    ``crossgrad: warning: ...``; any other library's says where it came from, as
    ``warning (FutureWarning from pandas): ...``, so it is not taken for crossgrad's.
    """
    origin = _warning_origin(category, filename, lineno)
    if origin is None:
        return f"crossgrad: warning: {message}\n"
    return f"warning ({category.__name__} from {origin}): {message}\n"


# The folders of crossgrad's own modules: a warning raised from code in them is crossgrad's.
_OWN_FOLDERS = tuple(
    os.path.dirname(os.path.realpath(path)) + os.sep
    for path in (__file__, registry.__file__)  # harness/, backends/
)
_OWN_PACKAGES = ("harness", "backends")


def _warning_origin(category: type[Warning], filename: str, lineno: int) -> str | None:
    """Where a warning came from: None for crossgrad's own, else the library's top-level
    package (or, failing that, the file and line it names).

    The raising module is the frame that called ``warnings.warn``: ``filename`` alone would
    misname a library's warning whose ``stacklevel`` points at the crossgrad code that
    called the library (pandas and torch do that). crossgrad's own warnings are plain
    ``UserWarning``s raised from its own modules; any other category there (NumPy's
    ``RuntimeWarning`` from C code crossgrad called) is a library's.
    """
    caller = _warning_caller()
    path = caller.f_code.co_filename if caller is not None else filename
    module = str(caller.f_globals.get("__name__", "")) if caller is not None else ""
    category_package = category.__module__.partition(".")[0]
    if os.path.realpath(path).startswith(_OWN_FOLDERS):
        if issubclass(category, UserWarning) and category_package in ("builtins", *_OWN_PACKAGES):
            return None
        if category_package not in ("builtins", *_OWN_PACKAGES):
            return category_package  # a library's own category: pandas.errors.PerformanceWarning
        return f"{filename}:{lineno}"
    package = module.partition(".")[0]
    return package if package and package != "__main__" else f"{filename}:{lineno}"


def _warning_caller() -> FrameType | None:
    """The frame that called ``warnings.warn`` (the first one past the ``warnings`` module's
    own frames), or None when this formatter was not called from within a warning."""
    frame: FrameType | None = sys._getframe(1)
    inside = False
    while frame is not None:
        if frame.f_globals.get("__name__") == "warnings":
            inside = True
        elif inside:
            return frame
        frame = frame.f_back
    return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crossgrad",
        description="Train the same small network in several frameworks and compare every number.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run_cmd = commands.add_parser("run", help="run cases on backends and write the report")
    run_cmd.add_argument(
        "paths",
        nargs="*",
        default=["cases"],
        metavar="PATH",
        help="case files or folders (default: cases/)",
    )
    run_cmd.add_argument(
        "--backend",
        "-b",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this backend (repeatable or comma-separated; default: every installed one)",
    )
    run_cmd.add_argument(
        "--reference",
        default="numpy",
        metavar="NAME",
        help="backend the others are compared with (default: numpy)",
    )
    run_cmd.add_argument(
        "--case",
        "-k",
        action="append",
        default=[],
        metavar="GLOB",
        help="run only cases whose name matches this shell-style pattern (repeatable)",
    )
    _add_known_option(run_cmd)
    run_cmd.add_argument(
        "--out",
        "-o",
        default="reports/latest",
        metavar="DIR",
        help="report folder, replaced whole at the end: new, empty or a crossgrad report "
        "(default: reports/latest/)",
    )
    run_cmd.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="a case running longer than this on one backend is killed and reported as "
        f"crashed; the run goes on (default: {DEFAULT_TIMEOUT:g})",
    )
    run_cmd.add_argument(
        "--jobs",
        "-j",
        type=_positive_int,
        default=None,
        metavar="N",
        help="backends run at once, each in its own worker process (default: one per CPU "
        "core, slowest-starting first)",
    )
    run_cmd.add_argument(
        "--memory-limit",
        type=_size,
        default=None,
        metavar="SIZE",
        help="memory one case may need (its workers and its rows in this process); a case "
        "estimated to need more is skipped with the reason, before it runs (default: "
        "$CROSSGRAD_MEMORY_LIMIT, else 4GiB)",
    )
    run_cmd.add_argument(
        "--output-limit",
        type=_size,
        default=None,
        metavar="SIZE",
        help="results files of the whole run; a case that would take them past it is skipped "
        "with the reason (default: $CROSSGRAD_OUTPUT_LIMIT, else 8GiB)",
    )
    run_cmd.add_argument(
        "--vectorize",
        action="store_true",
        help="run cases that differ only in values as one batched computation per backend",
    )
    run_cmd.add_argument(
        "--fail-fast",
        "-x",
        action="store_true",
        help="stop at the first crash, divergence or failed expect; the report of what "
        "finished is written and marked incomplete",
    )
    run_cmd.set_defaults(handler=_run)

    _add_fuzz_command(commands)

    report_cmd = commands.add_parser(
        "report", help="merge results of separate runs (one per backend) and write the report"
    )
    report_cmd.add_argument(
        "results",
        nargs="+",
        metavar="RESULTS",
        help="results.csv / results.parquet files or report folders",
    )
    report_cmd.add_argument(
        "--out",
        "-o",
        default="reports/merged",
        metavar="DIR",
        help="report folder, replaced whole at the end: new, empty or a crossgrad report "
        "(default: reports/merged/)",
    )
    report_cmd.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="use a report folder whose run.json says the run did not complete "
        "(refused by default); the merged report is then marked incomplete",
    )
    report_cmd.set_defaults(handler=_report)

    diff_cmd = commands.add_parser(
        "diff", help="regression: every change between two results beyond tolerance (exit 1 if any)"
    )
    diff_cmd.add_argument("baseline", metavar="BASELINE", help="results file or report folder")
    diff_cmd.add_argument("current", metavar="CURRENT", help="results file or report folder")
    diff_cmd.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="use a report folder whose run.json says the run did not complete "
        "(refused by default)",
    )
    diff_cmd.set_defaults(handler=_diff)

    validate_cmd = commands.add_parser(
        "validate", help="check case files and print the expanded case count"
    )
    validate_cmd.add_argument("paths", nargs="*", default=["cases"], metavar="PATH")
    validate_cmd.set_defaults(handler=_validate)

    backends_cmd = commands.add_parser(
        "backends", help="list adapters: available or why not, and versions"
    )
    backends_cmd.set_defaults(handler=_backends)

    check_cmd = commands.add_parser(
        "check-adapter", help="run an adapter through the conformance battery"
    )
    check_cmd.add_argument("name", metavar="NAME", help="the adapter's backend name")
    check_cmd.add_argument("--reference", default="numpy", metavar="NAME")
    check_cmd.add_argument(
        "--check", "-k", action="append", default=[], metavar="GLOB", help="only these checks"
    )
    _add_known_option(check_cmd)
    check_cmd.set_defaults(handler=_check_adapter)
    return parser


def _run(args: argparse.Namespace) -> int:
    from harness.cases.loader import load_cases
    from harness.report.folder import check_out
    from harness.run.scheduler import prestart

    backends = _backend_names(args.backend, args.reference)
    cases = _select(load_cases(args.paths), args.case)
    check_out(Path(args.out))  # a --out the run may not replace stops it before any case runs
    if not args.vectorize:  # a vectorized run batches in this process; its workers start on demand
        prestart(backends, args.jobs)

    from harness.report.coverage import coverage_text
    from harness.run.budget import from_environment
    from harness.run.pipeline import run_and_report
    from harness.run.progress import ProgressDisplay
    from harness.run.scheduler import default_jobs
    from harness.verdict.known import adapter_known, known_option

    known = known_option(args.known)
    if "none" not in (args.known or []):
        known = adapter_known(backends, known)
    print(
        f"crossgrad: {len(cases)} case{'s' * (len(cases) != 1)} on {', '.join(backends)} (reference: {args.reference})",
        file=sys.stderr,
    )
    started = time.perf_counter()
    result = run_and_report(
        Path(args.out),
        cases,
        backends,
        args.reference,
        known,
        ProgressDisplay(backends, len(cases), unfiltered(sys.stderr)),
        timeout=args.timeout,
        jobs=args.jobs,
        vectorize=args.vectorize,
        fail_fast=args.fail_fast,
        log=sys.stderr,
        budget=from_environment(
            args.memory_limit, args.output_limit, args.jobs or default_jobs(len(backends))
        ),
    )
    for name, reason in result.refused.items():
        print(f"crossgrad: warning: case {name} not run: {reason}", file=sys.stderr)
    if result.incomplete:
        print(f"crossgrad: report incomplete: {result.incomplete}", file=sys.stderr)
    for line in result.writer.printed_table():
        print(line)
    print(f"\n{coverage_text(result.coverage, args.reference)}")
    for entry in result.stale:
        print(
            f"warning: stale known divergence {entry.id} ({entry.location}): it matched nothing that ran",
            file=sys.stderr,
        )
    elapsed = time.perf_counter() - started
    print(
        f"\nreport: {Path(args.out) / 'summary.md'} ({result.rows:,} rows, {elapsed:.1f} s)",
        file=sys.stderr,
    )
    return result.status


def _add_fuzz_command(commands: argparse._SubParsersAction) -> None:
    fuzz_cmd = commands.add_parser(
        "fuzz",
        help="generate cases, run them, and shrink every unexplained divergence to a minimal case",
        description="Generate cases across the whole case vocabulary (Hypothesis), run them "
        "on the backends as 'run --vectorize' does, and shrink every unexplained divergence "
        "to a minimal case: DIR/findings.yaml (cases ready for cases/) and DIR/findings.md. "
        "Exit 0 when every divergence was explained by a known entry, 1 when there are "
        "findings, 2 on bad input.",
    )
    limit = fuzz_cmd.add_mutually_exclusive_group()
    limit.add_argument(
        "--budget",
        type=_positive_int,
        default=None,
        metavar="N",
        help=f"generated cases to run (default: {DEFAULT_FUZZ_BUDGET:,} unless --time is given)",
    )
    limit.add_argument(
        "--time",
        type=_positive_seconds,
        default=None,
        metavar="SECONDS",
        help="generate and run cases for this long, then shrink what was found",
    )
    fuzz_cmd.add_argument(
        "--seed", type=_seed, default=0, metavar="S", help="the campaign's seed (default: 0)"
    )
    fuzz_cmd.add_argument(
        "--backend",
        "-b",
        action="append",
        default=[],
        metavar="NAME",
        help="fuzz this backend (repeatable or comma-separated; default: every installed one)",
    )
    fuzz_cmd.add_argument("--reference", default="numpy", metavar="NAME")
    fuzz_cmd.add_argument(
        "--dtype",
        action="append",
        default=[],
        metavar="DTYPE",
        help="generate only these dtypes (repeatable or comma-separated; default: all four)",
    )
    _add_known_option(fuzz_cmd)
    fuzz_cmd.add_argument(
        "--out",
        "-o",
        default="reports/fuzz",
        metavar="DIR",
        help="campaign folder (findings, report, state), replaced whole at the end; a "
        "second campaign into the same folder resumes it (default: reports/fuzz/)",
    )
    fuzz_cmd.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"per case and backend, as for run (default: {DEFAULT_TIMEOUT:g})",
    )
    fuzz_cmd.add_argument(
        "--shrink-time",
        type=_positive_seconds,
        default=120.0,
        metavar="SECONDS",
        help="shrinking time per finding; the smallest case so far is kept (default: 120)",
    )
    fuzz_cmd.add_argument("--jobs", "-j", type=_positive_int, default=None, metavar="N")
    fuzz_cmd.set_defaults(handler=_fuzz)


DEFAULT_FUZZ_BUDGET = 1_000


def _seed(text: str) -> int:
    value = int(text)
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**63), got {text}")
    return value


def _fuzz(args: argparse.Namespace) -> int:
    from harness.cases.model import DTYPES
    from harness.fuzz.campaign import campaign
    from harness.fuzz.model import Options
    from harness.report.folder import check_out
    from harness.verdict.known import adapter_known, known_option

    backends = _backend_names(args.backend, args.reference)
    if len(backends) < 2:
        raise UsageError("fuzz needs a backend besides the reference (--backend NAME)")
    dtypes = [d.strip() for item in args.dtype for d in item.split(",") if d.strip()]
    for dtype in dtypes:
        if dtype not in DTYPES:
            raise UsageError(f"unknown --dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    out = Path(args.out)
    check_out(out)
    known = known_option(args.known)
    if "none" not in (args.known or []):
        known = adapter_known(backends, known)
    budget = args.budget if args.budget or args.time else DEFAULT_FUZZ_BUDGET
    limit = f"{budget:,} cases" if budget else f"{args.time:g} s"
    print(
        f"crossgrad fuzz: seed {args.seed}, {limit} on {', '.join(backends[1:])} "
        f"(reference: {args.reference})",
        file=sys.stderr,
    )
    options = Options(
        seed=args.seed,
        budget=budget,
        seconds=args.time,
        backends=backends,
        reference=args.reference,
        known=known,
        timeout=args.timeout,
        jobs=args.jobs,
        dtypes=tuple(dtypes) or DTYPES,
        shrink_seconds=args.shrink_time,
    )
    outcome = campaign(out, options, sys.stderr)
    for number, finding in enumerate(outcome.findings, 1):
        print(
            f"finding {number}: {finding.case['name']}: {finding.signature.describe()} "
            f"({finding.hits} generated case{'s' * (finding.hits != 1)})"
        )
    if outcome.incomplete:
        print(f"crossgrad fuzz: incomplete: {outcome.incomplete}", file=sys.stderr)
    total = outcome.cases_run + outcome.cases_cached
    print(
        f"crossgrad fuzz: {total:,} cases in {outcome.seconds:.0f} s "
        f"({outcome.cases_run / max(outcome.seconds, 1e-9):.1f} cases/s), "
        f"{len(outcome.findings)} finding{'s' * (len(outcome.findings) != 1)}, "
        f"{outcome.explained:,} pairs explained by known entries, "
        f"{outcome.after_overflow:,} diverged only after the reference overflowed; "
        f"see {out / 'findings.md'}",
        file=sys.stderr,
    )
    if outcome.stop_status is not None:
        return outcome.stop_status
    return EXIT_FAILED if outcome.findings else EXIT_OK


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text}")
    return value


def _add_known_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--known",
        action="append",
        default=None,
        metavar="FILE",
        help="a file of triaged divergences, applied in addition to the built-in "
        "cases/known_divergences.yaml and the adapters' own (repeatable; 'none' applies "
        "no entries at all)",
    )


def _size(text: str) -> int:
    from harness.run.budget import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def _report(args: argparse.Namespace) -> int:
    from harness.report.folder import ReportFolder

    with ReportFolder(Path(args.out), "report") as folder:  # written aside, then swapped in
        status = _merge_into(args, folder.path)
        folder.commit({"inputs": args.results})
    return status


def _known_records(folders: list[Path]) -> list[dict[str, object]]:
    """Each input folder's known.json (a run from before it existed has none)."""
    from harness.errors import ResultsError
    from harness.report.results_io import read_json
    from harness.verdict.known import KNOWN_FILE

    records = []
    for folder in folders:
        path = folder / KNOWN_FILE
        if path.is_file():
            record = read_json(path)
            if not isinstance(record, dict):
                raise ResultsError(f"{path}: not a crossgrad known.json (expected an object)")
            records.append(record)
    return records


def _merge_into(args: argparse.Namespace, out: Path) -> int:
    from harness.report.coverage import coverage_markdown, merge_coverage
    from harness.report.merge import merge
    from harness.report.repro import failing_pairs, sources_from_reports, write_repro
    from harness.report.results_io import read_results
    from harness.report.summaries import exit_status
    from harness.report.table import format_table
    from harness.report.writer import write_report
    from harness.verdict.known import stale_from_records

    inputs = [read_results(Path(p), args.allow_incomplete) for p in args.results]
    table = merge(inputs)
    sources = sources_from_reports([r.folder for r in inputs if r.folder is not None])
    repro = write_repro(failing_pairs(table), sources, out, Path(args.out))
    environments = [env for r in inputs for env in r.environments]
    folders = [r.folder for r in inputs if r.folder is not None]
    knob_coverage = merge_coverage(folders, list(dict.fromkeys(table["backend"])))
    reference = str(table["backend"].iloc[0]) if len(table) else None  # merge puts it first
    incomplete = "; ".join(r.incomplete for r in inputs if r.incomplete) or None
    if incomplete:
        print(f"crossgrad: report incomplete: {incomplete}", file=sys.stderr)
    summaries = write_report(
        table,
        out,
        environments,
        repro,
        stale=stale_from_records(_known_records(folders)),
        sections=[coverage_markdown(knob_coverage, reference)],
        incomplete=incomplete,
    )
    if not knob_coverage.empty:
        knob_coverage.to_csv(out / "coverage.csv", index=False)
    print(format_table(summaries))
    print(
        f"\nreport: {Path(args.out) / 'summary.md'} ({len(table):,} rows from {len(inputs)} inputs)",
        file=sys.stderr,
    )
    return exit_status(table)


def _diff(args: argparse.Namespace) -> int:
    from harness.report.diff import diff
    from harness.report.results_io import read_results

    baseline = read_results(Path(args.baseline), args.allow_incomplete)
    current = read_results(Path(args.current), args.allow_incomplete)
    for side in (baseline, current):
        if side.incomplete:
            print(f"crossgrad: warning: {side.incomplete}", file=sys.stderr)
    changes = diff(baseline.table, current.table)
    for change in changes:
        print(change)
    verdict = (
        f"{len(changes)} unexpected change{'s' * (len(changes) != 1)}" if changes else "no change"
    )
    print(f"crossgrad diff: {baseline.path} -> {current.path}: {verdict}", file=sys.stderr)
    return EXIT_FAILED if changes else EXIT_OK


def _select(cases: list[Case], patterns: list[str]) -> list[Case]:
    from harness.cases.patterns import matches

    if not patterns:
        return cases
    chosen = [c for c in cases if any(matches(c.name, p) for p in patterns)]
    if not chosen:
        raise UsageError(
            f"no case name matches --case {' '.join(patterns)} (of {len(cases)} cases)"
        )
    return chosen


def _backend_names(requested: list[str], reference: str) -> list[str]:
    names = [name.strip() for item in requested for name in item.split(",") if name.strip()]
    known = registry.entries()
    for name in [*names, reference]:
        if name not in known:
            raise UnknownBackend(name, list(known))
    if not names:
        names = registry.available_names()
    for name in [reference, *names]:
        reason = registry.load_class(name).unavailable_reason()
        if reason:
            raise BackendUnavailable(name, reason)
    return list(dict.fromkeys([reference, *names]))


def _validate(args: argparse.Namespace) -> int:
    from harness.cases.loader import load_cases

    cases = load_cases(args.paths)
    files = len({c.source.rpartition(":")[0] for c in cases})
    print(f"{len(cases)} cases in {files} file{'s' * (files != 1)} (matrices expanded): OK")
    return EXIT_OK


def _check_adapter(args: argparse.Namespace) -> int:
    from harness.conformance.battery import check_adapter
    from harness.verdict.known import adapter_known, known_option

    known = known_option(args.known)
    if "none" not in (args.known or []):
        known = adapter_known([args.name], known)
    results, table = check_adapter(args.name, args.reference, args.check, known)
    if not results:
        raise UsageError(f"no conformance check matches --check {' '.join(args.check)}")
    print(table)
    return EXIT_FAILED if any(r.failed for r in results) else EXIT_OK


def _backends(args: argparse.Namespace) -> int:
    rows = [("backend", "status", "version", "source")]
    for name, entry in registry.entries().items():
        try:
            cls = registry.load_class(name)
            reason = cls.unavailable_reason()
            version = "" if reason else cls.version()
        except BackendUnavailable as exc:
            reason, version = exc.reason, ""
        rows.append(
            (
                terminal(name),
                f"unavailable ({terminal(reason)})" if reason else "available",
                terminal(version),
                terminal(entry.source),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK
