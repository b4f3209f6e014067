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
from backends.torch import ops
from backends.torch.eager import TorchBackend, to_host
from harness.cases.inputs import Inputs
from harness.cases.model import Case
from harness.cases.step_key import step_key


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
        hidden = ops.activation(functional, case.network.activation)
        last = ops.activation(functional, case.network.output_activation)
        loss_fn = ops.loss(nn, case.loss.name, case.loss.args)
        layers = self.net.layers

        def outputs_and_loss(x: Any, y: Any) -> tuple[list[Any], Any]:
            """Every layer's output after its activation (the last is the network's), and the loss."""
            a, found = x, []
            for i, layer in enumerate(layers):
                a = (last if i == len(layers) - 1 else hidden)(layer(a))
                found.append(a)
            return found, loss_fn(a, y)

        # One compiled graph serves the logged output, the hidden outputs and the loss, as a
        # training loop uses the forward pass it logged; always called with autograd on, so
        # dynamo never compiles a second, no-grad variant for the output after the update.
        self.outputs_and_loss = torch.compile(outputs_and_loss)


class TorchCompileBackend(TorchBackend):
    """The eager adapter with its forward pass and loss under ``torch.compile``."""

    name = "torch:compile"
    mode = "compile"
    opt_in = True

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
        self.optimizer = ops.optimizer(
            torch.optim, slot.net.parameters(), case.optimizer.name, case.optimizer.args
        )
        self._pass: tuple[list[Any], Any] | None = None

    def _forward_pass(self) -> tuple[list[Any], Any]:
        """Layer outputs and loss at the current parameters; the update invalidates them."""
        if self._pass is None:
            self._pass = self.slot.outputs_and_loss(self.x, self.y)
        return self._pass

    def forward(self) -> np.ndarray:
        return to_host(self._forward_pass()[0][-1])

    def layer_outputs(self) -> list[np.ndarray]:
        return [to_host(a) for a in self._forward_pass()[0][:-1]]

    def train_step(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        self.optimizer.zero_grad()
        loss = self._forward_pass()[1]
        loss.backward()
        grads = {name: to_host(p.grad) for name, p in self.slot.net.named_parameters()}
        self.optimizer.step()
        self._pass = None
        return to_host(loss.detach()), grads

    def parameters(self) -> dict[str, np.ndarray]:
        return {name: to_host(p.detach()) for name, p in self.slot.net.named_parameters()}
