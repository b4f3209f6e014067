"""Hypothesis strategies for fuzzing: families of cases across the whole case vocabulary.

A *family* is one structure (layer sizes, activations, loss, optimizer with all its
arguments, dtype, rows, steps) and one to ``MAX_VARIANTS`` value sets (parameters, inputs,
targets). Its cases differ only in values, so a vectorized run computes a family in one
batched call per backend (harness/run/vectorize.py): a campaign of mixed shapes still runs
at sweep speed.

Every draw is ordered so that Hypothesis' shrinker, which moves each choice toward the
first element of a ``sampled_from`` and toward 0 (or the lower bound) of an integer, walks
toward the simplest case: fewer layers, units, rows, steps and variants; float32; ``mse``;
``sgd``; every optional argument left at its default; values 0, short dyadic decimals and
±1 at scale 1. Generation is weighted toward the edges where frameworks differ
(docs/fuzzing.md, "What is generated"):

- values are dyadic (``k / 8`` times a power of two), so a pre-activation, a residual or a
  gradient that is 0 in exact arithmetic is exactly 0 in every float format: kinks of relu,
  leaky_relu and elu, mae's sign at 0, huber at ``delta``;
- an array's scale is sometimes large (saturation, outputs near 0 and 1 for bce), tiny
  (gradients near underflow, second moments below eps) or, in float16 and bfloat16,
  subnormal;
- learning rates reach 10 and 100; eps reaches 0.001 and 1e-10; momentum 0.99.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from harness.cases.model import ACTIVATIONS, DTYPES, LOSSES, OPTIMIZERS, param_names, param_shapes

MAX_LAYERS = 4
MAX_WIDTH = 8
MAX_ROWS = 16
MAX_STEPS = 10
MAX_VARIANTS = 16

# Simplest first: the shrinker moves toward the front of each list.
DTYPE_ORDER = ("float32", "float64", "float16", "bfloat16")
ACTIVATION_ORDER = (
    "identity",
    "relu",
    "sigmoid",
    "tanh",
    "leaky_relu",
    "elu",
    "softplus",
    "silu",
    "gelu",
    "gelu_tanh",
)
LOSS_ORDER = ("mse", "sse", "half_sse", "mae", "huber", "bce", "bce_logits", "cross_entropy")
OPTIMIZER_ORDER = ("sgd", "adam", "adamw", "rmsprop", "adagrad")

# Losses whose output activation the spec fixes (docs/spec.md §2.7), and their least width.
FIXED_OUTPUT_ACTIVATION = {"bce": "sigmoid", "bce_logits": "identity", "cross_entropy": "identity"}
MIN_OUTPUTS = {"cross_entropy": 2}
PROBABILITY_TARGETS = ("bce", "bce_logits")

# Candidate values of every optimizer argument, the common ones first; an argument may also
# be left out (its default). float16 eps stays above float16's smallest subnormal (6e-8):
# an eps that rounds to 0 makes 0/0 a NaN in every framework, which tests nothing.
LEARNING_RATES = (0.1, 0.01, 0.5, 1.0, 0.001, 10.0, 100.0)
ARGUMENT_VALUES: Mapping[str, tuple[Any, ...]] = {
    "lr": LEARNING_RATES,
    "momentum": (0.9, 0.5, 0.99),
    "dampening": (0.5, 0.1),
    "nesterov": (True,),
    "weight_decay": (0.01, 0.1, 1.0, 0.001),
    "betas": ((0.9, 0.999), (0.5, 0.9), (0.0, 0.99), (0.9, 0.5)),
    "eps": (1e-8, 0.001, 1e-6, 1e-10),
    "alpha": (0.9, 0.5, 0.999),
    "centered": (True,),
    "initial_accumulator_value": (0.1, 1.0),
}
HALF_EPS = (0.001, 1e-4, 1e-7)
HUBER_DELTAS = (0.5, 2.0, 0.125)

# An array's scale: 1 most of the time, else an edge. Half precision adds subnormal scales.
SCALES = (1.0, 1.0, 1.0, 1.0, 0.125, 8.0, 32.0, 2.0**-20, 2.0**-70, 2.0**-100)
HALF_SCALES = (1.0, 1.0, 1.0, 1.0, 0.125, 8.0, 32.0, 2.0**-10, 2.0**-16, 2.0**-20)
# Numerators of k / 8: within [-2, 2] at scale 1.
NUMERATOR = 16


@dataclass(frozen=True)
class Family:
    """One structure and the value sets of its cases, as case-file mappings."""

    structure: Mapping[str, Any]  # every case key but name and values
    variants: tuple[Mapping[str, Any], ...]  # each: {"params": ..., "x": ..., "y": ...}

    def cases(self, prefix: str) -> list[dict[str, Any]]:
        """The family's case mappings (docs/spec.md §2.3), named ``{prefix}-{i}``."""
        return [
            case_mapping(f"{prefix}-{i}", self.structure, v) for i, v in enumerate(self.variants)
        ]


