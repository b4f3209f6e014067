"""A fuzzing campaign: generate families of cases, run them through the normal pipeline,
group the unexplained divergences by kind, shrink each group to a minimal case, and find
which knob values matter.

Hypothesis does the generating and the shrinking (docs/fuzzing.md, "Why Hypothesis").
Generation is ``hypothesis.find`` with a condition that never holds, run in a thread that
hands each family to the campaign; the campaign runs families in rounds through
``RunSession`` (workers, vectorized batches, streaming) and judges them as ``crossgrad
run`` does (``harness.run.pipeline.judge``: tolerances, known divergences, triage).
Shrinking is a second ``find`` with the same seed and settings: it generates the same
families in the same order — every one already judged, so each is a cache lookup — up to
the first family that diverges the way a group does, then shrinks it with Hypothesis'
shrinker, running each candidate on the reference and the one backend. Hypothesis'
example database (``fuzz-state/hypothesis``) keeps every minimal family, so a second run
into the same folder replays them instead of shrinking again, and the judged families
(``fuzz-state/verdicts.jsonl``) are not run again.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import random
import shutil
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from hypothesis import HealthCheck, Phase, find, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from harness.cases.loader import load_mappings
from harness.cases.model import Case
from harness.errors import CaseError
from harness.fuzz.casefile import dump_cases
from harness.fuzz.findings import write_findings
from harness.fuzz.generate import FIXED_OUTPUT_ACTIVATION, Family, case_mapping, families
from harness.fuzz.model import Finding, Observation, Options, Outcome
from harness.fuzz.signature import Kind, Signature, first_failures, knobs
from harness.report.folder import MARK, RUN_FILE, ReportFolder, is_report, now
from harness.report.repro import case_sources, write_repro
from harness.report.summaries import PairSummary, summarize
from harness.report.writer import ReportWriter, atomic_write_text
from harness.run.fingerprint import fingerprint
from harness.run.pipeline import judge
from harness.run.session import RunSession
from harness.run.vectorize import run as run_cases
from harness.verdict.status import FAILING

# max_examples of every Hypothesis search of a campaign. Hypothesis' sequence of examples
# depends on it, and a shrink replays the generation's sequence: both use this one value.
GENERATION_CAP = 1_000_000
ROUND_CASES = 400  # cases judged between two progress lines
MAX_FINDINGS = 30  # groups shrunk per campaign; the rest are listed unshrunk
STATE = "fuzz-state"
DATABASE = "hypothesis"
VERDICTS = "verdicts.jsonl"
CASES = "cases"


def family_id(family: Family) -> str:
    text = json.dumps([family.structure, family.variants], sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


# ---------------------------------------------------------------- generation


class _Enough(BaseException):
    """Ends a generating ``find``: a BaseException, so Hypothesis does not take it for a
    failing example to shrink."""


def _search_settings(database: Any, phases: Sequence[Phase]) -> settings:
    return settings(
        max_examples=GENERATION_CAP,
        database=database,
        phases=list(phases),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=False,
        print_blob=False,
    )


class FamilyStream:
    """The campaign's families in Hypothesis' order, generated in a thread ahead of use."""

    def __init__(self, seed: int, dtypes: Sequence[str], ahead: int = 64) -> None:
        self._queue: queue.Queue[Family | BaseException | None] = queue.Queue(maxsize=ahead)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._generate, args=(seed, tuple(dtypes)), daemon=True, name="fuzz-generate"
        )
        self._thread.start()

    def _generate(self, seed: int, dtypes: tuple[str, ...]) -> None:
        # Hypothesis restores the recursion limit a search found, and warns when something
        # else changed it meanwhile: here the campaign's own thread, importing frameworks
        # that raise it. Nothing to act on, once per round otherwise.
        warnings.filterwarnings(
            "ignore", message="The recursion limit will not be reset", module="hypothesis"
        )

        def hand_over(family: Family) -> bool:
            while not self._stop.is_set():
                try:
                    self._queue.put(family, timeout=0.2)
                    return False
                except queue.Full:
                    continue
            raise _Enough

        try:
            find(
                families(dtypes),
                hand_over,
                settings=_search_settings(None, [Phase.generate]),
                random=random.Random(seed),
            )
        except _Enough:
            return
        except BaseException as exc:  # NoSuchExample at the cap, or a generator bug
            self._queue.put(exc)
            return
        self._queue.put(None)

    def __iter__(self) -> Iterator[Family]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                if type(item).__name__ == "NoSuchExample":
                    return  # the cap: every family generated
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()


# ---------------------------------------------------------------- judging


class Judge:
    """Judges families: from the campaign's verdicts when they ran before, else by running
    them on the reference and the backends asked for. Verdicts persist in ``path``."""

    def __init__(self, options: Options, path: Path, log: TextIO | None) -> None:
        self.options = options
        self.path = path
        self.context = _context(options)
        self.entries = _entry_ids(options)
        # family id -> backends it ran on, and its failures [(variant, Kind)]
        self.ran: dict[str, set[str]] = {}
        self.failures: dict[str, list[tuple[int, Kind]]] = {}
        self.loaded = self._load(log)
        self._file = path.open("a", encoding="utf-8")
        if path.stat().st_size == 0:
            self._write({"context": self.context, "known": self.entries})

    def _load(self, log: TextIO | None) -> int:
        if not self.path.is_file():
            return 0
        lines = self.path.read_text(encoding="utf-8").splitlines()
        try:
            head = json.loads(lines[0]) if lines else {}
            if head.get("context") != self.context or not isinstance(head.get("known"), list):
                if log is not None:
                    print(
                        "crossgrad fuzz: the earlier campaign in this folder ran other backends, "
                        "versions or judging code: its verdicts are not reused",
                        file=log,
                    )
                self.path.unlink()
                return 0
            for line in lines[1:]:
                record = json.loads(line)
                self._remember(
                    record["family"],
                    record["backends"],
                    [(v, Kind(*k)) for v, k in record["failures"]],
                )
        except (ValueError, KeyError, TypeError, IndexError):
            if log is not None:
                print(f"crossgrad fuzz: {self.path} is unreadable: not reused", file=log)
            self.path.unlink(missing_ok=True)
            self.ran.clear()
            self.failures.clear()
            return 0
        if head["known"] != self.entries:
            self._rejudge(set(head["known"]) <= set(self.entries), log)
        return len(self.ran)

    def _rejudge(self, only_added: bool, log: TextIO | None) -> None:
        """Known entries changed since the verdicts were written. An added entry can only
        turn a diverged row into a known one, so families that had no failure keep their
        verdicts and the others are judged again; any other change judges everything again."""
        clean = {f for f in self.ran if not self.failures.get(f)} if only_added else set()
        again = len(self.ran) - len(clean)
        self.ran = {f: b for f, b in self.ran.items() if f in clean}
        self.failures = {f: [] for f in clean}
        records = [{"context": self.context, "known": self.entries}] + [
            {"family": f, "backends": sorted(b), "failures": []} for f, b in self.ran.items()
        ]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in records))
        if log is not None:
            print(
                f"crossgrad fuzz: the known divergences changed since the earlier campaign in "
                f"this folder: {again:,} families are judged again",
                file=log,
            )

    def _remember(
        self, family: str, backends: Sequence[str], failures: list[tuple[int, Kind]]
    ) -> None:
        self.ran.setdefault(family, set()).update(backends)
        kept = [f for f in self.failures.get(family, []) if f[1].backend not in backends]
        self.failures[family] = kept + failures

    def _write(self, record: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(record, default=list) + "\n")
        self._file.flush()

    def record(
        self, family: str, backends: Sequence[str], failures: list[tuple[int, Kind]]
    ) -> None:
        self._remember(family, backends, failures)
        self._write(
            {
                "family": family,
                "backends": list(backends),
                "failures": [[v, k.fields()] for v, k in failures],
            }
        )

    def known(self, family: str, backend: str) -> bool:
        return backend in self.ran.get(family, ())

    def kinds(self, family: Family, backend: str) -> list[tuple[int, Kind]]:
        """Each failing variant of ``family`` on ``backend`` and its kind."""
        key = family_id(family)
        if not self.known(key, backend):
            self.record(key, [backend], self._run(family, backend))
        return [(v, k) for v, k in self.failures.get(key, []) if k.backend == backend]

    def _run(self, family: Family, backend: str) -> list[tuple[int, Kind]]:
        mappings = family.cases("shrink")
        cases = _checked(mappings)
        if cases is None:
            return []  # a candidate the loader refuses is no example of anything
        backends = list(dict.fromkeys([self.options.reference, backend]))
        raw = run_cases(cases, backends, None, timeout=self.options.timeout, jobs=self.options.jobs)
        table, _, _ = judge(raw, cases, self.options.known, self.options.reference)
        layers = {c.name: c.network.n_layers for c in cases}
        index = {c.name: i for i, c in enumerate(cases)}
        return [
            (index[case], kind)
            for (case, _), kind in first_failures(table, layers, self.options.reference).items()
        ]

    def close(self) -> None:
        self._file.close()


def _context(options: Options) -> str:
    """What the verdicts depend on besides the case and the known entries: reused only
    when it is the same."""
    from backends import registry

    versions = {}
    for name in options.backends:
        try:
            versions[name] = registry.load_class(name).version()
        except Exception:  # an unavailable backend has no version; its rows say why
            versions[name] = ""
    text = json.dumps([options.reference, versions, _judging_code()], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


# The modules whose code decides a verdict besides the frameworks: the reference, the
# comparison and its tolerance model, known divergences, the kind of a failure.
JUDGING_MODULES = ("backends.numpy", "harness.verdict", "harness.fuzz.signature")


def _judging_code() -> str:
    """A digest of the source of ``JUDGING_MODULES``: a campaign resumed after any of it
    changed (a reference fix, a tolerance rule) judges everything again."""
    import importlib

    digest = hashlib.sha256()
    for name in JUDGING_MODULES:
        module = importlib.import_module(name)
        origin = Path(module.__file__ or "")
        files = sorted(origin.parent.glob("*.py")) if origin.name == "__init__.py" else [origin]
        for file in files:
            digest.update(file.name.encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:20]


def _entry_ids(options: Options) -> list[str]:
    """One short hash per known entry, of what decides verdicts (not its text or its place
    in a file), so that a later campaign can tell which entries were added."""
    texts = (
        repr(replace(e, location="", measured="", reason="", source="")) for e in options.known
    )
    return sorted({hashlib.sha256(t.encode()).hexdigest()[:16] for t in texts})


def _checked(mappings: list[dict[str, Any]]) -> list[Case] | None:
    """The cases, or None when the loader refuses one (a shrink candidate can be invalid)."""
    try:
        return load_mappings(mappings, "<fuzz candidate>")
    except CaseError:
        return None


# ---------------------------------------------------------------- the campaign


def campaign(
    out: Path,
    options: Options,
    log: TextIO,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Run a campaign into the report folder ``out`` (replaced whole at the end, as a run's)."""
    started = clock()
    previous = out if out.is_dir() and is_report(out) else None
    with ReportFolder(out, "fuzz", log) as folder:
        state = folder.path / STATE
        state.mkdir()
        if previous is not None:
            _copy_state(previous / STATE, state)
        (folder.path / CASES).mkdir()
        judge_ = Judge(options, state / VERDICTS, log)
        if judge_.loaded:
            print(
                f"crossgrad fuzz: resuming: {judge_.loaded:,} families judged by an earlier run "
                "in this folder are not run again",
                file=log,
            )
        observations: list[Observation] = []
        mappings: dict[str, list[dict[str, Any]]] = {}  # family id -> its case mappings
        explained = 0
        cases_run = cases_cached = rows = 0
        incomplete: str | None = None
        stop_status: int | None = None
        summaries_of: dict[tuple[str, str], PairSummary] = {}
        all_cases: list[Case] = []
        settings_seen: dict[str, Any] = {}
        stream = FamilyStream(options.seed, options.dtypes)
        with ReportWriter(folder.path) as writer:
            try:
                for batch in _rounds(stream, options, clock, started):
                    fresh = []
                    for index, family in batch:
                        key = family_id(family)
                        prefix = f"fuzz-{options.seed}-{index:05d}"
                        mappings[key] = family.cases(prefix)
                        file = folder.path / CASES / f"{prefix}.yaml"
                        atomic_write_text(file, dump_cases(mappings[key]))
                        if all(judge_.known(key, b) for b in options.backends[1:]):
                            cases_cached += len(family.variants)
                            observations += _observations(key, judge_, mappings[key], options)
                            continue
                        fresh.append((key, file))
                    if not fresh:
                        continue
                    cases = [
                        c for key, file in fresh for c in load_mappings(mappings[key], str(file))
                    ]
                    family_of = {m["name"]: key for key, _ in fresh for m in mappings[key]}
                    session = RunSession(folder.path, cases, options.backends, options.reference)
                    with session:
                        for chunk, raw in session.chunks(
                            None, vectorize=True, timeout=options.timeout, jobs=options.jobs
                        ):
                            table, _, _ = judge(raw, chunk, options.known, options.reference)
                            summaries = writer.add(table)
                            rows += len(table)
                            settings_seen.update(session.settings)
                            for s in summaries:
                                if s.status in FAILING:
                                    summaries_of[(s.case, s.backend)] = s
                                explained += s.status == "known"
                            if session.stopped is None:  # else part of it did not run
                                _record(table, chunk, family_of, judge_, options)
                    all_cases += cases
                    session.finish(rows)
                    if session.stopped is not None:
                        incomplete, stop_status = session.incomplete, session.status
                        break
                    cases_run += len(cases)
                    for key, _ in fresh:
                        observations += _observations(key, judge_, mappings[key], options)
                    _progress(log, cases_run, cases_cached, clock() - started, observations)
            except KeyboardInterrupt:
                incomplete, stop_status = "interrupted by SIGINT while generating", 130
            finally:
                stream.close()
            # Past the reference's own overflow the values are IEEE special-value propagation,
            # not arithmetic to compare: counted and listed, never findings (docs/fuzzing.md).
            overflowed = [o for o in observations if o.kind.overflow]
            observations = [o for o in observations if not o.kind.overflow]
            # A stopped campaign keeps what it found as it ran: shrinking can take minutes.
            findings = _unshrunk(observations, mappings)
            try:
                if incomplete is None:
                    findings = shrink_all(observations, judge_, options, state, log, mappings)
            except KeyboardInterrupt:
                incomplete, stop_status = "interrupted by SIGINT while shrinking", 130
            finally:
                judge_.close()
            _describe_findings(findings, options)
            after_overflow = _tally(overflowed, mappings)
            write_findings(
                folder.path, out, findings, after_overflow, options, cases_run + cases_cached
            )
            failing_cases = {case for case, _ in writer.failing}
            sources = case_sources(
                [c for c in all_cases if c.name in failing_cases], options.backends
            )
            repro = write_repro(writer.failing, sources, folder.path, out)
            writer.finish(
                [fingerprint(all_cases, settings_seen, options.backends)],
                repro,
                (),
                [],
                incomplete,
            )
        seconds = clock() - started
        record = {
            **MARK,
            "command": "fuzz",
            "complete": incomplete is None,
            "state": "complete" if incomplete is None else "stopped",
            "reason": incomplete or "",
            "finished": now(),
            "seed": options.seed,
            "cases": cases_run,
            "cases_cached": cases_cached,
            "backends": options.backends,
            "reference": options.reference,
            "rows": rows,
            "findings": len(findings),
            "after_overflow": len(overflowed),
            "seconds": round(seconds, 1),
        }
        atomic_write_text(folder.path / RUN_FILE, json.dumps(record, indent=2) + "\n")
        folder.commit()
    return Outcome(
        cases_run,
        cases_cached,
        findings,
        explained,
        incomplete,
        seconds,
        rows,
        stop_status,
        len(overflowed),
    )


