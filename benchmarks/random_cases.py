"""Seeded random case files for verdict testing: well-conditioned cases a correct framework
should pass.

    python -m benchmarks.random_cases --seed 1 --count 300 --out /tmp/rand300
    python -m harness run /tmp/rand300 --out /tmp/rand300-report

Each case is one YAML file in the format of ``cases/`` (docs/spec.md §2), named
``rand-s{seed}-{index}-{activation}-{output activation}-{loss}-{optimizer}-{dtype}.yaml``.
The same seed writes byte-identical files, and case ``i`` does not depend on ``--count``
(a smaller count writes a prefix of a larger one).

How a case is made:

- **Knobs.** The activation, output activation, loss, optimizer, dtype and init scheme come
  from the vocabulary of ``harness/cases/model.py``, each dealt from its own seeded
  shuffled deck (a fresh permutation of the vocabulary every ``len(vocabulary)`` cases),
  so every value appears within a few decks whatever the seed. The loss fixes the output
  activation where the spec requires one (``bce``: sigmoid; ``bce_logits``,
  ``cross_entropy``: identity, at least 2 outputs). float16 and bfloat16 join the dtype deck
  only with ``--half``: their tolerances are loose and their optimizer eps must stay
  representable.
- **Values.** 1 to 3 hidden layers of widths 1 to 5, batch 1 to 6, 1 to 3 steps; weights
  from an init scheme of the spec (moderate arguments) or explicit uniform [-1, 1]; inputs
  uniform in about [-1, 1]; learning rates log-uniform in [1e-3, 0.1] (rmsprop, whose
  first step is about lr / sqrt(1 - alpha), to 0.02); every optimizer argument drawn,
  sometimes left at its default. Targets are made from the network's own first output so
  that, with 2 rows or more, every output column has rows with the target above the output
  and rows with it below: the batch gradient's per-row terms partly cancel, as in real
  training. bce targets are in [0, 1] (hard or soft labels), cross_entropy targets are
  probability rows (one-hot or soft, at least two classes in a batch).
- **Conditioning.** A draw is kept only when a float64 replay of every step (the
  reference's activation, loss and optimizer formulas of ``backends/numpy/ops.py``) finds,
  at every step and after the last: no pre-activation within ``KINK_MARGIN`` (relative to
  the size of its terms) of a kink of relu, leaky_relu or elu; no pre-activation beyond the
  saturation bound of its activation (``SATURATION``); no residual of mae or huber at its
  kink; and no near-total cancellation (``MIN_RATIO``) in a pre-activation, a residual or a
  gradient element (its per-row terms, with the weight-decay term, summed against the sum of
  their absolute values). Partial cancellation stays: that is the realistic part. Otherwise
  the case is drawn again (same knobs, new values). The worst cancellation factors are
  written in the case's description.
- **Validation.** Every case is loaded with the project's loader
  (``harness/cases/loader.py``) before it is written, and must give back the knobs and the
  numbers it was drawn with; an invalid case is a generator bug and stops the run (exit 1).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import sys
import tempfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backends.numpy.ops import ACTIVATIONS as REFERENCE_ACTIVATIONS
from backends.numpy.ops import LOSSES as REFERENCE_LOSSES
from backends.numpy.ops import Optimizer as ReferenceOptimizer
from harness.cases.inputs import Inputs, make_inputs
from harness.cases.loader import load_file
from harness.cases.model import (
    ACTIVATIONS,
    DTYPES,
    INIT_SCHEMES,
    LOSSES,
    OPTIMIZERS,
    Case,
    InitSpec,
    Loss,
    Network,
    Optimizer,
    RandomArraySpec,
    param_shapes,
)
from harness.errors import CaseError

FULL_DTYPES = ("float32", "float64")
HALF_DTYPES = ("float16", "bfloat16")
MAX_COUNT = 100_000
MAX_SEED = 2**63 - 1
MAX_ATTEMPTS = 2_000

# Losses whose output activation the spec fixes (docs/spec.md §2.3), and the least number of
# outputs each needs.
REQUIRED_OUTPUT_ACTIVATION = {
    "bce": "sigmoid",
    "bce_logits": "identity",
    "cross_entropy": "identity",
}
MIN_OUTPUTS = {"cross_entropy": 2}
REGRESSION_LOSSES = ("mse", "sse", "half_sse", "mae", "huber")
PROBABILITY_LOSSES = ("bce", "bce_logits")

# Largest |z| kept per activation: past it the derivative is computed from a difference of
# nearly equal numbers (1 - tanh², 1 - σ) or the value is nearly flat. tanh's bound keeps
# 1 - tanh² above 0.02; sigmoid's keeps σ in [0.018, 0.982].
SATURATION: Mapping[str, float] = {
    "identity": 6.0,
    "sigmoid": 4.0,
    "tanh": 2.5,
    "relu": 6.0,
    "leaky_relu": 6.0,
    "elu": 5.0,
    "gelu": 4.0,
    "gelu_tanh": 4.0,
    "softplus": 5.0,
    "silu": 5.0,
}
# Output bound for the losses that read the last layer as probabilities or logits.
OUTPUT_SATURATION = {"bce": 4.0, "bce_logits": 4.0, "cross_entropy": 4.0}
KINKED = ("relu", "leaky_relu", "elu")
# Smallest |z| / (sum of |terms| of z) at a kink, and smallest |sum| / (sum of |terms|) of
# any pre-activation, residual or gradient element: full precision, then float16/bfloat16
# (whose unit roundoff is 1e3 to 1e4 times larger).
KINK_MARGIN = {"full": 1e-3, "half": 5e-2}
MIN_RATIO = {"full": 1e-3, "half": 3e-2}
# mae's sign and huber's clip: residuals kept this far from 0 and from ±delta.
RESIDUAL_MARGIN = 1e-2


class GeneratorBug(Exception):
    """A generated case the project's loader refuses or reads differently: a generator bug."""


