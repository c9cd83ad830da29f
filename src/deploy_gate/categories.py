"""The categories of the gate's checks, in the order the checklist shows them.

A module of its own, with nothing to import, because the plugin registers a marker per category
on every pytest run, gate on or off, and must not pay for the report to do so.
"""

from __future__ import annotations

CATEGORIES = ("smoke", "output", "latency", "errors", "version", "baseline", "rollout", "drift")