def _rounds(
    stream: FamilyStream, options: Options, clock: Callable[[], float], started: float
) -> Iterator[list[tuple[int, Family]]]:
    """Distinct families in rounds of about ``ROUND_CASES`` cases, until the budget of cases
    or of seconds is spent; the last family is cut to fit the budget exactly."""
    batch: list[tuple[int, Family]] = []
    size = total = 0
    seen: set[str] = set()
    for index, family in enumerate(stream):
        key = family_id(family)
        if key in seen:  # Hypothesis repeats a simple example now and then
            continue
        seen.add(key)
        if options.seconds is not None and clock() - started >= options.seconds:
            break
        if options.budget is not None:
            room = options.budget - total
            if room <= 0:
                break
            if len(family.variants) > room:
                family = Family(family.structure, family.variants[:room])
        batch.append((index, family))
        size += len(family.variants)
        total += len(family.variants)
        if size >= ROUND_CASES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _record(
    table: Any, chunk: list[Case], family_of: Mapping[str, str], judge_: Judge, options: Options
) -> None:
    layers = {c.name: c.network.n_layers for c in chunk}
    kinds = first_failures(table, layers, options.reference)
    by_family: dict[str, list[tuple[int, Kind]]] = {family_of[c.name]: [] for c in chunk}
    for (case, _), kind in kinds.items():
        by_family[family_of[case]].append((int(case.rpartition("-")[2]), kind))
    for key, failures in by_family.items():
        judge_.record(key, options.backends[1:], failures)


