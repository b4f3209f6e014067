"""crossgrad against bare framework scripts: prints the issue-7 ratios as one table.

    python -m benchmarks.run                # every section, ~15 min on 2 CPU cores (memory: most)
    python -m benchmarks.run --quick        # tiny sizes: checks the benchmark runs, not speed

Sections: ``loop`` (warm per-case loop per backend and mode, in this process, against the
idiomatic loops of ``benchmarks/bare_loops.py``), ``process`` (the seed case on four
backends as a whole ``crossgrad run`` process against a bare script importing the four
frameworks), ``sweep`` (vectorized case-steps per second and verdicts against the loop),
``fuzz`` (cases/s of a ``crossgrad fuzz`` campaign, end to end, per backend and for all
together), ``memory`` (peak memory of a large streamed sweep against one ten times smaller).
A benchmark prints figures; it never fails a test on a slow machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backends import registry
from benchmarks.bare_loops import SeedValues, bare_loop
from harness.cases.inputs import Inputs, make_inputs
from harness.cases.loader import load_cases
from harness.cases.model import Case
from harness.run import determinism

ROOT = Path(__file__).resolve().parent.parent
SEED_FILE = ROOT / "cases" / "seed.yaml"
LOOP_BACKENDS = (
    "numpy",
    "torch",
    "torch:compile",
    "jax",
    "jax:eager",
    "tensorflow",
    "tensorflow:eager",
)


@dataclass(frozen=True)
class Row:
    """One line of the printed table."""

    section: str
    subject: str
    measure: str
    crossgrad: float
    bare: float | None
    ratio: float | None
    target: str
    met: bool | None


def seed_variants(count: int, seed: int = 0) -> list[Case]:
    """``count`` copies of the seed case with random weights and data (same shapes, same step)."""
    (base,) = load_cases([SEED_FILE])
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(count):
        params = {name: rng.uniform(-3, 3, size=v.shape) for name, v in base.network.params.items()}
        cases.append(
            dataclasses.replace(
                base,
                name=f"seed-variant-{i}",
                network=dataclasses.replace(base.network, params=params),
                x=rng.uniform(-1, 1, size=(1, 1)),
                y=rng.uniform(0, 1, size=(1, 1)),
                expect=None,
            )
        )
    return cases


def as_seed_values(inputs: Inputs) -> SeedValues:
    p = {name: value.astype(np.float32) for name, value in inputs.params.items()}
    return SeedValues(
        p["layers.0.weight"],
        p["layers.0.bias"],
        p["layers.1.weight"],
        p["layers.1.bias"],
        inputs.x.astype(np.float32),
        inputs.y.astype(np.float32),
    )


def best_rate(run: Callable[[], object], count: int, repeats: int) -> float:
    """Cases per second of the fastest of ``repeats`` timed runs over ``count`` cases."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return count / best


def loop_section(backends: Sequence[str], count: int, repeats: int) -> list[Row]:
    """Warm per-case loop: ``Backend.run`` plus the table rows, against the bare loop."""
    cases = seed_variants(count)
    inputs = [make_inputs(case) for case in cases]
    values = [as_seed_values(i) for i in inputs]
    rows = []
    for name in backends:
        backend = registry.create(name)
        bare = bare_loop(name)

        def harness_loop(backend=backend) -> None:  # type: ignore[no-untyped-def]
            for case, case_inputs in zip(cases, inputs, strict=True):
                backend.run(case, case_inputs).rows()

        bare_loop_run = lambda bare=bare: bare(values)  # noqa: E731
        harness_loop(), bare_loop_run()  # warm: traces, compiles, caches
        ours = best_rate(harness_loop, count, repeats)
        theirs = best_rate(bare_loop_run, count, repeats)
        ratio = ours / theirs
        rows.append(
            Row("loop", name, "cases/s", ours, theirs, ratio, ">= 0.7 x bare", ratio >= 0.7)
        )
    return rows


