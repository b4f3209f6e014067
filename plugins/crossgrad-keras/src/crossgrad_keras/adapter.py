"""The ``keras_torch`` backend: Keras 3 layers, losses and optimizers on the PyTorch backend.

Keras reads ``KERAS_BACKEND`` once, when it is first imported, for the whole process, and
crossgrad's TensorFlow adapter uses Keras on TensorFlow in the same process. So this
adapter keeps Keras in a worker process of its own, started on first use with
``KERAS_BACKEND=torch``; the model lives there and only NumPy arrays and case objects
cross the pipe. Importing this module imports neither Keras nor PyTorch.
"""

from __future__ import annotations

import importlib.metadata
import os
import pickle
import subprocess
import sys
from typing import Any, ClassVar

import numpy as np

from backends.base import Backend, Model
from harness.cases.inputs import Inputs
from harness.cases.model import Case


class WorkerError(RuntimeError):
    """An exception raised inside the Keras worker, or the worker's unexpected exit."""


class KerasTorchBackend(Backend):
    name = "keras_torch"
    requires: ClassVar[tuple[str, ...]] = ("keras", "torch")
    distribution = "keras"
    # Keras' documented behaviours (eps inside sqrt, epsilon-hat Adam, …), shipped with us.
    known_divergences = "known_divergences.yaml"
    startup_seconds = 5.0  # Keras and PyTorch, imported in a child process of the worker

    def __init__(self) -> None:
        self._worker: Worker | None = None

    @classmethod
    def version(cls) -> str:
        """Keras' version and the PyTorch it runs on: either can change the numbers."""
        try:
            torch = importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:
            torch = "unknown"
        return f"{super().version()} (torch {torch})"

    def unsupported_reason(self, case: Case) -> str | None:
        if case.optimizer.name == "sgd" and case.optimizer.args["dampening"]:
            return "keras.optimizers.SGD has no dampening argument"
        return super().unsupported_reason(case)

    def determinism_settings(self) -> dict[str, object]:
        """What the Keras worker, where the model computes, has in force: this process
        imports neither Keras nor PyTorch, so crossgrad's own read-back finds nothing here."""
        settings: dict[str, object] = self._started().call("settings")
        return settings

    def build(self, case: Case, inputs: Inputs) -> Model:
        worker = self._started()
        worker.call("build", case, inputs)
        return RemoteModel(worker)

    def _started(self) -> Worker:
        if self._worker is None or not self._worker.alive():
            self._worker = Worker()
        return self._worker

    def __del__(self) -> None:
        if self._worker is not None:
            self._worker.close()


class RemoteModel:
    """The ``Model`` protocol, answered by the model built inside the worker."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def forward(self) -> np.ndarray:
        result: np.ndarray = self.worker.call("forward")
        return result

    def train_step(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        result: tuple[np.ndarray, dict[str, np.ndarray]] = self.worker.call("train_step")
        return result

    def parameters(self) -> dict[str, np.ndarray]:
        result: dict[str, np.ndarray] = self.worker.call("parameters")
        return result


class Worker:
    """A ``python -m crossgrad_keras.worker`` child speaking pickled requests over its pipes."""

    def __init__(self) -> None:
        env = dict(os.environ, KERAS_BACKEND="torch")
        # The child imports crossgrad from wherever this process does (a source checkout too).
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "crossgrad_keras.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def call(self, method: str, *args: Any) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            pickle.dump((method, args), self.process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.process.stdin.flush()
            status, payload = pickle.load(self.process.stdout)
        except (EOFError, BrokenPipeError, OSError) as exc:
            code = self.process.wait()
            raise WorkerError(
                f"the Keras worker exited with status {code} during {method}"
            ) from exc
        if status == "error":
            raise WorkerError(payload)
        return payload

    def close(self) -> None:
        if self.alive() and self.process.stdin is not None:
            self.process.stdin.close()  # the worker's loop ends at end of input
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
