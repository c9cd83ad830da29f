"""pytest-deploy-gate: model deployment checks as a pytest suite, and their runtime library."""

from __future__ import annotations

__version__ = "0.1.0.dev0"