def _observations(
    key: str, judge_: Judge, mappings: list[dict[str, Any]], options: Options
) -> list[Observation]:
    return [
        Observation(key, variant, kind, knobs(mappings[variant]))
        for variant, kind in judge_.failures.get(key, [])
        if kind.backend in options.backends[1:] and variant < len(mappings)
    ]


def _tally(
    observations: list[Observation], mappings: Mapping[str, list[dict[str, Any]]]
) -> dict[Kind, tuple[int, str]]:
    """Per kind: how many generated cases, and the first one's name."""
    tally: dict[Kind, tuple[int, str]] = {}
    for o in observations:
        count, example = tally.get(o.kind, (0, str(mappings[o.family][o.variant]["name"])))
        tally[o.kind] = (count + 1, example)
    return tally


def _progress(
    log: TextIO, run: int, cached: int, seconds: float, observations: list[Observation]
) -> None:
    overflowed = sum(o.kind.overflow for o in observations)
    observations = [o for o in observations if not o.kind.overflow]
    kinds = len({o.kind for o in observations})
    cached_text = f" (+{cached:,} judged before)" if cached else ""
    print(
        f"crossgrad fuzz: {run:,} cases run{cached_text} in {seconds:.0f} s "
        f"({run / max(seconds, 1e-9):.1f} cases/s); {len(observations):,} unexplained "
        f"divergences of {kinds} kind{'s' * (kinds != 1)} so far"
        + (f" (+{overflowed:,} after the reference overflowed)" if overflowed else ""),
        file=log,
        flush=True,
    )


