"""PyTorch adapter: a stack of ``nn.Linear``, ``torch.nn`` losses, ``torch.optim`` optimizers."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from backends.base import Backend, Model
from harness import determinism
from harness.cases import Case
from harness.inputs import Inputs


class TorchBackend(Backend):
    name = "torch"
    requires: ClassVar[tuple[str, ...]] = ("torch",)
    distribution = "torch"
    extra = "torch"

    def __init__(self) -> None:
        import torch

        self.torch = torch
        determinism.configure_torch(torch)

    def build(self, case: Case, inputs: Inputs) -> Model:
        return TorchModel(self.torch, case, inputs)


class TorchModel:
    def __init__(self, torch: Any, case: Case, inputs: Inputs) -> None:
        self.torch = torch
        nn, functional = torch.nn, torch.nn.functional
        dtype = getattr(torch, case.dtype)
        sizes = case.network.sizes
        self.net = nn.Module()
        self.net.layers = nn.ModuleList(
            nn.Linear(fan_in, fan_out, dtype=dtype) for fan_in, fan_out in itertools.pairwise(sizes)
        )
        with torch.no_grad():
            for name, tensor in self.net.state_dict(keep_vars=True).items():
                tensor.copy_(torch.from_numpy(inputs.params[name]))  # float64 -> dtype: exact
        self.x = torch.from_numpy(inputs.x).to(dtype)
        self.y = torch.from_numpy(inputs.y).to(dtype)
        self.hidden = _activation(functional, case.network.activation)
        self.last = _activation(functional, case.network.output_activation)
        self.loss_fn = _loss(nn, case.loss.name, case.loss.args)
        self.optimizer = _optimizer(
            torch.optim, self.net.parameters(), case.optimizer.name, case.optimizer.args
        )

    def _output(self) -> Any:
        a = self.x
        layers = self.net.layers
        for i, layer in enumerate(layers):
            a = (self.last if i == len(layers) - 1 else self.hidden)(layer(a))
        return a

    def forward(self) -> np.ndarray:
        with self.torch.no_grad():
            return _numpy(self._output())

    def layer_outputs(self) -> list[np.ndarray]:
        outputs, a = [], self.x
        with self.torch.no_grad():
            for layer in list(self.net.layers)[:-1]:
                a = self.hidden(layer(a))
                outputs.append(_numpy(a))
        return outputs

    def train_step(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        self.optimizer.zero_grad()
        loss = self.loss_fn(self._output(), self.y)
        loss.backward()
        grads = {name: _numpy(p.grad) for name, p in self.net.named_parameters()}
        self.optimizer.step()
        return _numpy(loss.detach()), grads

    def parameters(self) -> dict[str, np.ndarray]:
        return {name: _numpy(p.detach()) for name, p in self.net.named_parameters()}


def _numpy(tensor: Any) -> np.ndarray:
    # NumPy has no bfloat16: widen it to float32, which holds every bfloat16 value exactly.
    if str(tensor.dtype) == "torch.bfloat16":
        tensor = tensor.float()
    return tensor.detach().cpu().numpy().copy()


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
