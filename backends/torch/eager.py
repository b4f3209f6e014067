"""PyTorch adapter: a stack of ``nn.Linear``, ``torch.nn`` losses, ``torch.optim`` optimizers."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from backends.base import Backend, Model
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
        self.hidden = _activation(functional, case.network.activation)
        self.last = _activation(functional, case.network.output_activation)
        self.loss_fn = _loss(torch.nn, case.loss.name, case.loss.args)
        # A fresh optimizer per case: no state (momentum, step count) leaks between cases.
        self.optimizer = _optimizer(
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
        return _numpy(self._layer_outputs()[-1])

    def layer_outputs(self) -> list[np.ndarray]:
        return [_numpy(a) for a in self._layer_outputs()[:-1]]

    def train_step(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        self.optimizer.zero_grad()
        loss = self.loss_fn(self._layer_outputs()[-1], self.y)
        loss.backward()
        grads = {name: _numpy(p.grad) for name, p in self.network.named_parameters}
        self.optimizer.step()
        self._outputs = None
        return _numpy(loss), grads

    def parameters(self) -> dict[str, np.ndarray]:
        return {name: _numpy(p) for name, p in self.network.named_parameters}


def _numpy(tensor: Any) -> np.ndarray:
    # NumPy has no bfloat16: widen it to float32, which holds every bfloat16 value exactly.
    if str(tensor.dtype) == "torch.bfloat16":
        tensor = tensor.float()
    return tensor.numpy(force=True).copy()  # force: detached, on the CPU


def _activation(functional: Any, name: str) -> Any:
    table = {
        "identity": lambda z: z,
        "sigmoid": functional.sigmoid,
        "tanh": functional.tanh,
        "relu": functional.relu,
        "leaky_relu": lambda z: functional.leaky_relu(z, 0.01),
        "elu": lambda z: functional.elu(z, alpha=1.0),
        "gelu": lambda z: functional.gelu(z, approximate="none"),
        "gelu_tanh": lambda z: functional.gelu(z, approximate="tanh"),
        "softplus": lambda z: functional.softplus(z, beta=1.0),
        "silu": functional.silu,
    }
    return table[name]


def _loss(nn: Any, name: str, args: Mapping[str, float]) -> Any:
    if name == "mse":
        return nn.MSELoss()
    if name == "sse":
        return nn.MSELoss(reduction="sum")
    if name == "half_sse":
        # torch has no ½·Σe² loss object; compose it from MSELoss(reduction="sum")
        sse = nn.MSELoss(reduction="sum")
        return lambda output, target: 0.5 * sse(output, target)
    if name == "mae":
        return nn.L1Loss()
    if name == "huber":
        return nn.HuberLoss(delta=args["delta"])
    if name == "bce":
        return nn.BCELoss()
    if name == "bce_logits":
        return nn.BCEWithLogitsLoss()
    if name == "cross_entropy":
        return nn.CrossEntropyLoss()  # probability targets: y has the logits' shape
    raise ValueError(f"unknown loss {name!r}")


def _optimizer(optim: Any, params: Any, name: str, args: Mapping[str, Any]) -> Any:
    classes = {
        "sgd": optim.SGD,
        "adam": optim.Adam,
        "adamw": optim.AdamW,
        "rmsprop": optim.RMSprop,
        "adagrad": optim.Adagrad,
    }
    kwargs = dict(args)
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    # foreach=False: the single-tensor loop is the documented algorithm, operation by operation.
    return classes[name](params, foreach=False, **kwargs)
