"""What can go wrong between the gate and its model worker, and the model's own errors rebuilt.

``WorkerError`` and its subclasses say that the worker could not serve a request: it died, hung,
or answered something that is not a valid frame. Like pytest's own outcome exceptions
(``pytest.fail`` raises a ``BaseException`` subclass), they derive from ``BaseException`` and not
from ``Exception``, so neither a check's ``except Exception`` around a prediction nor a user's
wrapper can swallow a dead or hung worker and carry on as if the model had raised a clear error.
They are never ``ValueError`` or ``KeyError``.

``RemoteError`` is the other side: an exception the model raised in the worker whose type the gate
does not rebuild as itself (see ``codec.rebuild_exception``). It is an ordinary ``Exception``.
"""

from __future__ import annotations


class WorkerError(BaseException):
    """The model worker could not serve a request (not an error the model raised)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class WorkerDied(WorkerError):
    """The model process exited or was killed by a signal while serving a request."""


class WorkerTimeout(WorkerError):
    """A request, a check or the artifact's time budget ran out; the model process was killed."""


class WorkerProtocolError(WorkerError):
    """The model process answered something that is not a valid data-only frame."""


class RemoteError(Exception):
    """An exception raised in the model process, of a type the gate does not rebuild as itself.

    ``type(err).__name__`` is the original type's name, ``str(err)`` its (sanitised) message and
    ``remote_type`` its qualified name. When the original was a subclass of a common builtin
    (``ValueError``, ``KeyError``, ``TypeError``, ...) or of a ``deploy_gate.errors`` class, the
    rebuilt exception is an instance of that class too, so ``except ValueError`` keeps working.
    """

    remote_type: str = ""
    remote_traceback: str = ""

    def __init__(self, message: str = "", *, remote_type: str = "") -> None:
        super().__init__(message)
        self.remote_type = remote_type

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


__all__ = ["RemoteError", "WorkerDied", "WorkerError", "WorkerProtocolError", "WorkerTimeout"]
