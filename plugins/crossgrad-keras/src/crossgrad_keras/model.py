"""One case as Keras 3 ``Dense`` layers on PyTorch, trained with Keras losses and optimizers.

Runs inside the worker only. The training step is the one Keras documents for the torch
backend: the loss's ``backward()``, each variable's ``.value.grad``, then
``optimizer.apply`` under ``torch.no_grad()``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from backends.base import host_array

# Keras 3 is one API on every backend: the TensorFlow adapter's tables of Keras loss objects
# and optimizers (functions of the keras modules given, importing no framework) serve here.
from backends.tensorflow.ops import keras_loss
from backends.tensorflow.ops import optimizer as keras_optimizer
from harness.cases.inputs import Inputs
from harness.cases.model import Case
from harness.run import determinism


def load_keras() -> tuple[Any, Any]:
    """Keras on PyTorch, with the harness's determinism switches applied to PyTorch."""
    os.environ["KERAS_BACKEND"] = "torch"
    determinism.apply_environment()
    import torch

    determinism.configure_torch(torch)
    import keras

    if keras.backend.backend() != "torch":
        raise RuntimeError(f"Keras runs on {keras.backend.backend()!r}, expected 'torch'")
    return keras, torch


class KerasModel:
    def __init__(self, keras: Any, torch: Any, case: Case, inputs: Inputs) -> None:
        self.keras, self.torch = keras, torch
        dtype = case.dtype
        # As the TensorFlow adapter does: under floatx float32 Keras keeps the learning rate
        # in a float32 variable, even for a float64 model.
        keras.config.set_floatx("float64" if dtype == "float64" else "float32")
        self.layers = []
        for layer, (fan_in, fan_out) in enumerate(itertools.pairwise(case.network.sizes)):
            dense = keras.layers.Dense(fan_out, dtype=dtype)
            dense.build((None, fan_in))
            kernel = inputs.params[f"layers.{layer}.weight"].T  # Keras kernels are (in, out)
            # Converted at the case's dtype: Keras would take a float64 array as float32.
            dense.kernel.assign(keras.ops.convert_to_tensor(kernel, dtype=dtype))
            dense.bias.assign(
                keras.ops.convert_to_tensor(inputs.params[f"layers.{layer}.bias"], dtype=dtype)
            )
            self.layers.append(dense)
        self.x = keras.ops.convert_to_tensor(inputs.x, dtype=dtype)
        self.y = keras.ops.convert_to_tensor(inputs.y, dtype=dtype)
        self.hidden = _activation(keras, case.network.activation)
        self.last = _activation(keras, case.network.output_activation)
        self.loss_fn = _loss(keras, case.loss.name, case.loss.args, dtype)
        self.optimizer = keras_optimizer(keras.optimizers, case.optimizer.name, case.optimizer.args)
        self.variables = [v for dense in self.layers for v in (dense.kernel, dense.bias)]
        self.optimizer.build(self.variables)

    def _output(self) -> Any:
        a = self.x
        for i, dense in enumerate(self.layers):
            a = (self.last if i == len(self.layers) - 1 else self.hidden)(dense(a))
        return a

    def forward(self) -> np.ndarray:
        with self.torch.no_grad():
            return self._numpy(self._output())

    def train_step(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        for variable in self.variables:
            variable.value.grad = None
        loss = self.loss_fn(self.y, self._output())
        loss.backward()
        grads = [variable.value.grad for variable in self.variables]
        recorded = self._by_name(grads)
        with self.torch.no_grad():
            self.optimizer.apply(grads, self.variables)
        return self._numpy(loss.detach()), recorded

    def parameters(self) -> dict[str, np.ndarray]:
        return self._by_name([variable.value for variable in self.variables])

    def _by_name(self, tensors: list[Any]) -> dict[str, np.ndarray]:
        """Kernel/bias pairs as ``state_dict`` entries, kernels transposed back to (out, in)."""
        named = {}
        for layer in range(len(self.layers)):
            kernel, bias = tensors[2 * layer], tensors[2 * layer + 1]
            named[f"layers.{layer}.weight"] = self._numpy(kernel).T.copy()
            named[f"layers.{layer}.bias"] = self._numpy(bias)
        return named

    def _numpy(self, tensor: Any) -> np.ndarray:
        """``host_array`` of a tensor, detached and on the CPU.

        ``Tensor.numpy`` refuses bfloat16, so a bfloat16 tensor crosses as the float32 tensor
        ``host_array`` would make of it (``Tensor.float`` is exact).
        """
        tensor = tensor.detach()
        if tensor.dtype == self.torch.bfloat16:
            tensor = tensor.float()
        return host_array(tensor.cpu().numpy())


def _activation(keras: Any, name: str) -> Any:
    activations = keras.activations
    table = {
        "identity": activations.linear,
        "sigmoid": activations.sigmoid,
        "tanh": activations.tanh,
        "relu": activations.relu,
        "leaky_relu": lambda z: activations.leaky_relu(z, negative_slope=0.01),
        "elu": lambda z: activations.elu(z, alpha=1.0),
        "gelu": lambda z: activations.gelu(z, approximate=False),
        "gelu_tanh": lambda z: activations.gelu(z, approximate=True),
        "softplus": activations.softplus,
        "silu": activations.silu,
    }
    return table[name]


def _loss(keras: Any, name: str, args: Mapping[str, float], dtype: str) -> Any:
    """Keras' loss object, or the loss composed from ``keras.ops`` where Keras has none."""
    found = keras_loss(keras.losses, name, args, dtype)
    if found is not None:
        return found
    ops = keras.ops
    # Keras has no summed squared-error loss (its reduction="sum" sums per-row means).
    if name == "sse":
        return lambda y, o: ops.sum(ops.square(o - y))
    if name == "half_sse":
        return lambda y, o: 0.5 * ops.sum(ops.square(o - y))
    raise ValueError(f"unknown loss {name!r}")