@dataclass(frozen=True)
class Knobs:
    activation: str
    output_activation: str
    loss: str
    optimizer: str
    dtype: str
    init: str  # an INIT_SCHEMES name, or "explicit"


@dataclass
class Conditioning:
    """The worst cancellation factors (1 / ratio) a draw's float64 replay met."""

    forward: float = 1.0
    residual: float = 1.0
    gradient: float = 1.0

    def describe(self) -> str:
        return (
            f"worst cancellation 1:{self.forward:.3g} in a pre-activation, "
            f"1:{self.residual:.3g} in a residual, 1:{self.gradient:.3g} in a gradient"
        )


# ---------------------------------------------------------------- knobs: shuffled decks


def _deck_pick(seed: int, deck: str, vocabulary: Sequence[str], index: int) -> str:
    """Case ``index``'s card from a deck that deals a fresh seeded permutation of
    ``vocabulary`` every ``len(vocabulary)`` cases."""
    n = len(vocabulary)
    rng = np.random.default_rng([seed, zlib.crc32(deck.encode()), index // n])
    return vocabulary[int(rng.permutation(n)[index % n])]


def draw_knobs(seed: int, index: int, half: bool) -> Knobs:
    missing = set(ACTIVATIONS) - set(SATURATION)
    if missing:
        raise GeneratorBug(f"no saturation bound for activation(s) {sorted(missing)}")
    dtypes = tuple(d for d in DTYPES if d in FULL_DTYPES or (half and d in HALF_DTYPES))
    loss = _deck_pick(seed, "loss", tuple(LOSSES), index)
    activation = _deck_pick(seed, "activation", ACTIVATIONS, index)
    output_activation = REQUIRED_OUTPUT_ACTIVATION.get(
        loss, _deck_pick(seed, "output_activation", ACTIVATIONS, index)
    )
    return Knobs(
        activation=activation,
        output_activation=output_activation,
        loss=loss,
        optimizer=_deck_pick(seed, "optimizer", tuple(OPTIMIZERS), index),
        dtype=_deck_pick(seed, "dtype", dtypes, index),
        init=_deck_pick(seed, "init", (*INIT_SCHEMES, "explicit"), index),
    )


# ---------------------------------------------------------------- values


def _round_sig(value: float, digits: int = 2) -> float:
    return float(f"{value:.{digits}g}")


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return _round_sig(math.exp(rng.uniform(math.log(low), math.log(high))))


def _eps(rng: np.random.Generator, dtype: str, full_choices: Sequence[float]) -> float:
    # float16's smallest subnormal is 6e-8: a smaller eps rounds to 0 and 0/0 is NaN.
    choices = (1e-4, 1e-3) if dtype == "float16" else full_choices
    return float(choices[int(rng.integers(len(choices)))])


def draw_optimizer(rng: np.random.Generator, name: str, dtype: str) -> dict[str, Any]:
    """The optimizer mapping of a case: ``name``, ``lr`` and each other argument of
    OPTIMIZERS[name] drawn, or left out (its default) about half of the time."""
    maybe = lambda p=0.5: bool(rng.random() < p)  # noqa: E731
    args: dict[str, Any] = {"name": name}
    if name == "sgd":
        args["lr"] = _log_uniform(rng, 1e-3, 0.1)
        if maybe(0.6):
            args["momentum"] = round(float(rng.uniform(0.5, 0.95)), 2)
            if maybe():
                args["nesterov"] = True  # torch: momentum > 0 and dampening 0
                if maybe(0.3):
                    args["dampening"] = 0.0
            elif maybe(0.7):
                args["dampening"] = round(float(rng.uniform(0.1, 0.5)), 2)
                if maybe(0.3):
                    args["nesterov"] = False
        if maybe():
            args["weight_decay"] = _log_uniform(rng, 1e-3, 0.1)
    elif name in ("adam", "adamw"):
        if maybe(0.8):
            args["lr"] = _log_uniform(rng, 1e-3, 0.1)
        if maybe():
            beta1 = round(float(rng.uniform(0.8, 0.95)), 2)
            beta2 = _round_sig(1 - 10 ** rng.uniform(-4, -2), 4)
            args["betas"] = [beta1, beta2]
        if maybe() or dtype == "float16":
            args["eps"] = _eps(rng, dtype, (1e-8, 1e-7, 1e-6))
        if maybe():
            args["weight_decay"] = _log_uniform(rng, 1e-3, 0.1)
    elif name == "rmsprop":
        if maybe(0.8):
            args["lr"] = _log_uniform(rng, 1e-3, 0.02)
        if maybe():
            args["alpha"] = round(float(rng.uniform(0.8, 0.99)), 2)
        if maybe() or dtype == "float16":
            args["eps"] = _eps(rng, dtype, (1e-8, 1e-7, 1e-6))
        if maybe():
            args["momentum"] = round(float(rng.uniform(0.5, 0.9)), 2)
        if maybe():
            args["centered"] = bool(maybe())  # written either way: true or the default false
        if maybe():
            args["weight_decay"] = _log_uniform(rng, 1e-3, 0.1)
    elif name == "adagrad":
        if maybe(0.8):
            args["lr"] = _log_uniform(rng, 1e-3, 0.1)
        if maybe() or dtype == "float16":
            args["eps"] = _eps(rng, dtype, (1e-10, 1e-8, 1e-6))
        if maybe():
            args["initial_accumulator_value"] = round(float(rng.uniform(0.01, 0.5)), 2)
        if maybe():
            args["weight_decay"] = _log_uniform(rng, 1e-3, 0.1)
    else:
        raise GeneratorBug(f"optimizer {name!r} of harness/cases/model.py has no drawer here")
    unknown = set(args) - {"name"} - set(OPTIMIZERS[name])
    if unknown:
        raise GeneratorBug(f"{name}: drew arguments the vocabulary lacks: {sorted(unknown)}")
    return args


def draw_loss(rng: np.random.Generator, name: str) -> str | dict[str, Any]:
    if name not in LOSSES:
        raise GeneratorBug(f"unknown loss {name!r}")
    if LOSSES[name] and rng.random() < 0.7:  # a loss with arguments: draw them
        drawn: dict[str, Any] = {"name": name}
        for arg in LOSSES[name]:
            if arg != "delta":
                raise GeneratorBug(f"loss {name!r}: no drawer for argument {arg!r}")
            drawn["delta"] = round(float(rng.uniform(0.2, 1.5)), 2)
        return drawn
    return name


def draw_init(rng: np.random.Generator, scheme: str, sizes: list[int]) -> dict[str, Any]:
    """The ``network`` entries giving the initial values: ``init`` or ``params``."""
    if scheme == "explicit":
        return {
            "params": {
                name: np.round(rng.uniform(-1.0, 1.0, shape), 3).tolist()
                for name, shape in param_shapes(tuple(sizes)).items()
            }
        }
    init: dict[str, Any] = {"seed": int(rng.integers(2**31)), "scheme": scheme}
    if scheme == "uniform":
        bound = round(float(rng.uniform(0.5, 1.0)), 2)
        init |= {"low": -bound, "high": bound}
    elif scheme == "normal":
        init |= {"mean": round(float(rng.uniform(-0.1, 0.1)), 2)}
        init |= {"std": round(float(rng.uniform(0.3, 0.7)), 2)}
    elif scheme not in ("xavier_uniform", "he_normal"):
        raise GeneratorBug(f"init scheme {scheme!r} of harness/cases/model.py has no drawer here")
    unknown = set(init) - {"seed", "scheme"} - set(INIT_SCHEMES[scheme])
    if unknown:
        raise GeneratorBug(f"{scheme}: drew arguments the vocabulary lacks: {sorted(unknown)}")
    return {"init": init}


def draw_x(rng: np.random.Generator, batch: int, width: int) -> Any:
    if rng.random() < 0.5:
        bound = round(float(rng.uniform(0.5, 1.5)), 2)
        return {"seed": int(rng.integers(2**31)), "batch": batch, "low": -bound, "high": bound}
    return np.round(rng.uniform(-1.0, 1.0, (batch, width)), 3).tolist()


def _sides(rng: np.random.Generator, batch: int, columns: int) -> np.ndarray:
    """±1 per (row, column): with 2 rows or more, each column has both signs."""
    signs = rng.choice([-1.0, 1.0], size=(batch, columns))
    if batch >= 2:
        for k in range(columns):
            up, down = rng.choice(batch, size=2, replace=False)
            signs[up, k], signs[down, k] = 1.0, -1.0
    return signs


def draw_targets(rng: np.random.Generator, loss: str, z_out: np.ndarray, out: np.ndarray):
    """Targets around the network's first output ``out`` (pre-activation ``z_out``)."""
    batch, columns = out.shape
    if loss == "cross_entropy":
        return _probability_rows(rng, batch, columns)
    signs = _sides(rng, batch, columns)
    if loss in PROBABILITY_LOSSES:
        p = 1.0 / (1.0 + np.exp(-z_out))  # bce's output is σ(z); bce_logits reads σ(z) too
        if rng.random() < 0.5:
            y = (signs > 0).astype(float)  # hard labels, both classes in every column
        else:
            u = rng.uniform(0.3, 1.0, (batch, columns))
            y = np.where(signs > 0, p + u * (1 - p), p * (1 - u))
        return np.clip(np.round(y, 3), 0.0, 1.0).tolist()
    offset = rng.uniform(0.05, 1.0, (batch, columns))
    return np.round(out + signs * offset, 3).tolist()


def _probability_rows(rng: np.random.Generator, batch: int, classes: int) -> list[list[float]]:
    """One probability row per sample: one-hot, soft, or a mix; with 2 rows or more the
    one-hot rows name at least two different classes."""
    mode = ("hard", "soft", "mixed")[int(rng.integers(3))]
    labels = rng.integers(classes, size=batch)
    if batch >= 2:
        labels[:2] = rng.choice(classes, size=2, replace=False)
    rows = []
    for b in range(batch):
        if mode == "hard" or (mode == "mixed" and b % 2 == 0):
            row = [0.0] * classes
            row[int(labels[b])] = 1.0
        else:
            soft = np.round(rng.dirichlet(np.ones(classes)), 2)
            top = int(np.argmax(soft))
            soft[top] = round(1.0 - (soft.sum() - soft[top]), 2)  # sums to 1 in decimal
            row = [float(v) for v in soft]
        rows.append(row)
    return rows


# ---------------------------------------------------------------- conditioning


class Rejected(Exception):
    """A draw the float64 replay finds ill-conditioned: which rule (``rule``), and where."""

    def __init__(self, rule: str, where: str) -> None:
        self.rule = rule
        super().__init__(f"{where}: {rule}")


def _ratios(total: np.ndarray, size: np.ndarray) -> np.ndarray:
    """|total| / size where size > 0 (exact zeros, such as a dead unit's, are no cancellation)."""
    mask = size > 0
    return np.abs(total[mask]) / size[mask]


def replay(case: Case, inputs: Inputs, half: bool) -> Conditioning:
    """Every step of ``case`` in float64 with the reference formulas, checking the
    conditioning rules of the module docstring; raises ``Rejected`` at the first breach."""
    precision = "half" if half else "full"
    kink_margin, min_ratio = KINK_MARGIN[precision], MIN_RATIO[precision]
    sizes = case.network.sizes
    layers = len(sizes) - 1
    names = [(f"layers.{i}.weight", f"layers.{i}.bias") for i in range(layers)]
    kinds = [case.network.activation] * (layers - 1) + [case.network.output_activation]
    params = {name: value.copy() for name, value in inputs.params.items()}
    x, y = inputs.x, inputs.y
    loss, loss_args = case.loss.name, case.loss.args
    opt_args = case.optimizer.args
    coupled_decay = case.optimizer.name != "adamw" and opt_args.get("weight_decay", 0.0)
    optimizer = ReferenceOptimizer(case.optimizer.name, opt_args)
    found = Conditioning()

    def worst(kind: str, ratios: np.ndarray, where: str) -> None:
        if ratios.size == 0:
            return
        smallest = float(ratios.min())
        if smallest < min_ratio:
            raise Rejected(f"cancellation in {kind}", where)
        setattr(found, kind, max(getattr(found, kind), 1 / max(smallest, 1e-300)))

    for step in range(case.steps + 1):
        a, zs, acts = x, [], [x]
        for i, ((weight, bias), kind) in enumerate(zip(names, kinds, strict=True)):
            w, b = params[weight], params[bias]
            z = a @ w.T + b
            scale = np.abs(a) @ np.abs(w).T + np.abs(b)
            where = f"step {step} layer {i}"
            bound = SATURATION[kind]
            if i == layers - 1:
                bound = min(bound, OUTPUT_SATURATION.get(loss, bound))
            if np.abs(z).max() > bound:
                raise Rejected(f"saturated {kind}", where)
            if kind in KINKED and (np.abs(z) < kink_margin * scale).any():
                raise Rejected(f"{kind} kink", where)
            worst("forward", _ratios(z, scale), where)
            a = REFERENCE_ACTIVATIONS[kind].value(z)
            zs.append(z)
            acts.append(a)
        if step == case.steps:  # output_after: the forward pass alone
            break
        out = acts[-1]
        _check_residuals(loss, loss_args, out, y, worst, f"step {step} loss")
        _, grad_out = REFERENCE_LOSSES[loss](out, y, loss_args)
        delta = grad_out * REFERENCE_ACTIVATIONS[kinds[-1]].derivative(zs[-1], acts[-1])
        grads = {}
        for i in reversed(range(layers)):
            weight, bias = names[i]
            terms = {
                weight: delta[:, :, None] * acts[i][:, None, :],  # (row, out, in)
                bias: delta,  # (row, out)
            }
            for name, per_row in terms.items():
                total, size = per_row.sum(axis=0), np.abs(per_row).sum(axis=0)
                grads[name] = total
                if coupled_decay:  # the optimizer adds weight_decay * θ to the gradient
                    total = total + coupled_decay * params[name]
                    size = size + np.abs(coupled_decay * params[name])
                worst("gradient", _ratios(total, size), f"step {step} grad {name}")
            if i:
                slope = REFERENCE_ACTIVATIONS[kinds[i - 1]].derivative(zs[i - 1], acts[i])
                delta = (delta @ params[weight]) * slope
        optimizer.step(params, {name: grads[name] for name in params})
        if not all(np.isfinite(value).all() for value in params.values()):
            raise Rejected("parameter not finite", f"step {step}")
    return found


def _check_residuals(loss: str, args: Mapping[str, float], out, y, worst, where: str) -> None:
    """The loss's own differences: o − y (σ(z) − y for bce_logits, softmax·Σy − y for
    cross_entropy) must not cancel nearly to 0, nor sit at mae's or huber's kink."""
    if loss == "cross_entropy":
        shifted = np.exp(out - out.max(axis=1, keepdims=True))
        first = shifted / shifted.sum(axis=1, keepdims=True) * y.sum(axis=1, keepdims=True)
    elif loss == "bce_logits":
        first = 1.0 / (1.0 + np.exp(-out))
    else:
        first = out
    worst("residual", _ratios(first - y, np.abs(first) + np.abs(y)), where)
    e = np.abs(out - y)
    if loss == "mae" and (e < RESIDUAL_MARGIN).any():
        raise Rejected("mae kink", where)
    if loss == "huber" and (np.abs(e - args["delta"]) < RESIDUAL_MARGIN).any():
        raise Rejected("huber kink", where)


# ---------------------------------------------------------------- one case


def _with_defaults(defaults: Mapping[str, Any], drawn: Mapping[str, Any]) -> dict[str, Any]:
    args = {**defaults, **{k: v for k, v in drawn.items() if k != "name"}}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}


def _case_object(document: dict[str, Any]) -> Case:
    """The ``Case`` the loader should make of ``document`` (defaults filled in), built
    directly: cheap enough to try many draws; the loader checks the kept one."""
    network = document["network"]
    init = network.get("init")
    loss = document["loss"] if isinstance(document["loss"], dict) else {"name": document["loss"]}
    optimizer = document["optimizer"]

    def source(value: Any) -> Any:
        if isinstance(value, dict):
            return RandomArraySpec(value["seed"], value["batch"], value["low"], value["high"])
        return np.asarray(value, dtype=np.float64)

    return Case(
        name=document["name"],
        network=Network(
            sizes=tuple(network["sizes"]),
            activation=network["activation"],
            output_activation=network["output_activation"],
            params=(
                {k: np.asarray(v, dtype=np.float64) for k, v in network["params"].items()}
                if "params" in network
                else None
            ),
            init=(
                InitSpec(
                    init["seed"],
                    init["scheme"],
                    {
                        **INIT_SCHEMES[init["scheme"]],
                        **{k: v for k, v in init.items() if k not in ("seed", "scheme")},
                    },
                )
                if init
                else None
            ),
        ),
        x=source(document["data"]["x"]),
        y=source(document["data"]["y"]),
        loss=Loss(loss["name"], _with_defaults(LOSSES[loss["name"]], loss)),
        optimizer=Optimizer(
            optimizer["name"], _with_defaults(OPTIMIZERS[optimizer["name"]], optimizer)
        ),
        steps=document["steps"],
        dtype=document["dtype"],
    )


def case_name(seed: int, index: int, knobs: Knobs) -> str:
    return (
        f"rand-s{seed}-{index:04d}-{knobs.activation}-{knobs.output_activation}"
        f"-{knobs.loss}-{knobs.optimizer}-{knobs.dtype}"
    )


def draw_case(seed: int, index: int, half: bool) -> tuple[dict[str, Any], Case]:
    """Case ``index`` of ``seed``: its YAML document and the ``Case`` it stands for."""
    knobs = draw_knobs(seed, index, half)
    precision_half = knobs.dtype in HALF_DTYPES
    reasons: dict[str, int] = {}
    for attempt in range(MAX_ATTEMPTS):
        rng = np.random.default_rng([seed, index, attempt])
        depth = int(rng.integers(1, 4))
        outputs = int(rng.integers(MIN_OUTPUTS.get(knobs.loss, 1), 6))
        sizes = [int(rng.integers(1, 6)) for _ in range(depth + 1)] + [outputs]
        batch, steps = int(rng.integers(1, 7)), int(rng.integers(1, 4))
        network: dict[str, Any] = {
            "sizes": sizes,
            "activation": knobs.activation,
            "output_activation": knobs.output_activation,
            **draw_init(rng, knobs.init, sizes),
        }
        document: dict[str, Any] = {
            "name": case_name(seed, index, knobs),
            "description": "",
            "network": network,
            "data": {"x": draw_x(rng, batch, sizes[0]), "y": [[0.0] * outputs] * batch},
            "loss": draw_loss(rng, knobs.loss),
            "optimizer": draw_optimizer(rng, knobs.optimizer, knobs.dtype),
            "steps": steps,
            "dtype": knobs.dtype,
        }
        # Targets around the first output the case's own (dtype-rounded) numbers give.
        first = make_inputs(_case_object(document))
        z_out, out = _first_output(first, knobs)
        document["data"]["y"] = draw_targets(rng, knobs.loss, z_out, out)
        case = _case_object(document)
        try:
            found = replay(case, make_inputs(case), precision_half)
        except Rejected as exc:
            reasons[exc.rule] = reasons.get(exc.rule, 0) + 1
            continue
        document["description"] = (
            f"random case {index} of seed {seed} (draw {attempt + 1}): "
            f"{depth} hidden layer{'s' if depth > 1 else ''}, batch {batch}, "
            f"{steps} step{'s' if steps > 1 else ''}, init {knobs.init}; {found.describe()}"
        )
        return document, dataclasses.replace(case, description=document["description"])
    raise GeneratorBug(
        f"case {index} of seed {seed} ({knobs}): no well-conditioned draw in {MAX_ATTEMPTS} "
        f"attempts; rejections: {reasons}"
    )


def _first_output(inputs: Inputs, knobs: Knobs) -> tuple[np.ndarray, np.ndarray]:
    a = inputs.x
    layers = len(inputs.params) // 2
    z = a
    for i in range(layers):
        z = a @ inputs.params[f"layers.{i}.weight"].T + inputs.params[f"layers.{i}.bias"]
        kind = knobs.activation if i < layers - 1 else knobs.output_activation
        a = REFERENCE_ACTIVATIONS[kind].value(z)
    return z, a


# ---------------------------------------------------------------- text and validation


def render(document: dict[str, Any], seed: int, half: bool) -> str:
    """The case file: a comment saying how to regenerate it, then the document."""
    command = f"python -m benchmarks.random_cases --seed {seed}{' --half' if half else ''}"
    lines = [f"# Generated by `{command}`; regenerate rather than edit."]
    _emit_mapping(document, 0, lines)
    return "\n".join(lines) + "\n"


# A small emitter of the few shapes a case holds (yaml.safe_dump, pure Python, took half of
# the generator's time): scalars, flow lists and flow mappings of scalars, block mappings,
# and block lists of flow lists for matrices. Strings are JSON strings, which YAML reads as
# double-quoted scalars, unless a name; floats are Python's shortest round-trip repr, with
# a decimal point (1.0e-06) so that YAML 1.1 readers such as plain PyYAML see floats too.
PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise GeneratorBug(f"non-finite number {value!r} in a case")
        text = repr(value)
        if "e" in text and "." not in text:  # 1e-06 -> 1.0e-06: a float in YAML 1.1 too
            text = text.replace("e", ".0e", 1)
        return text
    if isinstance(value, str):
        plain = PLAIN.fullmatch(value) and value.lower() not in ("true", "false", "null")
        return value if plain else json.dumps(value)
    raise GeneratorBug(f"cannot write {type(value).__name__} {value!r} in a case")


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, dict | list)