def _copy_state(source: Path, target: Path) -> None:
    """The earlier campaign's state: regular files only, never through a link (a report
    folder is input like any other; a planted link must not copy files from elsewhere)."""
    if source.is_symlink() or not source.is_dir():
        return
    for folder, directories, files in os.walk(source):  # os.walk does not follow links
        here = Path(folder)
        directories[:] = [d for d in directories if not (here / d).is_symlink()]
        for name in files:
            path = here / name
            if path.is_symlink() or not path.is_file():
                continue
            copy = target / path.relative_to(source)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy, follow_symlinks=False)


# ---------------------------------------------------------------- shrinking


def shrink_all(
    observations: list[Observation],
    judge_: Judge,
    options: Options,
    state: Path,
    log: TextIO,
    mappings: Mapping[str, list[dict[str, Any]]],
) -> list[Finding]:
    """One finding per distinct signature, most-hit kinds first."""
    database = DirectoryBasedExampleDatabase(str(state / DATABASE))
    by_kind = _by_kind(observations)
    findings: list[Finding] = []
    for kind in sorted(by_kind, key=lambda k: (-len(by_kind[k]), k.describe())):
        remaining = by_kind[kind]
        while remaining:
            if len(findings) >= MAX_FINDINGS:
                why = f"not shrunk: more than {MAX_FINDINGS} findings in one campaign"
                findings.append(_as_found(kind, remaining, mappings, len(findings), why))
                break
            patterns = [f.signature for f in findings if f.signature.kind == kind]
            print(
                f"crossgrad fuzz: shrinking {kind.describe()} ({len(remaining):,} cases)",
                file=log,
                flush=True,
            )
            finding = _shrink(kind, patterns, remaining[0], judge_, options, database, mappings)
            finding.case = _named(finding.case, kind, len(findings), finding.signature)
            hit = [o for o in remaining if finding.signature.matches(o.kind, o.knobs)] or remaining[
                :1
            ]
            finding.hits = len(hit)
            findings.append(finding)
            remaining = [o for o in remaining if o not in hit]
    return findings


