"""The adapter interface every backend implements, built-in or plugin.

An adapter turns one case into a ``Trace`` using its framework's own layers, losses,
optimizers and autodiff. The training loop itself lives here, once, so every backend
records the same quantities in the same order; an adapter only says how to build its
model, run a forward pass, take one optimizer step, and read its parameters back.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Protocol

import numpy as np

from harness.cases.inputs import Inputs
from harness.cases.model import ACTIVATIONS, DTYPES, LOSSES, OPTIMIZERS, Case
from harness.run.trace import Trace


class Model(Protocol):
    """One case's network, data, loss and optimizer inside a framework."""

    def forward(self) -> np.ndarray:
        """The network's output on the case's ``x`` at the current parameters."""

    def train_step(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Loss and gradients at the current parameters, then one optimizer update."""

    def parameters(self) -> dict[str, np.ndarray]:
        """Current parameters by ``state_dict`` name, in the case's ``(out, in)`` layout."""

    # Optional: ``layer_outputs() -> list[np.ndarray]``, the hidden layers' outputs (after
    # their activation) at the current parameters. ``Backend.run`` records them when present,
    # so a divergence can be traced to the first layer where it appears.


def host_array(array: Any) -> np.ndarray:
    """An array as a ``Model`` hands it to the harness: a fresh NumPy array that shares no
    memory with the framework (which may reuse or update its buffers), with bfloat16, which
    the harness's NumPy floats lack, widened to float32 (exact: float32 holds every
    bfloat16 value).

    ``array`` is anything ``np.asarray`` takes: a NumPy array the framework's own
    conversion returned (``tensor.numpy()``), or a framework array NumPy reads directly.
    """
    result = np.asarray(array)
    if result.dtype.name == "bfloat16":  # ml_dtypes' bfloat16, as JAX and TensorFlow return it
        return result.astype(np.float32)
    return result.copy()


class Backend(ABC):
    """Base of every adapter. Subclasses set the class attributes and implement ``build``."""

    name: ClassVar[str]
    # How the framework executes the step (eager, jit, function, compile); recorded in every row.
    mode: ClassVar[str] = "eager"
    # Top-level modules the adapter imports; missing ones make it unavailable, not an ImportError.
    requires: ClassVar[tuple[str, ...]] = ()
    # Distribution whose version is reported (and what ``pip install crossgrad[extra]`` adds).
    distribution: ClassVar[str] = ""
    extra: ClassVar[str] = ""
    # Rough seconds to start a worker for this adapter on one idle core (importing the
    # framework, building the adapter). Scheduling only: with fewer cores than backends,
    # the slowest-starting backends start first, since a run lasts as long as its slowest.
    startup_seconds: ClassVar[float] = 1.0
    # Run only when named (``--backend jax:eager``), never by a run that names no backend:
    # another execution mode of a framework whose usual mode is compared by default.
    opt_in: ClassVar[bool] = False
    # Where a built-in's usual mode is listed (``crossgrad backends``, a default run, a merged
    # table's backend order): the reference first. Opt-in modes follow by name, then plugins
    # by name; a plugin's rank is not read.
    rank: ClassVar[int] = 0
    # "module:function" running every case of one step key at once for ``--vectorize``
    # (``harness/run/vectorize.py``), imported only then; "" for none. Never inherited: a
    # batched implementation computes its own class's maths, which a subclass may change.
    vectorized: ClassVar[str] = ""
    # A known-divergences file the adapter's package ships, relative to the adapter's module
    # (docs/known-divergences.md); its entries apply in addition to the built-in ones.
    known_divergences: ClassVar[str] = ""
    # Capabilities: what the adapter can express. A case outside them is skipped with the
    # reason instead of crashing; `crossgrad check-adapter` tests every one declared here.
    activations: ClassVar[tuple[str, ...]] = ACTIVATIONS
    losses: ClassVar[tuple[str, ...]] = tuple(LOSSES)
    optimizers: ClassVar[tuple[str, ...]] = tuple(OPTIMIZERS)
    dtypes: ClassVar[tuple[str, ...]] = DTYPES

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "vectorized" not in cls.__dict__:
            cls.vectorized = ""

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this adapter cannot run here, or None. Never imports the framework."""
        missing = [m for m in cls.requires if importlib.util.find_spec(m) is None]
        if missing:
            hint = (
                f"pip install crossgrad[{cls.extra}]"
                if cls.extra
                else f"pip install {' '.join(missing)}"
            )
            return f"{', '.join(missing)} not installed ({hint})"
        return None

    @classmethod
    def version(cls) -> str:
        """The framework's version from package metadata, without importing it."""
        if not cls.distribution:
            return ""
        try:
            return importlib.metadata.version(cls.distribution)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    def unsupported_reason(self, case: Case) -> str | None:
        """Why this adapter cannot express ``case`` faithfully (reported as skipped), or None.

        Overrides add their own reasons and should return ``super().unsupported_reason(case)``
        otherwise, so the declared capabilities keep applying.
        """
        return self.capability_reason(case)

    @classmethod
    def capability_reason(cls, case: Case) -> str | None:
        """Which part of ``case`` lies outside the declared capabilities, or None."""
        network = case.network
        wanted = [
            ("activation", network.activation, cls.activations),
            ("activation", network.output_activation, cls.activations),
            ("loss", case.loss.name, cls.losses),
            ("optimizer", case.optimizer.name, cls.optimizers),
            ("dtype", case.dtype, cls.dtypes),
        ]
        for kind, value, supported in wanted:
            if value not in supported:
                return (
                    f"{cls.name} does not support {kind} {value!r} "
                    f"(supported: {', '.join(supported)})"
                )
        return None

    def determinism_settings(self) -> dict[str, object]:
        """The settings this adapter put in force for a deterministic run, read back from its
        framework: recorded in the report (``run.json`` and ``environment.json``, under
        ``determinism.backends.<name>.adapter`` and ``backends.<name>.adapter``) and shown
        in ``summary.md``'s environment table.

        Called once in the backend's worker process, right after the adapter is built (and
        in the run's own process before a ``--vectorize`` batch), so whatever ``__init__``
        configured is in force. Return plain values: strings, numbers, booleans, None, and
        lists and mappings of them (anything else is recorded as its ``str``). The default
        records nothing more: the harness reads back torch, JAX and TensorFlow itself
        (``harness/run/fingerprint.py``). An adapter for another framework returns its
        switches here, such as ``{"deterministic": True, "threads": 1}``.
        """
        return {}

    @abstractmethod
    def build(self, case: Case, inputs: Inputs) -> Model:
        """The case's model in this framework, initialised from ``inputs``."""

    def run(self, case: Case, inputs: Inputs) -> Trace:
        model = self.build(case, inputs)
        trace = Trace(output=model.forward())
        layer_outputs = getattr(model, "layer_outputs", None)
        for _ in range(case.steps):
            if layer_outputs is not None:
                trace.activations.append(layer_outputs())
            loss, grads = model.train_step()
            trace.losses.append(loss)
            trace.grads.append(grads)
            trace.params.append(model.parameters())
        trace.output_after = model.forward()
        return trace