def _flow(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_flow(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_flow(item)}" for key, item in value.items()) + "}"
    return _scalar(value)


def _emit_mapping(mapping: Mapping[str, Any], indent: int, lines: list[str]) -> None:
    pad = " " * indent
    for key, value in mapping.items():
        if isinstance(value, dict) and not all(map(_is_scalar, value.values())):
            lines.append(f"{pad}{key}:")
            _emit_mapping(value, indent + 2, lines)
        elif isinstance(value, list) and value and isinstance(value[0], list):
            lines.append(f"{pad}{key}:")
            lines += [f"{pad}  - {_flow(row)}" for row in value]
        else:
            lines.append(f"{pad}{key}: {_flow(value)}")


def validate(text: str, path: Path, expected: Case) -> None:
    """Write ``text`` to ``path``, load it with the project's loader and check that it
    gives ``expected`` back."""
    filename = path.name
    path.write_text(text, encoding="utf-8")
    try:
        (case,) = load_file(path)
    except CaseError as exc:
        raise GeneratorBug(f"{filename}: the loader refuses it:\n{exc}") from None
    except ValueError:
        raise GeneratorBug(f"{filename}: the loader found more than one case") from None
    differences = [
        field
        for field, got, want in (
            ("name", case.name, expected.name),
            ("description", case.description, expected.description),
            ("network.sizes", case.network.sizes, expected.network.sizes),
            ("network.activation", case.network.activation, expected.network.activation),
            (
                "network.output_activation",
                case.network.output_activation,
                expected.network.output_activation,
            ),
            ("network.init", case.network.init, expected.network.init),
            ("loss", case.loss, expected.loss),
            ("optimizer", case.optimizer, expected.optimizer),
            ("steps", case.steps, expected.steps),
            ("dtype", case.dtype, expected.dtype),
            ("tolerance", case.tolerance, None),
            ("expect", case.expect, None),
        )
        if got != want
    ]
    loaded, drawn = make_inputs(case), make_inputs(expected)
    for name in drawn.params:
        if not np.array_equal(loaded.params[name], drawn.params[name]):
            differences.append(f"network.params.{name}")
    for name in ("x", "y"):
        if not np.array_equal(getattr(loaded, name), getattr(drawn, name)):
            differences.append(f"data.{name}")
    if differences:
        raise GeneratorBug(
            f"{filename}: the loader reads {', '.join(differences)} differently from the draw"
        )


