"""PyTorch adapter: a stack of ``nn.Linear``, ``torch.nn`` losses, ``torch.optim`` optimizers.

``torch`` runs eagerly, as PyTorch code normally runs; ``torch:compile``
(backends/torch/compiled.py) is this adapter with its forward pass and loss compiled.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import numpy as np

from backends.base import Backend, Model, host_array
from backends.torch import ops
from harness.cases.inputs import Inputs
from harness.cases.model import Case
from harness.run import determinism


class TorchBackend(Backend):
    name = "torch"
    mode = "eager"
    requires: ClassVar[tuple[str, ...]] = ("torch",)
    distribution = "torch"
    extra = "torch"
    startup_seconds = 2.0
    rank = 1
    vectorized = "backends.torch.vectorized:run_batch"

    def __init__(self) -> None:
        import torch

        self.torch = torch
        determinism.configure_torch(torch)
        self.networks: dict[tuple[tuple[int, ...], str], TorchNetwork] = {}

    def build(self, case: Case, inputs: Inputs) -> Model:
        key = (case.network.sizes, case.dtype)
        if key not in self.networks:
            self.networks[key] = TorchNetwork(self.torch, case.network.sizes, case.dtype)
        return TorchModel(self.torch, self.networks[key], case, inputs)


class TorchNetwork:
    """A stack of ``nn.Linear`` of one shape and dtype, reused by every case of that shape.

    Making modules is most of a small case's cost (``nn.Linear`` initialises its weights
    randomly, only for a case to overwrite them); a case loads its weights into these ones.
    """

    def __init__(self, torch: Any, sizes: tuple[int, ...], dtype: str) -> None:
        nn = torch.nn
        self.net = nn.Module()
        self.net.layers = nn.ModuleList(
            nn.Linear(fan_in, fan_out, dtype=getattr(torch, dtype))
            for fan_in, fan_out in itertools.pairwise(sizes)
        )
        self.named_parameters = list(self.net.named_parameters())
        self.parameters = [p for _, p in self.named_parameters]


class TorchModel:
    """One case in its shape's network; cases run one after another, never interleaved."""

    def __init__(self, torch: Any, network: TorchNetwork, case: Case, inputs: Inputs) -> None:
        self.torch, self.network = torch, network
        dtype = getattr(torch, case.dtype)
        with torch.no_grad():
            for name, p in network.named_parameters:
                p.copy_(torch.from_numpy(inputs.params[name]))  # float64 -> dtype: exact
                p.grad = None
        self.x = torch.from_numpy(inputs.x).to(dtype)
        self.y = torch.from_numpy(inputs.y).to(dtype)
        functional = torch.nn.functional
        self.hidden = ops.activation(functional, case.network.activation)
        self.last = ops.activation(functional, case.network.output_activation)
        self.loss_fn = ops.loss(torch.nn, case.loss.name, case.loss.args)
        # A fresh optimizer per case: no state (momentum, step count) leaks between cases.
        self.optimizer = ops.optimizer(
            torch.optim, network.parameters, case.optimizer.name, case.optimizer.args
        )
        self._outputs: list[Any] | None = None

    def _layer_outputs(self) -> list[Any]:
        """Every layer's output at the current parameters, recorded for autograd.

        One forward pass per parameter values serves the output, the hidden layers' outputs
        and the step's loss (as a training loop uses the output it logged); the update
        invalidates it.
        """
        if self._outputs is None:
            a, outputs = self.x, []
            layers = self.network.net.layers
            for i, layer in enumerate(layers):
                a = (self.last if i == len(layers) - 1 else self.hidden)(layer(a))
                outputs.append(a)
            self._outputs = outputs
        return self._outputs

    def forward(self) -> np.ndarray:
        return to_host(self._layer_outputs()[-1])

    def layer_outputs(self) -> list[np.ndarray]:
        return [to_host(a) for a in self._layer_outputs()[:-1]]

    def train_step(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        self.optimizer.zero_grad()
        loss = self.loss_fn(self._layer_outputs()[-1], self.y)
        loss.backward()
        grads = {name: to_host(p.grad) for name, p in self.network.named_parameters}
        self.optimizer.step()
        self._outputs = None
        return to_host(loss), grads

    def parameters(self) -> dict[str, np.ndarray]:
        return {name: to_host(p) for name, p in self.network.named_parameters}


def to_host(tensor: Any) -> np.ndarray:
    """``host_array`` of a tensor, detached and on the CPU (``numpy(force=True)``).

    ``Tensor.numpy`` refuses bfloat16 (NumPy has none), so a bfloat16 tensor crosses as the
    float32 tensor ``host_array`` would make of it: ``Tensor.float`` is exact.
    """
    if str(tensor.dtype) == "torch.bfloat16":
        tensor = tensor.float()
    return host_array(tensor.numpy(force=True))
