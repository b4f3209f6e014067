"""``torch:compile``: the PyTorch adapter with its forward pass and loss under ``torch.compile``.

Opt-in (not a default backend): inductor generates and compiles C++ on a CPU, seconds per
step key. Dynamo guards on the module it traces, so each step key keeps one persistent
``nn.Linear`` stack that every case of the key loads its weights into; a fresh
``torch.optim`` optimizer per case keeps optimizer state from leaking between cases.
Backward runs through the compiled graph (AOTAutograd), the update through torch.optim.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from typing import Any

import numpy as np

from backends.base import Model
from backends.torch_backend import TorchBackend, _activation, _loss, _numpy, _optimizer
from harness.cases import Case
from harness.inputs import Inputs
from harness.step_key import step_key


class CompiledSlot:
    """One step key's persistent layers and compiled forward/loss functions."""

    def __init__(self, torch: Any, case: Case) -> None:
        nn, functional = torch.nn, torch.nn.functional
        dtype = getattr(torch, case.dtype)
        self.net = nn.Module()
        self.net.layers = nn.ModuleList(
            nn.Linear(fan_in, fan_out, dtype=dtype)
            for fan_in, fan_out in itertools.pairwise(case.network.sizes)
        )
        hidden = _activation(functional, case.network.activation)
        last = _activation(functional, case.network.output_activation)
        loss_fn = _loss(nn, case.loss.name, case.loss.args)
        layers = self.net.layers

        def outputs(x: Any) -> list[Any]:
            """Every layer's output after its activation; the last is the network's."""
            a, found = x, []
            for i, layer in enumerate(layers):
                a = (last if i == len(layers) - 1 else hidden)(layer(a))
                found.append(a)
            return found

        self.outputs = torch.compile(outputs)
        self.loss = torch.compile(lambda x, y: loss_fn(outputs(x)[-1], y))


class TorchCompileBackend(TorchBackend):
    name = "torch:compile"
    mode = "compile"

    def __init__(self) -> None:
        super().__init__()
        self.slots: dict[Hashable, CompiledSlot] = {}

    def build(self, case: Case, inputs: Inputs) -> Model:
        key = step_key(case, int(inputs.x.shape[0]))
        if key not in self.slots:
            self.slots[key] = CompiledSlot(self.torch, case)
        return TorchCompiledModel(self.torch, self.slots[key], case, inputs)


class TorchCompiledModel:
    """One case in its step key's slot; only one case uses a slot at a time."""

    def __init__(self, torch: Any, slot: CompiledSlot, case: Case, inputs: Inputs) -> None:
        self.torch, self.slot = torch, slot
        dtype = getattr(torch, case.dtype)
        with torch.no_grad():
            for name, tensor in slot.net.state_dict(keep_vars=True).items():
                tensor.copy_(torch.from_numpy(inputs.params[name]))  # float64 -> dtype: exact
        self.x = torch.from_numpy(inputs.x).to(dtype)
        self.y = torch.from_numpy(inputs.y).to(dtype)
        self.optimizer = _optimizer(
            torch.optim, slot.net.parameters(), case.optimizer.name, case.optimizer.args
        )

    def forward(self) -> np.ndarray:
        with self.torch.no_grad():
            return _numpy(self.slot.outputs(self.x)[-1])

    def layer_outputs(self) -> list[np.ndarray]:
        with self.torch.no_grad():
            return [_numpy(a) for a in self.slot.outputs(self.x)[:-1]]

    def train_step(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        self.optimizer.zero_grad()
        loss = self.slot.loss(self.x, self.y)
        loss.backward()
        grads = {name: _numpy(p.grad) for name, p in self.slot.net.named_parameters()}
        self.optimizer.step()
        return _numpy(loss.detach()), grads

    def parameters(self) -> dict[str, np.ndarray]:
        return {name: _numpy(p.detach()) for name, p in self.slot.net.named_parameters()}