def case_mapping(
    name: str, structure: Mapping[str, Any], values: Mapping[str, Any]
) -> dict[str, Any]:
    """A case file's mapping: ``structure`` with one value set."""
    network = dict(structure["network"])
    network["params"] = values["params"]
    mapping: dict[str, Any] = {"name": name}
    mapping["network"] = network
    mapping["data"] = {"x": values["x"], "y": values["y"]}
    for key in ("loss", "optimizer", "steps", "dtype"):
        mapping[key] = structure[key]
    return mapping


def families(dtypes: Sequence[str] = DTYPES) -> st.SearchStrategy[Family]:
    """Families over the whole vocabulary (restricted to ``dtypes``)."""
    unknown = sorted(set(ACTIVATION_ORDER) ^ set(ACTIVATIONS)) + sorted(
        (set(LOSS_ORDER) ^ set(LOSSES)) | (set(OPTIMIZER_ORDER) ^ set(OPTIMIZERS))
    )
    if unknown:  # the vocabulary grew: the generator must learn the new names
        raise ValueError(f"the fuzz generator does not order {unknown}")
    order = tuple(d for d in DTYPE_ORDER if d in dtypes)
    return _families(order)


@st.composite
def _families(draw: st.DrawFn, dtype_order: tuple[str, ...]) -> Family:
    loss = draw(st.sampled_from(LOSS_ORDER))
    activation = draw(st.sampled_from(ACTIVATION_ORDER))
    output_activation = FIXED_OUTPUT_ACTIVATION.get(loss) or draw(st.sampled_from(ACTIVATION_ORDER))
    # A list, so that the shrinker drops a hidden layer by deleting one element: a count
    # drawn first would shift every later draw when it shrinks.
    hidden = draw(st.lists(_small_first(3, MAX_WIDTH), max_size=MAX_LAYERS - 1))
    sizes = [draw(_small_first(3, MAX_WIDTH)), *hidden]
    sizes.append(draw(_small_first(3, MAX_WIDTH, least=MIN_OUTPUTS.get(loss, 1))))
    rows = draw(_small_first(4, MAX_ROWS))
    steps = draw(_small_first(3, MAX_STEPS))
    dtype = draw(st.sampled_from(dtype_order))
    structure: dict[str, Any] = {
        "network": {
            "sizes": sizes,
            "activation": activation,
            "output_activation": output_activation,
        },
        "loss": _loss(draw, loss),
        "optimizer": draw(optimizers(dtype)),
        "steps": steps,
        "dtype": dtype,
    }
    # Few variants most of the time: a campaign's budget is counted in cases, and more
    # structures find more of what differs between frameworks (most of it is structural).
    count = draw(st.one_of(st.integers(1, 2), st.integers(1, 4), st.integers(1, MAX_VARIANTS)))
    variants = tuple(draw(_values(tuple(sizes), rows, loss, dtype)) for _ in range(count))
    return Family(structure, variants)


