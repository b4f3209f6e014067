"""The conformance checks: what a check is, and each check's running and judging.

A check trains its case on the candidate adapter and judges what comes back: the shapes and
state_dict names of everything recorded, every value against the reference (first problem
first, in plain words naming the parameter), gradients against central finite differences
of the adapter's own loss, repeatability, declared capabilities and registration; one more
imports the adapter's module in a fresh interpreter to see that its framework stays out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from backends import registry
from harness.cases.inputs import Inputs, make_inputs
from harness.cases.model import (
    ACTIVATIONS,
    DTYPES,
    LOSSES,
    OPTIMIZERS,
    Case,
    Loss,
    Optimizer,
    param_names,
    param_shapes,
)
from harness.conformance.cases import FD_SIZES, OPTIMIZER_ARGS, base_case
from harness.run.runner import Outcome, outcomes_frame
from harness.run.trace import Trace
from harness.verdict.compare import compare
from harness.verdict.known import KnownDivergence, apply_known
from harness.verdict.status import FAILING, Status

if TYPE_CHECKING:
    from backends.base import Backend

FD_STEP = 1e-6
# Central differences in float64: truncation ~h² and rounding ~1e-16/h, both far below these.
FD_RTOL, FD_ATOL = 1e-5, 1e-7
# Where float64 is a known divergence (a framework that computes it in float32), the check
# falls back to float32: a step near cbrt(eps) and a 1% tolerance, still far below the
# factor-of-several error of a wrong derivative.
FD_COARSE_STEP, FD_COARSE_RTOL, FD_COARSE_ATOL = 1e-2, 1e-2, 1e-5

PASS, FAIL, KNOWN, SKIPPED = "pass", "fail", "known", "skipped"


@dataclass(frozen=True)
class CheckResult:
    check: str
    status: str  # pass | fail | known | skipped
    detail: str = ""  # the first problem in plain words, or why it was skipped / is known

    @property
    def failed(self) -> bool:
        return self.status == FAIL


@dataclass
class Kit:
    """One candidate adapter and the reference, each created once for the whole battery."""

    name: str
    candidate: Backend
    reference: Backend
    known: list[KnownDivergence] = field(default_factory=list)
    _reference_traces: dict[str, Trace] = field(default_factory=dict)

    def reference_trace(self, case: Case, inputs: Inputs) -> Trace:
        if case.name not in self._reference_traces:
            self._reference_traces[case.name] = self.reference.run(case, inputs)
        return self._reference_traces[case.name]


@dataclass(frozen=True)
class Check:
    """One line of the battery: a name, what it proves, and how to run it."""

    name: str
    purpose: str
    run: Callable[[Kit], CheckResult]


def _run(backend: Backend, case: Case, inputs: Inputs) -> Trace | str:
    """The trace, or the crash in one line."""
    try:
        return backend.run(case, inputs)
    except Exception as exc:  # an adapter's failure is a finding, not the end of the battery
        return f"crashed: {type(exc).__name__}: {exc}"


def _well_formed_trace(kit: Kit, case: Case, inputs: Inputs) -> Trace | CheckResult:
    """The candidate's trace, or the failed check saying it crashed or is mis-shaped."""
    trace = _run(kit.candidate, case, inputs)
    if isinstance(trace, str):
        return CheckResult(case.name, FAIL, trace)
    problem = structure_problem(case, inputs, trace)
    return CheckResult(case.name, FAIL, problem) if problem else trace