BARE_PROCESS = """
import numpy as np
import torch
import jax, jax.numpy as jnp, optax
import tensorflow as tf
from benchmarks.bare_loops import SeedValues, numpy_loop, torch_loop, jax_loop, tensorflow_loop
f = np.float32
seed = SeedValues(np.array([[1.58]], f), np.array([-0.14], f), np.array([[2.45]], f),
                  np.array([-0.11], f), np.array([[0.8]], f), np.array([[1.0]], f))
for loop in (numpy_loop, torch_loop(), jax_loop(), tensorflow_loop()):
    print(loop([seed])[0][0])
"""


def process_section(repeats: int) -> list[Row]:
    """The seed case on four backends as one ``crossgrad run`` against a bare four-framework script."""
    env = {**os.environ, **determinism.ENVIRONMENT, "PYTHONPATH": str(ROOT)}
    four = ",".join(SWEEP_TARGETS)  # the bare script's frameworks, not every installed plugin
    ours_times, bare_times = [], []
    with tempfile.TemporaryDirectory() as out:
        crossgrad = [sys.executable, "-m", "harness", "run", str(SEED_FILE), "--backend", four]
        for _ in range(repeats):  # alternated, so a load change on the machine hits both alike
            ours_times.append(_wall([*crossgrad, "--out", out, "--known", "none"], env))
            bare_times.append(_wall([sys.executable, "-c", BARE_PROCESS], env))
    ours, theirs = min(ours_times), min(bare_times)
    ratio = ours / theirs
    return [
        Row(
            "process",
            "seed x 4 backends",
            "wall s",
            ours,
            theirs,
            ratio,
            "<= 0.8 x bare",
            ratio <= 0.8,
        )
    ]


