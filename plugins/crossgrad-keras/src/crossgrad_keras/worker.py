"""The Keras worker process: answers ``settings``, ``build``, ``forward``, ``train_step`` and
``parameters``.

Started by ``adapter.Worker`` with ``KERAS_BACKEND=torch``. Requests and replies are
pickles on stdin/stdout; everything else the frameworks print goes to stderr, so nothing
can corrupt the reply stream.
"""

from __future__ import annotations

import os
import pickle
import sys
from typing import Any, BinaryIO


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    from crossgrad_keras.model import KerasModel, load_keras

    keras, torch = load_keras()
    model: KerasModel | None = None
    while True:
        try:
            method, args = pickle.load(requests)
        except EOFError:
            return
        try:
            if method == "settings":
                result: Any = settings(keras)
            elif method == "build":
                model = KerasModel(keras, torch, *args)
                result = None
            elif model is None:
                raise RuntimeError(f"{method} called before build")
            else:
                result = getattr(model, method)()
            reply: tuple[str, Any] = ("ok", result)
        except Exception as exc:  # reported to the parent, where it becomes a crashed row
            reply = ("error", f"{type(exc).__name__}: {exc}")
        pickle.dump(reply, replies, protocol=pickle.HIGHEST_PROTOCOL)
        replies.flush()


def settings(keras: Any) -> dict[str, Any]:
    """What this process has in force, read back from Keras and PyTorch as crossgrad reads
    back its built-in frameworks (``Backend.determinism_settings`` reports it)."""
    from harness.run import fingerprint

    return {
        "keras_backend": keras.backend.backend(),
        **fingerprint.framework_threads(),
        **fingerprint.framework_flags(),
    }


def main() -> None:
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints go to stderr
    serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