def structure_problem(case: Case, inputs: Inputs, trace: Trace) -> str | None:
    """Names, order and shapes of everything recorded, against the ``state_dict`` layout."""
    sizes = case.network.sizes
    expected_output = (len(inputs.x), sizes[-1])
    for label, array in (("output", trace.output), ("output_after", trace.output_after)):
        shape = np.shape(array) if array is not None else None
        if shape != expected_output:
            return f"{label} has shape {shape}, expected (batch, outputs) = {expected_output}"
    counts = {"losses": len(trace.losses), "grads": len(trace.grads), "params": len(trace.params)}
    for label, count in counts.items():
        if count != case.steps:
            return f"recorded {label} for {count} steps, expected {case.steps}"
    names, shapes = param_names(sizes), param_shapes(sizes)
    for step, (loss, grads, params) in enumerate(
        zip(trace.losses, trace.grads, trace.params, strict=True)
    ):
        if np.size(loss) != 1:
            return f"step {step}: the loss has shape {np.shape(loss)}, expected a scalar"
        for quantity, recorded in {"grad": grads, "param": params}.items():
            # Order is free (rows are compared in the reference's order); the names are not.
            missing = [n for n in names if n not in recorded]
            extra = [n for n in recorded if n not in names]
            if missing or extra:
                return (
                    f"step {step}: {quantity} names {list(recorded)} are not the state_dict "
                    f"names {names} (missing {missing}, unexpected {extra})"
                )
            for name in names:
                shape, want = np.shape(recorded[name]), shapes[name]
                if shape != want:
                    hint = (
                        " (it is transposed: report weights as (out, in))"
                        if shape == want[::-1]
                        else ""
                    )
                    return f"step {step}: {quantity} of {name} has shape {shape}, expected {want}{hint}"
    return None


def _describe(table: pd.DataFrame, row: pd.Series) -> str:
    """The first failing value in plain words, with how the whole array it belongs to differs."""
    where = f"step {row['step']} {row['quantity']}" + (
        f" of {row['param']}" if row["param"] else ""
    )
    if row["status"] == Status.EXPECT_FAILED:
        return f"{where}: {row['value']:.6g} does not round to the published {row['expected']}"
    if str(row["detail"]).startswith("missing"):
        return f"{where}: not recorded by the adapter"
    same = table[
        (table["step"] == row["step"])
        & (table["quantity"] == row["quantity"])
        & (table["param"] == row["param"])
    ]
    values, refs = same["value"].to_numpy(), same["reference"].to_numpy()
    index = "" if pd.isna(row["index"]) else f"[{row['index']}]"
    head = (
        f"{where}{index} is {row['value']:.6g}, reference {row['reference']:.6g} "
        f"(|err| {row['abs_err']:.3g} > tol {row['tol']:.3g})"
    )
    return f"{head}; {_pattern(values, refs, same['status'].isin(FAILING).to_numpy())}"


def _pattern(values: np.ndarray, refs: np.ndarray, failing: np.ndarray) -> str:
    """A one-phrase diagnosis of how an array differs from its reference."""
    with np.errstate(divide="ignore", invalid="ignore"):
        nonzero = np.abs(refs) > 0
        ratios = values[nonzero] / refs[nonzero]
    if ratios.size and np.allclose(ratios, ratios[0], rtol=1e-3) and abs(ratios[0] - 1) > 1e-3:
        if np.isclose(ratios[0], -1):
            return "every element has the wrong sign"
        return f"every element is {ratios[0]:.4g} times the reference"
    if np.isnan(values).any() and not np.isnan(refs).any():
        return f"{int(np.isnan(values).sum())} of {values.size} elements are NaN"
    worst = np.nanmax(np.abs(values - refs) / np.maximum(np.abs(refs), 1e-300))
    return (
        f"{int(failing.sum())} of {values.size} elements differ, worst relative error {worst:.3g}"
    )


def compare_with_reference(kit: Kit, case: Case) -> CheckResult:
    """Train ``case`` on both backends and judge every recorded value, first problem first."""
    reason = kit.candidate.unsupported_reason(case)
    if reason:
        return CheckResult(case.name, SKIPPED, f"the adapter declines this case: {reason}")
    inputs = make_inputs(case)
    trace = _well_formed_trace(kit, case, inputs)
    if isinstance(trace, CheckResult):
        return trace
    reference = kit.reference_trace(case, inputs)
    raw = outcomes_frame(
        [
            Outcome(case, kit.reference.name, kit.reference.version(), trace=reference),
            Outcome(case, kit.name, kit.candidate.version(), trace=trace),
        ]
    )
    table, _ = apply_known(
        compare(raw, [case], kit.reference.name), [case], kit.known, kit.reference.name
    )
    mine = table[table["backend"] == kit.name]
    failing = mine[mine["status"].isin(FAILING)]
    if len(failing):
        first = failing.iloc[0]
        hint = _transpose_hint(kit, case, inputs, trace, reference, first)
        return CheckResult(case.name, FAIL, _describe(mine, first) + hint)
    known = mine[mine["status"] == Status.KNOWN]
    if len(known):
        return CheckResult(case.name, KNOWN, str(known.iloc[0]["detail"]))
    worst = float((mine["abs_err"] / mine["tol"]).max())
    return CheckResult(case.name, PASS, f"worst err/tol {worst:.2g}")