def _wall(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


SWEEP_TARGETS = {"numpy": 1_000_000, "torch": 1_000_000, "jax": 1_000_000, "tensorflow": 300_000}


def sweep_section(backends: Sequence[str], variants: int, sample: int, repeats: int) -> list[Row]:
    """Vectorized case-steps/s per backend (warm), and verdicts against the per-case loop."""
    from harness.run import vectorize
    from harness.run.batch_trace import BatchInputs

    cases = seed_variants(variants, seed=1)
    inputs = BatchInputs.stack([make_inputs(case) for case in cases])
    rows = []
    for name in backends:
        target = SWEEP_TARGETS[name]
        runner = vectorize._batch_runner(name)
        if runner is None:
            rows.append(
                Row("sweep", name, "case-steps/s", 0.0, None, None, f">= {target:,}", False)
            )
            continue
        adapter = registry.create(name)
        run_once = lambda runner=runner, adapter=adapter: runner(adapter, cases[0], inputs)  # noqa: E731
        run_once()  # warm: jit and vmap traces for this many variants
        rate = best_rate(run_once, variants * cases[0].steps, repeats)
        rows.append(
            Row("sweep", name, "case-steps/s", rate, None, None, f">= {target:,}", rate >= target)
        )
    rows.append(_verdict_row(cases[:sample], ["numpy", *backends]))
    return rows


def _verdict_row(cases: list[Case], backends: list[str]) -> Row:
    """Each case × backend verdict of a vectorized run against the per-case loop's."""
    from harness.report.summaries import summarize
    from harness.run import runner, vectorize
    from harness.verdict.compare import compare

    backends = list(dict.fromkeys(backends))

    def verdicts(raw: object) -> dict[tuple[str, str], str]:
        table = compare(raw, cases, "numpy")  # type: ignore[arg-type]
        return {(s.case, s.backend): s.status for s in summarize(table)}

    looped = verdicts(runner.run(cases, backends))
    swept = verdicts(vectorize.run(cases, backends))
    same = sum(looped[pair] == swept.get(pair) for pair in looped)
    return Row(
        "sweep",
        f"verdicts, {len(cases)} variants",
        "pairs same as loop",
        float(same),
        float(len(looped)),
        same / len(looped),
        "all identical",
        same == len(looped),
    )


MEMORY_CASE = """\
# A seed sweep for the memory benchmark: {init} weight seeds x {data} data seeds.
name: memory-sweep
network:
  sizes: [1, 1, 1]
  activation: sigmoid
  output_activation: sigmoid
  init: {{seed: 0, scheme: uniform}}
data:
  x: {{seed: 0, batch: 1}}
  y: {{seed: 1, batch: 1, low: 0.0, high: 1.0}}
loss: mse
optimizer: {{name: sgd, lr: 0.1}}
steps: 1
dtype: float32
matrix:
  network.init.seed: [{init_seeds}]
  data.x.seed: [{data_seeds}]
"""
MEMORY_DATA_SEEDS = 100


def memory_case_file(folder: Path, variants: int) -> Path:
    """A case file whose matrix expands to ``variants`` seed variants (a multiple of 100)."""
    data = min(MEMORY_DATA_SEEDS, variants)
    init = variants // data
    path = folder / f"sweep-{variants}.yaml"
    path.write_text(
        MEMORY_CASE.format(
            init=init,
            data=data,
            init_seeds=", ".join(map(str, range(init))),
            data_seeds=", ".join(map(str, range(data))),
        ),
        encoding="utf-8",
    )
    return path


@dataclass(frozen=True)
class Usage:
    """What one process tree used: the peak of its summed resident memory, and wall time."""

    peak_mb: float  # max over time of the sum of VmRSS over the process and its descendants
    largest_mb: float  # ru_maxrss: the largest single process
    wall_s: float


def measured_run(command: list[str], env: dict[str, str], interval: float = 0.05) -> Usage:
    """Run ``command``, sampling the resident memory of its whole process tree every ``interval``."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert process.stderr is not None
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()  # a full stderr pipe would stall the run
    peak = 0
    while True:
        # wait4 rather than poll: it hands back the child's own ru_maxrss
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, _tree_rss_kb(process.pid))
        time.sleep(interval)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    if process.returncode not in (0, 1):  # 1: some pair diverged, still a finished sweep
        raise RuntimeError(
            f"{' '.join(command)} exited {process.returncode}: {errors[0][-2000:]!r}"
        )
    largest = usage.ru_maxrss  # kB on Linux
    return Usage(peak / 1024, largest / 1024, wall)


def _tree_rss_kb(pid: int) -> int:
    """Resident kB of ``pid`` and every descendant (0 for one that just ended)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        total += int(match.group(1)) if match else 0
    return total


def memory_section(backends: Sequence[str], small: int, large: int) -> list[Row]:
    """Peak memory of ``crossgrad run --vectorize`` on a ``large`` sweep against a ``small`` one."""
    env = {**os.environ, **determinism.ENVIRONMENT, "PYTHONPATH": str(ROOT)}
    chosen = ["--backend", ",".join(backends)]
    usages = {}
    with tempfile.TemporaryDirectory() as folder:
        for variants in (small, large):
            cases = memory_case_file(Path(folder), variants)
            out = Path(folder) / f"out-{variants}"
            command = [sys.executable, "-m", "harness", "run", str(cases), "--vectorize"]
            usages[variants] = measured_run([*command, *chosen, "--out", str(out)], env)
    subject = f"{{:,}} variants x {len(backends)} backend{'s' * (len(backends) != 1)}"
    rows = []
    for variants, usage in usages.items():
        rows.append(
            Row("memory", subject.format(variants), "wall s", usage.wall_s, None, None, "-", None)
        )
        rows.append(
            Row(
                "memory",
                subject.format(variants),
                "largest process MB",
                usage.largest_mb,
                None,
                None,
                "-",
                None,
            )
        )
    ratio = usages[large].peak_mb / usages[small].peak_mb
    rows.append(
        Row(
            "memory",
            subject.format(large),
            "peak tree MB",
            usages[large].peak_mb,
            usages[small].peak_mb,
            ratio,
            f"<= 2 x {small:,} variants",
            ratio <= 2.0,
        )
    )
    return rows


def fuzz_section(backends: Sequence[str], budget: int) -> list[Row]:
    """Cases/s of a ``crossgrad fuzz`` campaign end to end (generation, running, verdicts,
    report and shrinking), one row per backend fuzzed alone and one for all of them; a
    campaign stops at its budget, so cases / wall seconds is its throughput."""
    env = {**os.environ, **determinism.ENVIRONMENT, "PYTHONPATH": str(ROOT)}
    rows = []
    for subject in [*backends, ",".join(backends)] if len(backends) > 1 else backends:
        with tempfile.TemporaryDirectory() as out:
            command = [sys.executable, "-m", "harness", "fuzz", "--backend", subject]
            command += ["--budget", str(budget), "--seed", "0", "--out", f"{out}/fuzz"]
            started = time.perf_counter()
            finished = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - started
            if finished.returncode not in (0, 1):
                raise RuntimeError(f"{' '.join(command)} failed:\n{finished.stderr[-2000:]}")
            record = json.loads(Path(out, "fuzz", "run.json").read_text(encoding="utf-8"))
        rate = (record["cases"] + record["cases_cached"]) / seconds
        rows.append(Row("fuzz", subject, "cases/s", rate, None, None, "-", None))
    return rows


SECTIONS: dict[str, Callable[[argparse.Namespace], list[Row]]] = {
    "loop": lambda a: loop_section(a.backend or LOOP_BACKENDS, a.cases, a.repeats),
    "process": lambda a: process_section(a.repeats),
    "sweep": lambda a: sweep_section(
        a.backend or list(SWEEP_TARGETS), a.variants, a.sample, a.repeats
    ),
    "fuzz": lambda a: fuzz_section(a.backend or list(SWEEP_TARGETS)[1:], a.fuzz_budget),
    "memory": lambda a: memory_section(
        a.backend or list(SWEEP_TARGETS), a.memory_small, a.memory_small * 10
    ),
}


def format_rows(rows: Sequence[Row]) -> str:
    header = ("section", "subject", "measure", "crossgrad", "bare", "ratio", "target", "met")
    lines = [
        (
            r.section,
            r.subject,
            r.measure,
            f"{r.crossgrad:,.4g}",
            "-" if r.bare is None else f"{r.bare:,.4g}",
            "-" if r.ratio is None else f"{r.ratio:.2f}",
            r.target,
            "-" if r.met is None else ("yes" if r.met else "NO"),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [header, tuple("-" * w for w in widths), *lines]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--section", action="append", choices=list(SECTIONS), help="run only these")
    parser.add_argument(
        "--backend", action="append", help="loop and sweep sections: only these backends"
    )
    parser.add_argument("--cases", type=int, default=300, help="cases per timed loop (default 300)")
    parser.add_argument("--variants", type=int, default=10_000, help="sweep size (default 10,000)")
    parser.add_argument("--sample", type=int, default=200, help="variants checked against the loop")
    parser.add_argument(
        "--memory-small",
        type=int,
        default=10_000,
        help="memory section: the smaller sweep; the larger is ten times it (default 10,000)",
    )
    parser.add_argument(
        "--fuzz-budget", type=int, default=400, help="fuzz section: cases per campaign"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats; the best counts")
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: a smoke run, not a measurement"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.cases, args.repeats, args.variants, args.sample = 5, 1, 20, 5
        args.memory_small, args.fuzz_budget = 100, 20
    determinism.apply_environment()
    rows: list[Row] = []
    for name in args.section or list(SECTIONS):
        rows += SECTIONS[name](args)
        print(format_rows(rows), end="\n\n", file=sys.stderr, flush=True)  # partial, as it goes
    print(format_rows(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