def generate(seed: int, count: int, half: bool = False) -> list[tuple[str, str]]:
    """(file name, YAML text) of cases 0 .. count-1 of ``seed``, each validated."""
    files = []
    with tempfile.TemporaryDirectory(prefix="crossgrad-random-") as folder:
        for index in range(count):
            document, case = draw_case(seed, index, half)
            text = render(document, seed, half)
            filename = f"{document['name']}.yaml"
            validate(text, Path(folder) / filename, case)
            files.append((filename, text))
    return files


# ---------------------------------------------------------------- command line


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"expected 1..{MAX_COUNT:,}, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected 0..2**63-1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.random_cases",
        description=(
            "Write seeded random, well-conditioned case files (docs/spec.md §2) covering "
            "every activation, loss, optimizer and dtype, for checking that correct "
            "frameworks are not flagged."
        ),
    )
    parser.add_argument("--seed", type=_seed, required=True, help="0..2**63-1")
    parser.add_argument("--count", type=_count, required=True, help=f"cases, 1..{MAX_COUNT:,}")
    parser.add_argument("--out", type=Path, required=True, help="folder for the case files")
    parser.add_argument(
        "--half",
        action="store_true",
        help="add float16 and bfloat16 cases (loose tolerances; off by default)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the rand-*.yaml files already in --out (other files are still refused)",
    )
    return parser


def _prepare_out(parser: argparse.ArgumentParser, out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out}: exists and is not a folder")
    if not out.exists():
        return
    entries = sorted(out.iterdir())
    ours = [
        p for p in entries if p.is_file() and p.name.startswith("rand-") and p.suffix == ".yaml"
    ]
    others = [p.name for p in entries if p not in ours]
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        parser.error(f"--out {out}: holds files this generator did not write ({shown})")
    if ours and not overwrite:
        parser.error(f"--out {out}: already holds {len(ours)} case files (--overwrite to replace)")
    for path in ours:
        path.unlink()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    options = parser.parse_args(argv)
    _prepare_out(parser, options.out, options.overwrite)
    try:
        files = generate(options.seed, options.count, options.half)
    except GeneratorBug as exc:
        print(f"random_cases: generator bug: {exc}", file=sys.stderr)
        return 1
    try:
        options.out.mkdir(parents=True, exist_ok=True)
        for filename, text in files:
            (options.out / filename).write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"random_cases: cannot write {options.out}: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(files)} case files to {options.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