def _square_weights(case: Case) -> list[str]:
    return [
        name
        for name, shape in param_shapes(case.network.sizes).items()
        if len(shape) == 2 and shape[0] == shape[1] > 1
    ]


def _transpose_hint(
    kit: Kit, case: Case, inputs: Inputs, trace: Trace, reference: Trace, row: pd.Series
) -> str:
    """Where a square weight (whose shape cannot show it) was transposed, say so."""
    square = _square_weights(case)
    if not square:
        return ""
    step, quantity, param = int(row["step"]), row["quantity"], row["param"]
    if quantity in ("grad", "param") and param in square:
        recorded = trace.grads if quantity == "grad" else trace.params
        mine = np.asarray(recorded[step][param], dtype=np.float64)
        theirs = np.asarray(
            (reference.grads if quantity == "grad" else reference.params)[step][param],
            dtype=np.float64,
        )
        if _close(mine, theirs.T):
            return (
                f" (the whole {quantity} is the reference's transposed: a square weight's "
                "(in, out) kernel reported without its transpose; report (out, in))"
            )
    if step == 0 and quantity in ("activation", "output"):
        # A kernel loaded without its transpose: only a square one fits, and it computes
        # with the transposed weight from the very first forward pass.
        params = dict(inputs.params)
        params.update({name: params[name].T.copy() for name in square})
        try:
            expected = kit.reference.build(case, replace(inputs, params=params)).forward()
        except Exception:  # the hint is a courtesy; the failure stands without it
            return ""
        if _close(np.asarray(trace.output, dtype=np.float64), np.asarray(expected, np.float64)):
            return (
                f" (the output is the reference's with the square weights {', '.join(square)} "
                "transposed: a weight loaded as an (in, out) kernel without its transpose)"
            )
    return ""


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-3, atol=1e-7))


def finite_difference(
    kit: Kit,
    case: Case,
    step: float = FD_STEP,
    rtol: float = FD_RTOL,
    atol: float = FD_ATOL,
) -> CheckResult:
    """Each gradient against central differences of the adapter's own loss."""
    inputs = make_inputs(case)
    trace = _well_formed_trace(kit, case, inputs)
    if isinstance(trace, CheckResult):
        return trace
    for name in param_names(case.network.sizes):
        grad = np.asarray(trace.grads[0][name], dtype=np.float64)
        for index in np.ndindex(grad.shape):
            numeric = _central_difference(kit.candidate, case, inputs, name, index, step)
            if isinstance(numeric, str):
                return CheckResult(case.name, FAIL, numeric)
            if not abs(grad[index] - numeric) <= atol + rtol * abs(numeric):
                flat = int(np.ravel_multi_index(index, grad.shape))
                if numeric == 0:
                    return CheckResult(
                        case.name,
                        FAIL,
                        f"{case.dtype}: the adapter's loss does not change when {name}[{flat}] "
                        f"moves by {step:.0e}, yet its gradient is {grad[index]:.8g}: the "
                        f"forward pass is not computed at {case.dtype} precision",
                    )
                return CheckResult(
                    case.name,
                    FAIL,
                    f"{case.dtype}: grad of {name}[{flat}] is {grad[index]:.8g} but the finite "
                    f"difference of the adapter's own loss is {numeric:.8g}: the backward pass "
                    f"does not match the forward pass",
                )
    return CheckResult(
        case.name, PASS, f"{sum(np.size(g) for g in trace.grads[0].values())} gradients"
    )


def _central_difference(
    backend: Backend,
    case: Case,
    inputs: Inputs,
    name: str,
    index: tuple[int, ...],
    relative_step: float,
) -> float | str:
    losses = []
    step = relative_step * max(1.0, abs(float(inputs.params[name][index])))
    for sign in (1.0, -1.0):
        params = {k: v.copy() for k, v in inputs.params.items()}
        params[name][index] += sign * step
        moved = replace(inputs, params=params)
        trace = _run(backend, replace(case, steps=1), moved)
        if isinstance(trace, str):
            return trace
        losses.append(float(np.asarray(trace.losses[0])))
    return (losses[0] - losses[1]) / (2 * step)


