"""pytest wiring of the deploy gate (placeholder while the foundation is built)."""

from __future__ import annotations