def _small_first(usual: int, most: int, least: int = 1) -> st.SearchStrategy[int]:
    """An integer in [least, most], in [least, usual] half of the time: a case's cost grows
    with its size (rows x widths x steps values to record and compare) and most differences
    show in small cases, so large ones are drawn for coverage, not by default."""
    return st.one_of(st.integers(least, max(least, usual)), st.integers(least, most))


def _loss(draw: st.DrawFn, name: str) -> Any:
    if name == "huber":
        delta = draw(st.one_of(st.none(), st.sampled_from(HUBER_DELTAS)))
        if delta is not None:
            return {"name": name, "delta": delta}
    return name


@st.composite
def optimizers(draw: st.DrawFn, dtype: str) -> dict[str, Any]:
    """An optimizer mapping: its name and each argument drawn or left at its default."""
    name = draw(st.sampled_from(OPTIMIZER_ORDER))
    mapping: dict[str, Any] = {"name": name}
    for argument, default in OPTIMIZERS[name].items():
        candidates = (
            HALF_EPS if argument == "eps" and dtype == "float16" else ARGUMENT_VALUES[argument]
        )
        if default is None:  # required (sgd's lr)
            mapping[argument] = draw(st.sampled_from(candidates))
            continue
        if draw(st.booleans()):  # set half the time; shrinks to the default (False)
            value = draw(st.sampled_from(candidates))
            mapping[argument] = list(value) if isinstance(value, tuple) else value
    if mapping.get("nesterov") and (not mapping.get("momentum") or mapping.get("dampening")):
        del mapping["nesterov"]  # torch.optim.SGD refuses nesterov without momentum, with dampening
    return mapping


@st.composite
def _values(
    draw: st.DrawFn, sizes: tuple[int, ...], rows: int, loss: str, dtype: str
) -> dict[str, Any]:
    half = dtype in ("float16", "bfloat16")
    params = {name: _array(draw, shape, half) for name, shape in param_shapes(sizes).items()}
    assert list(params) == param_names(sizes)
    x = _array(draw, (rows, sizes[0]), half)
    return {"params": params, "x": x, "y": _targets(draw, rows, sizes[-1], loss, half)}


def _array(draw: st.DrawFn, shape: tuple[int, ...], half: bool) -> Any:
    """A nested list of dyadic numbers ``k / 8 * scale``, shrinking toward 0 and scale 1."""
    scale = draw(st.sampled_from(HALF_SCALES if half else SCALES))
    size = 1
    for n in shape:
        size *= n
    flat = [_number(draw(st.integers(-NUMERATOR, NUMERATOR)) / 8 * scale) for _ in range(size)]
    return _nest(flat, shape)


def _targets(draw: st.DrawFn, rows: int, width: int, loss: str, half: bool) -> Any:
    if loss in PROBABILITY_TARGETS:  # labels in [0, 1]: hard 0 / 1 or soft k / 8
        return _nest([draw(st.integers(0, 8)) / 8 for _ in range(rows * width)], (rows, width))
    if loss == "cross_entropy":  # probability rows: one-hot, or a split between two classes
        out = []
        for _ in range(rows):
            row = [0.0] * width
            first = draw(st.integers(0, width - 1))
            second = draw(st.integers(0, width - 1))
            share = draw(st.sampled_from((1.0, 0.5, 0.75)))
            row[first] += share
            row[second] += 1.0 - share
            out.append(row)
        return out
    return _array(draw, (rows, width), half)


def _number(value: float) -> float | int:
    """0.0 as 0 and ±1.0 as ±1 read the same; the rest as floats (YAML writes them short)."""
    return value + 0.0  # -0.0 -> 0.0: a case file states no negative zero


def _nest(flat: list[Any], shape: tuple[int, ...]) -> Any:
    if len(shape) == 1:
        return flat
    width = len(flat) // shape[0]
    return [_nest(flat[i * width : (i + 1) * width], shape[1:]) for i in range(shape[0])]