def capabilities(kit: Kit) -> CheckResult:
    """Every case outside the declared vocabulary is declined (skipped), never run blindly."""
    cls = type(kit.candidate)
    base = base_case(cls, "capabilities")
    undeclared = [
        replace(base, network=replace(base.network, activation=a))
        for a in ACTIVATIONS
        if a not in cls.activations
    ]
    undeclared += [replace(base, dtype=d) for d in DTYPES if d not in cls.dtypes]
    undeclared += [
        replace(base, loss=Loss(loss, dict(LOSSES[loss])))
        for loss in LOSSES
        if loss not in cls.losses
    ]
    undeclared += [
        replace(base, optimizer=Optimizer(o, {**OPTIMIZERS[o], **OPTIMIZER_ARGS[o]}))
        for o in OPTIMIZERS
        if o not in cls.optimizers
    ]
    for case in undeclared:
        if not kit.candidate.unsupported_reason(case):
            return CheckResult(
                "capabilities",
                FAIL,
                f"{_difference(base, case)} is not declared, yet unsupported_reason() accepts "
                "the case (return super().unsupported_reason(case) from your override)",
            )
    return CheckResult("capabilities", PASS, f"{len(undeclared)} undeclared options declined")


def _difference(base: Case, case: Case) -> str:
    if case.dtype != base.dtype:
        return f"dtype {case.dtype!r}"
    if case.loss != base.loss:
        return f"loss {case.loss.name!r}"
    if case.optimizer != base.optimizer:
        return f"optimizer {case.optimizer.name!r}"
    return f"activation {case.network.activation!r}"


def registration(kit: Kit) -> CheckResult:
    cls = type(kit.candidate)
    if getattr(cls, "name", None) != kit.name:
        return CheckResult(
            "registration",
            FAIL,
            f"registered as {kit.name!r} but the class says name = {getattr(cls, 'name', None)!r}",
        )
    for kind, declared, vocabulary in (
        ("activations", cls.activations, ACTIVATIONS),
        ("losses", cls.losses, tuple(LOSSES)),
        ("optimizers", cls.optimizers, tuple(OPTIMIZERS)),
        ("dtypes", cls.dtypes, DTYPES),
    ):
        unknown = [item for item in declared if item not in vocabulary]
        if unknown or not declared:
            return CheckResult(
                "registration",
                FAIL,
                f"{kind} must be a non-empty subset of {', '.join(vocabulary)}; got {declared}",
            )
    version = kit.candidate.version()
    if not version or version == "unknown":
        return CheckResult(
            "registration", FAIL, "version() is empty: set `distribution` to the framework's"
        )
    return CheckResult("registration", PASS, f"{cls.__module__}:{cls.__qualname__} {version}")


# Run in a fresh interpreter: import what every adapter module imports (crossgrad's own
# modules, which bring NumPy), note what is loaded, then import the adapter's module and
# report which of its frameworks came in, and the line of the import statement that did it.
_IMPORT_PROBE = r"""
import importlib, importlib.abc, json, os, sys, traceback
request = json.loads(sys.stdin.read())
sys.path[:] = request["path"]
import backends.base, backends.registry, harness.cases.inputs, harness.cases.model
before = {name.partition(".")[0] for name in sys.modules}
watched = [m for m in request["frameworks"] if m not in before]
where = {}
machinery = os.path.dirname(importlib.__file__) + os.sep

class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        if top in watched and top not in where:
            frames = [
                f for f in traceback.extract_stack()[:-1]
                if not f.filename.startswith(("<", machinery))
            ]
            where[top] = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""
        return None

sys.meta_path.insert(0, Watch())
importlib.import_module(request["module"])
loaded = {name.partition(".")[0] for name in sys.modules}
print(json.dumps({
    "imported": {m: where.get(m, "") for m in watched if m in loaded},
    "preloaded": [m for m in request["frameworks"] if m in before],
}))
"""
IMPORT_TIMEOUT_S = 300


