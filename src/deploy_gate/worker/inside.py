"""Builds a project's deployment inside the model worker from the factory the gate sent.

The factory (``deployment_factory``: a class, a function, a closure or a lambda) comes from the
pytest process as a cloudpickle, the one direction in which pickle is safe: the gate trusts its
own project's code, and the worker is where untrusted code runs anyway. Nothing the worker sends
back is ever unpickled.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any


def build(factory_pickle: bytes, path: str) -> Any:
    """``factory(Path(path))`` with the factory unpickled here, in the worker."""
    factory = pickle.loads(factory_pickle)
    return factory(Path(path))


def preload() -> list[str]:
    """Import the libraries most models need, before the model's own deadline starts: the
    model's load is then timed on its own, not on the import of scikit-learn (seconds on a busy
    machine). What is not installed in this interpreter is left for the load to report."""
    import importlib

    loaded = []
    for name in ("numpy", "pandas", "sklearn", "sklearn.pipeline", "joblib"):
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        loaded.append(name)
    return loaded


class InputMutationProbe:
    """errors[input-mutation] next to the model: what ``batch_predict`` and
    ``batch_predict_proba`` changed in the frame each was given. Across the process boundary
    the caller's own frame is a copy that nothing can change, so the comparison has to happen
    here."""

    def __init__(self, deployment: Any) -> None:
        self.deployment = deployment

    def run(self, rows: Any, more: Any = None) -> dict[str, list[str]]:
        from deploy_gate.validation import input_changes

        return input_changes(self.deployment, rows, more)