def _shrink(
    kind: Kind,
    patterns: list[Signature],
    first: Observation,
    judge_: Judge,
    options: Options,
    database: Any,
    mappings: Mapping[str, list[dict[str, Any]]],
) -> Finding:
    def shows(family: Family) -> int | None:
        """The first variant of ``family`` that fails as ``kind``, also when it runs alone
        (a finding is one case, and a case in a batch may run another code path), and is
        no finding made already."""
        for variant, found in judge_.kinds(family, kind.backend):
            values = family.variants[variant]
            if found != kind or any(
                p.matches(found, knobs(case_mapping("c", family.structure, values)))
                for p in patterns
            ):
                continue
            alone = Family(family.structure, (values,))
            if len(family.variants) == 1 or any(
                k == kind for _, k in judge_.kinds(alone, kind.backend)
            ):
                return variant
        return None

    key = json.dumps([kind.describe(), [p.describe() for p in patterns]]).encode()
    started = time.monotonic()
    # Hypothesis only accepts a smaller failing family than the last one: the last family
    # that showed the kind is the best so far, kept for when the time limit stops the shrink.
    best: list[Family] = []

    def condition(family: Family) -> bool:
        if best and time.monotonic() - shrinking_since[0] > options.shrink_seconds:
            raise _Enough
        if shows(family) is None:
            return False
        if not best:
            shrinking_since[0] = time.monotonic()
        best[:] = [family]
        return True

    shrinking_since = [time.monotonic()]
    limited = ""
    try:
        try:
            minimal = find(
                families(options.dtypes),
                condition,
                settings=_search_settings(database, [Phase.reuse, Phase.generate, Phase.shrink]),
                random=random.Random(options.seed),
                database_key=key,
            )
        except _Enough:
            minimal = best[0]
            limited = f" (stopped at the {options.shrink_seconds:g} s limit)"
        variant = shows(minimal)
        assert variant is not None  # find returned it because it shows the kind
        mapping = case_mapping("minimal", minimal.structure, minimal.variants[variant])
        how = f"shrunk by Hypothesis in {time.monotonic() - started:.0f} s{limited}"
    except Exception as exc:  # NoSuchExample (the replay missed it) or a flaky condition
        mapping = mappings[first.family][first.variant]
        how = f"not shrunk ({type(exc).__name__}): the generated case as it ran"
    matter = _knobs_that_matter(mapping, kind, judge_)
    return Finding(Signature(kind, matter), mapping, shrunk=how)