def lazy_import(kit: Kit) -> CheckResult:
    """Importing the adapter's module imports none of the frameworks in its ``requires``.

    ``crossgrad backends``, every run and every worker import each adapter's module to read
    its class; a module-level ``import torch`` makes all of them pay for PyTorch.
    """
    cls = type(kit.candidate)
    entry = registry.entries().get(kit.name)
    module = entry.target.partition(":")[0] if entry else cls.__module__
    if not cls.requires:
        return CheckResult(
            "lazy-import", SKIPPED, "the adapter declares no `requires`: no framework to look for"
        )
    if module == "__main__":
        return CheckResult("lazy-import", SKIPPED, "the adapter class is defined in __main__")
    request = {
        "path": [os.path.abspath(p) for p in sys.path],
        "module": module,
        "frameworks": list(cls.requires),
    }
    try:
        done = subprocess.run(
            [sys.executable, "-c", _IMPORT_PROBE],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=IMPORT_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return CheckResult(
            "lazy-import", FAIL, f"importing {module} took over {IMPORT_TIMEOUT_S} s"
        )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return CheckResult(
            "lazy-import", FAIL, f"importing {module} in a fresh interpreter failed: {last}"
        )
    try:
        found = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):  # the module ended the interpreter (sys.exit) early
        return CheckResult(
            "lazy-import", FAIL, f"importing {module} gave no answer: {done.stdout!r:.200}"
        )
    imported, preloaded = found["imported"], found["preloaded"]
    if imported:
        first = next(iter(imported))
        at = f" (at {imported[first]})" if imported[first] else ""
        return CheckResult(
            "lazy-import",
            FAIL,
            f"importing {module} imports {', '.join(imported)}{at}: import the framework in "
            "the adapter's __init__ (or build), not at module level, so that listing "
            "adapters and starting runs do not pay for it",
        )
    checked = [m for m in cls.requires if m not in preloaded]
    detail = f"importing {module} imports none of {', '.join(checked)}" if checked else ""
    if preloaded:
        own = f"{', '.join(preloaded)} {'is' if len(preloaded) == 1 else 'are'} imported by crossgrad itself"
        detail = f"{detail}; {own}" if detail else f"{own}: nothing to look for"
    return CheckResult("lazy-import", PASS, detail)


def repeatable(kit: Kit, case: Case) -> CheckResult:
    """The same case twice gives the same bits; otherwise no comparison can be trusted."""
    inputs = make_inputs(case)
    first, second = _run(kit.candidate, case, inputs), _run(kit.candidate, case, inputs)
    if isinstance(first, str) or isinstance(second, str):
        return CheckResult(case.name, FAIL, first if isinstance(first, str) else str(second))
    a, b = first.rows()["value"], second.rows()["value"]
    if a.shape != b.shape or not np.array_equal(a, b, equal_nan=True):
        return CheckResult(case.name, FAIL, "two runs of the same case gave different values")
    return CheckResult(case.name, PASS, f"{a.size} values identical")


def finite_difference_check(cls: type[Backend]) -> Callable[[Kit], CheckResult]:
    def run(kit: Kit) -> CheckResult:
        if "float64" not in cls.dtypes:
            return CheckResult("finite-difference", SKIPPED, "needs float64, which is not declared")
        case = base_case(cls, "finite-difference", sizes=FD_SIZES, dtype="float64", steps=1)
        result = finite_difference(kit, case)
        entry = _known_gradient_entry(kit, case)
        if result.status != FAIL or entry is None or "float32" not in cls.dtypes:
            return named("finite-difference", result)
        coarse = replace(case, dtype="float32")
        fallback = finite_difference(kit, coarse, FD_COARSE_STEP, FD_COARSE_RTOL, FD_COARSE_ATOL)
        if fallback.status == FAIL:
            return named("finite-difference", fallback)
        return CheckResult(
            "finite-difference",
            KNOWN,
            f"float64 fails as known divergence {entry.id} ({result.detail}); "
            f"float32 finite differences agree",
        )

    return run


def _known_gradient_entry(kit: Kit, case: Case) -> KnownDivergence | None:
    """The first known divergence that covers this case's gradients on the candidate."""
    for entry in kit.known:
        if entry.covers(case, kit.name) and "grad" in entry.quantities:
            return entry
    return None


def naming(kit: Kit, case: Case) -> CheckResult:
    inputs = make_inputs(case)
    trace = _well_formed_trace(kit, case, inputs)
    return trace if isinstance(trace, CheckResult) else CheckResult(case.name, PASS)


def named(name: str, result: CheckResult) -> CheckResult:
    return replace(result, check=name)
