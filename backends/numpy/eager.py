"""The reference backend: hand-written forward pass, backpropagation and optimizers in NumPy."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ClassVar

import numpy as np

from backends.base import Backend, Model
from backends.numpy.ops import Optimizer, activation, loss
from backends.numpy.semantics import PYTORCH, Semantics
from harness.cases.inputs import Inputs
from harness.cases.model import Case, param_names
from harness.run.trace import Trace


@functools.cache
def numpy_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes  # NumPy has no bfloat16 of its own; ml_dtypes ships with JAX

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


class NumpyBackend(Backend):
    name = "numpy"
    requires: ClassVar[tuple[str, ...]] = ("numpy",)
    distribution = "numpy"
    startup_seconds = 0.1
    rank = 0  # the reference, listed first
    vectorized = "backends.numpy.vectorized:run_batch"

    def __init__(self, semantics: Semantics = PYTORCH) -> None:
        # A framework's documented behaviour instead of PyTorch's, for checking a known
        # divergence (harness/verdict/known.py); a run's reference is always PYTORCH.
        self.semantics = semantics

    def unsupported_reason(self, case: Case) -> str | None:
        if case.dtype == "bfloat16" and not _has_ml_dtypes():
            return "bfloat16 needs the ml_dtypes package (pip install ml_dtypes)"
        return super().unsupported_reason(case)

    def build(self, case: Case, inputs: Inputs) -> Model:
        return NumpyModel(case, inputs, self.semantics)

    def run(self, case: Case, inputs: Inputs) -> Trace:
        # Overflow to inf and inf - inf = nan are results, recorded and compared like any
        # other (a framework computes them silently); numpy's warnings about them are noise.
        with np.errstate(all="ignore"):
            return super().run(case, inputs)


def _has_ml_dtypes() -> bool:
    import importlib.util

    return importlib.util.find_spec("ml_dtypes") is not None


@functools.cache
def matrix_product(dtype: np.dtype) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``a @ b`` for arrays of ``dtype``.

    For NumPy's own float dtypes ``ndarray.dot`` makes the same BLAS or loop call as ``@`` (bit
    for bit, tests/test_reference_math.py) at half the call cost, 1 µs against 2 µs at a case's
    sizes. For bfloat16 they differ: ml_dtypes computes ``@`` into float32 and ``dot`` rounds to
    bfloat16. The reference keeps ``@`` there, as it always has (docs/tolerances.md).
    """
    return np.matmul if dtype.name == "bfloat16" else np.ndarray.dot


@functools.lru_cache(maxsize=256)
def layer_names(sizes: tuple[int, ...]) -> tuple[tuple[str, str], ...]:
    """Each layer's (weight, bias) ``state_dict`` names."""
    names = param_names(sizes)
    return tuple(zip(names[0::2], names[1::2], strict=True))


class NumpyModel:
    """The reference network. It never writes into a parameter array (every update makes
    new ones), so the arrays it hands out stay as they were when handed out."""

    def __init__(self, case: Case, inputs: Inputs, semantics: Semantics = PYTORCH) -> None:
        dtype = numpy_dtype(semantics.compute_dtype or case.dtype)
        self.layer_names = layer_names(case.network.sizes)
        self.params = {
            name: inputs.params[name].astype(dtype) for layer in self.layer_names for name in layer
        }
        self.x = inputs.x.astype(dtype)
        self.y = inputs.y.astype(dtype)
        self.product = matrix_product(dtype)
        hidden = [activation(case.network.activation, semantics)] * (len(self.layer_names) - 1)
        last = activation(case.network.output_activation, semantics)
        self.nonlinearities = [*hidden, last]  # per layer
        self.loss = loss(case.loss.name, semantics)
        self.loss_args = case.loss.args
        # The loss computed from the last pre-activation, skipping the sigmoid's derivative.
        self.loss_from_logits = (
            semantics.bce_from_logits
            and case.loss.name == "bce"
            and case.network.output_activation == "sigmoid"
        )
        self.optimizer = Optimizer(case.optimizer.name, case.optimizer.args, semantics)
        self._forward_pass: tuple[list[np.ndarray], list[np.ndarray]] | None = None

    def _layers(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Pre-activations z_1 .. z_L and activations a_0 = x, a_1 .. a_L.

        Computed once per parameter values: the output, the hidden layers' outputs and the
        step's backward pass all read the same forward pass; the update invalidates it.
        """
        if self._forward_pass is None:
            a, pre_activations, activations = self.x, [], [self.x]
            for activation, (weight, bias) in zip(
                self.nonlinearities, self.layer_names, strict=True
            ):
                z = self.product(a, self.params[weight].T) + self.params[bias]
                a = activation.value(z)
                pre_activations.append(z)
                activations.append(a)
            self._forward_pass = pre_activations, activations
        return self._forward_pass

    def forward(self) -> np.ndarray:
        return self._layers()[1][-1]

    def layer_outputs(self) -> list[np.ndarray]:
        return self._layers()[1][1:-1]

    def train_step(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        pre_activations, activations = self._layers()
        # f'(z_l), only now: the forward pass after the last update never needs them
        slopes = [
            activation.derivative(z, a)
            for activation, z, a in zip(
                self.nonlinearities, pre_activations, activations[1:], strict=True
            )
        ]
        if self.loss_from_logits:
            value, delta = loss("bce_logits")(pre_activations[-1], self.y, self.loss_args)
        else:
            value, dloss_dout = self.loss(activations[-1], self.y, self.loss_args)
            delta = dloss_dout * slopes[-1]  # dloss/dz of the last layer
        grads: dict[str, np.ndarray] = {}
        for layer in reversed(range(len(self.layer_names))):
            weight, bias = self.layer_names[layer]
            grads[weight] = self.product(delta.T, activations[layer])
            grads[bias] = np.add.reduce(delta, axis=0)  # ndarray.sum without its Python wrapper
            if layer:
                delta = self.product(delta, self.params[weight]) * slopes[layer - 1]
        grads = {name: grads[name] for name in self.params}  # state_dict order
        self.optimizer.step(self.params, grads)
        self._forward_pass = None
        return np.asarray(value), grads

    def load_parameters(self, params: dict[str, np.ndarray]) -> None:
        """Replace the current parameters (and forget the forward pass made with the old ones)."""
        self.params = params
        self._forward_pass = None

    def parameters(self) -> dict[str, np.ndarray]:
        return dict(self.params)  # no copies: an update replaces the arrays (class docstring)