def _knobs_that_matter(mapping: dict[str, Any], kind: Kind, judge_: Judge) -> dict[str, Any]:
    """The minimal case's knob values without which it no longer fails as ``kind``: a knob
    matters when no alternative value of it (``alternatives``) still shows the kind. One
    alternative alone could hide the failure for its own reasons (a relu output that is 0
    stops every gradient), so each knob is tried with up to three."""
    matter = {}
    for knob, value in knobs(mapping).items():
        probes = alternatives(mapping, knob)
        if not any(_shows(probe, kind, judge_) for probe in probes):
            matter[knob] = value  # kept too where there is nothing to try instead
    return matter


def _shows(mapping: Mapping[str, Any], kind: Kind, judge_: Judge) -> bool:
    family = Family(_structure(mapping), (_values(mapping),))
    return any(found == kind for _, found in judge_.kinds(family, kind.backend))


# Alternatives tried for a name knob, simplest first (a smooth function, to keep gradients).
SMOOTH_ACTIVATIONS = ("identity", "sigmoid", "tanh", "softplus")
REGRESSION_LOSSES = ("mse", "sse", "half_sse", "mae", "huber")
PROBES_PER_KNOB = 3


def alternatives(mapping: Mapping[str, Any], knob: str) -> list[dict[str, Any]]:
    """Copies of ``mapping`` with ``knob`` at its default or another simple value."""
    loss = mapping["loss"] if isinstance(mapping["loss"], str) else mapping["loss"]["name"]
    optimizer = mapping["optimizer"]
    if knob in ("activation", "output_activation"):
        if knob == "output_activation" and loss in FIXED_OUTPUT_ACTIVATION:
            return []  # the loss fixes it: the loss's probes cover it
        current = mapping["network"][knob]
        changes: list[Any] = [{"network": {knob: a}} for a in SMOOTH_ACTIVATIONS if a != current]
    elif knob == "loss":
        changes = [{"loss": name} for name in REGRESSION_LOSSES if name != loss]
    elif knob.startswith("loss."):
        changes = [{"loss": loss}]
    elif knob == "optimizer":
        lr = optimizer.get("lr", 0.1)
        others = [{"name": "sgd", "lr": lr}, {"name": "adam"}, {"name": "rmsprop"}]
        changes = [{"optimizer": o} for o in others if o["name"] != optimizer["name"]]
    elif knob.startswith("optimizer."):
        argument = knob.partition(".")[2]
        if argument == "lr" and optimizer["name"] == "sgd":
            changes = [{"optimizer": {**optimizer, "lr": lr}} for lr in (0.1, 0.01)]
            changes = [c for c in changes if c["optimizer"]["lr"] != optimizer["lr"]]
        else:
            kept = {k: v for k, v in optimizer.items() if k != argument}
            if argument == "momentum":
                kept.pop("nesterov", None)
            changes = [{"optimizer": kept}]
    elif knob == "dtype":
        changes = [{"dtype": d} for d in ("float64", "float32") if d != mapping["dtype"]]
    else:
        return []
    probes = []
    for change in changes[:PROBES_PER_KNOB]:
        probe = json.loads(json.dumps(mapping))
        for key, value in change.items():
            if key == "network":
                probe["network"].update(value)
            else:
                probe[key] = value
        probes.append(probe)
    return probes


