"""What makes two divergences "the same": a signature.

A divergence's *kind* is what the results table says of its first failing row: the
backend, the status (diverged or crashed), the stage (the row's quantity: activation,
output, loss, grad, param, output_after) and the role of the layer it belongs to (a hidden
layer or the output layer). A *finding* adds the knob values that matter, found by probing
its minimal case (harness/fuzz/campaign.py): a generated case hits a finding when its
kind is the finding's and it has every knob value that matters.

Numeric optimizer arguments match by presence (a case that sets momentum hits a finding
that needs momentum, whatever the value); names and flags match by value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from harness.cases.model import OPTIMIZERS
from harness.verdict.status import FAILING

# Knobs whose value, not just presence, is the signature's.
VALUE_KNOBS = ("activation", "output_activation", "loss", "optimizer", "dtype")
FLAG_ARGUMENTS = ("nesterov", "centered")


@dataclass(frozen=True)
class Kind:
    """The first failing row of one case on one backend, as a signature sees it."""

    backend: str
    status: str
    stage: str  # the quantity, "" for a crash
    role: str  # "hidden layer", "output layer" or "" (loss, output, crash)
    # The reference had already overflowed (a non-finite value at or before the first
    # failing row; for a crash, anywhere in the case): see ``first_failures``.
    overflow: bool = False

    def describe(self) -> str:
        where = " ".join(
            part for part in (self.stage, f"of the {self.role}" if self.role else "") if part
        )
        after = " after the reference overflowed" if self.overflow else ""
        return f"{self.status} on {self.backend}" + (f" at {where}" if where else "") + after

    def fields(self) -> list[Any]:
        return [self.backend, self.status, self.stage, self.role, self.overflow]

    def slug(self) -> str:
        parts = [
            self.backend,
            self.stage or self.status,
            self.role.split(" ")[0] if self.role else "",
        ]
        return "-".join(_plain(p) for p in parts if p)


@dataclass(frozen=True)
class Signature:
    """A finding: a kind and the knob values that matter (``knobs``)."""

    kind: Kind
    knobs: Mapping[str, Any] = field(default_factory=dict)

    def matches(self, kind: Kind, case_knobs: Mapping[str, Any]) -> bool:
        return kind == self.kind and all(
            _knob_matches(name, value, case_knobs) for name, value in self.knobs.items()
        )

    def describe(self) -> str:
        knobs = ", ".join(f"{k}={_show(v)}" for k, v in self.knobs.items()) or "no knob (any case)"
        return f"{self.kind.describe()}; knobs that matter: {knobs}"

    def slug(self) -> str:
        values = [_plain(str(v)) for k, v in self.knobs.items() if k in VALUE_KNOBS]
        values += [_plain(k.rpartition(".")[2]) for k in self.knobs if k not in VALUE_KNOBS]
        return "-".join([self.kind.slug(), *values])


def _knob_matches(name: str, value: Any, case_knobs: Mapping[str, Any]) -> bool:
    if name not in case_knobs:
        return False
    if name in VALUE_KNOBS or name.rpartition(".")[2] in FLAG_ARGUMENTS:
        return bool(case_knobs[name] == value)
    return True  # a numeric argument matters by being set


def knobs(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """The knobs of a case mapping (harness/fuzz/generate.py's form): the names, the dtype,
    and every optimizer or loss argument it sets. A one-layer network has no hidden
    activation: that knob is absent."""
    network = mapping["network"]
    found: dict[str, Any] = {}
    if len(network["sizes"]) > 2:
        found["activation"] = network["activation"]
    found["output_activation"] = network["output_activation"]
    loss = mapping["loss"]
    found["loss"] = loss if isinstance(loss, str) else loss["name"]
    if isinstance(loss, Mapping):
        found.update({f"loss.{k}": v for k, v in loss.items() if k != "name"})
    optimizer = mapping["optimizer"]
    found["optimizer"] = optimizer["name"]
    defaults = OPTIMIZERS[optimizer["name"]]
    for key, value in optimizer.items():
        if key != "name" and (defaults.get(key) is None or _differs(value, defaults[key])):
            found[f"optimizer.{key}"] = value
    found["dtype"] = mapping["dtype"]
    return found


def _differs(value: Any, default: Any) -> bool:
    return bool(list(value) != list(default)) if isinstance(default, tuple) else value != default


def first_failures(
    table: pd.DataFrame, n_layers: Mapping[str, int], reference: str
) -> dict[tuple[str, str], Kind]:
    """Each failing (case, backend) pair's kind, from its first failing row in table order
    (computation order). ``n_layers``: each case's number of linear layers.

    A kind is marked ``overflow`` when the reference's own values were already non-finite
    there: past an inf or a NaN, what a computation gives is IEEE special-value propagation,
    which differs between BLAS kernels (a matmul that skips zero operands gives 0 for
    0 x NaN) and framework checks (torch's BCE refuses a NaN probability) — even between
    the reference's own per-case and batched paths (docs/fuzzing.md).
    """
    failing = table[table["status"].isin(FAILING)]
    if failing.empty:
        return {}
    first = failing.drop_duplicates(["case", "backend"], keep="first")
    on_reference = table[table["backend"] == reference]
    on_reference = on_reference[on_reference["case"].isin(set(first["case"]))]
    references = {str(case): rows for case, rows in on_reference.groupby("case", sort=False)}
    kinds = {}
    for row in first.itertuples(index=False):
        case, backend, status = str(row.case), str(row.backend), str(row.status)
        blown = _first_non_finite(references.get(case))
        if status == "crashed":
            kinds[(case, backend)] = Kind(backend, status, "", "", blown is not None)
            continue
        overflow = blown is not None and blown <= _position(references[case], row)
        kinds[(case, backend)] = Kind(
            backend,
            status,
            str(row.quantity),
            _role(str(row.param or ""), n_layers.get(case, 0)),
            overflow,
        )
    return kinds


KEY = ("step", "quantity", "param", "index")


def _first_non_finite(rows: pd.DataFrame | None) -> int | None:
    """The position, in computation order, of the reference's first non-finite value."""
    if rows is None or rows.empty:
        return None
    values = pd.to_numeric(rows["value"], errors="coerce").to_numpy(dtype=np.float64)
    blown = np.flatnonzero(~np.isfinite(values) & rows["status"].ne("crashed").to_numpy())
    return int(blown[0]) if len(blown) else None


def _position(rows: pd.DataFrame, row: Any) -> int:
    """The position of ``row``'s value among the reference's rows of its case."""
    same = np.ones(len(rows), dtype=bool)
    for key in KEY:
        same &= rows[key].astype(str).to_numpy() == str(getattr(row, key))
    found = np.flatnonzero(same)
    return int(found[0]) if len(found) else len(rows)


def _role(param: str, layers: int) -> str:
    """ "layers.K.weight", "layers.K.bias" and activation rows' "layers.K" by their layer."""
    parts = param.split(".")
    if len(parts) < 2 or parts[0] != "layers" or not parts[1].isdigit():
        return ""
    return "output layer" if int(parts[1]) == layers - 1 else "hidden layer"


def _plain(text: str) -> str:
    return "".join(c if c.isalnum() or c in "_." else "-" for c in text).strip("-.")


def _show(value: Any) -> str:
    return str(list(value)) if isinstance(value, tuple) else str(value)
