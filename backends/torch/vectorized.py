"""PyTorch, vectorized: ``torch.func.vmap`` of the adapter's ``nn.Linear`` layers and loss,
and its ``torch.optim`` optimizer on parameter tensors with a leading variant axis.

torch.optim's algorithms are elementwise, so one optimizer over batched tensors is each
variant's optimizer at once; ``functional_call`` runs each ``nn.Linear`` with one variant's
weights, so per variant the loss reduces exactly as in the per-case adapter.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backends.torch import ops
from backends.torch.eager import TorchModel, TorchNetwork, to_host
from harness.cases.inputs import Inputs
from harness.cases.model import Case, param_names
from harness.run.batch_trace import BatchInputs, BatchTrace


def run_batch(backend: Any, case: Case, inputs: BatchInputs) -> BatchTrace:
    """Every case of ``case``'s step key at once; ``backend`` is a TorchBackend."""
    torch = backend.torch
    func = torch.func
    first = Inputs({name: p[0] for name, p in inputs.params.items()}, inputs.x[0], inputs.y[0])
    network = TorchNetwork(torch, case.network.sizes, case.dtype)
    model = TorchModel(torch, network, case, first)  # the adapter's layers, activations and loss
    layers = list(network.net.layers)
    dtype = getattr(torch, case.dtype)

    def outputs(params: dict[str, Any], x: Any) -> list[Any]:
        """Every layer's output after its activation; the last is the network's."""
        a, found = x, []
        for i, layer in enumerate(layers):
            weights = {"weight": params[f"layers.{i}.weight"], "bias": params[f"layers.{i}.bias"]}
            a = (model.last if i == len(layers) - 1 else model.hidden)(
                func.functional_call(layer, weights, (a,))
            )
            found.append(a)
        return found

    def loss(params: dict[str, Any], x: Any, y: Any) -> Any:
        return model.loss_fn(outputs(params, x)[-1], y)

    loss_and_grads = func.vmap(func.grad_and_value(loss))
    batched_output = func.vmap(outputs)

    def tensor(array: np.ndarray) -> Any:
        # A copy (float64 -> dtype: exact): the optimizer updates these tensors in place, and
        # from_numpy would share the batch's inputs with it, which later backends read.
        return torch.tensor(array, dtype=dtype)

    names = param_names(case.network.sizes)
    params = {name: tensor(inputs.params[name]) for name in names}
    x, y = tensor(inputs.x), tensor(inputs.y)
    optimizer = ops.optimizer(
        torch.optim, list(params.values()), case.optimizer.name, case.optimizer.args
    )
    with torch.no_grad():
        trace = BatchTrace(output=to_host(batched_output(params, x)[-1]))
    for _ in range(case.steps):
        with torch.no_grad():
            trace.activations.append([to_host(a) for a in batched_output(params, x)[:-1]])
        grads, value = loss_and_grads(params, x, y)
        for name in names:
            params[name].grad = grads[name]
        optimizer.step()
        trace.losses.append(to_host(value))
        trace.grads.append({name: to_host(grads[name]) for name in names})
        trace.params.append({name: to_host(params[name]) for name in names})
    with torch.no_grad():
        trace.output_after = to_host(batched_output(params, x)[-1])
    return trace