def _structure(mapping: Mapping[str, Any]) -> dict[str, Any]:
    network = {k: v for k, v in mapping["network"].items() if k != "params"}
    return {"network": network, **{k: mapping[k] for k in ("loss", "optimizer", "steps", "dtype")}}


def _values(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "params": mapping["network"]["params"],
        "x": mapping["data"]["x"],
        "y": mapping["data"]["y"],
    }


def _named(
    mapping: dict[str, Any], kind: Kind, number: int, signature: Signature | None = None
) -> dict[str, Any]:
    slug = (signature or Signature(kind)).slug()
    named = dict(mapping)
    named["name"] = f"finding-{number + 1:02d}-{slug}"[:120]
    return named


def _unshrunk(
    observations: list[Observation], mappings: Mapping[str, list[dict[str, Any]]]
) -> list[Finding]:
    """After an interrupt: one finding per kind, its first generated case as it ran."""
    findings: list[Finding] = []
    for kind, found in _by_kind(observations).items():
        why = "not shrunk: the campaign was interrupted"
        findings.append(_as_found(kind, found, mappings, len(findings), why))
    return findings


def _by_kind(observations: list[Observation]) -> dict[Kind, list[Observation]]:
    by_kind: dict[Kind, list[Observation]] = {}
    for o in observations:
        by_kind.setdefault(o.kind, []).append(o)
    return by_kind


def _as_found(
    kind: Kind,
    found: list[Observation],
    mappings: Mapping[str, list[dict[str, Any]]],
    number: int,
    why: str,
) -> Finding:
    """An unshrunk finding: the first generated case of ``kind`` as it ran."""
    first = found[0]
    case = _named(mappings[first.family][first.variant], kind, number)
    return Finding(Signature(kind, {}), case, hits=len(found), shrunk=why)


def _describe_findings(findings: list[Finding], options: Options) -> None:
    """Each finding's first divergence and the oracle's word, from a run of its minimal case."""
    for finding in findings:
        cases = _checked([finding.case])
        if cases is None:
            finding.first_divergence = "(the minimal case does not load)"
            continue
        backend = finding.signature.kind.backend
        backends = list(dict.fromkeys([options.reference, backend]))
        raw = run_cases(cases, backends, None, timeout=options.timeout, jobs=options.jobs)
        table, _, _ = judge(raw, cases, options.known, options.reference)
        for summary in summarize(table):
            if summary.backend == backend:
                finding.first_divergence = summary.first_divergence
                finding.off_oracle = summary.off_oracle
        if not finding.first_divergence:
            finding.first_divergence = "(the case does not fail when it runs alone)"
