"""The private internals of pytest and pytest-xdist the plugin leans on, in one place.

Each function here is covered by a test of its own (tests/test_pytest_compat.py), so an upgrade
of pytest or xdist that changes one of them fails one clear test instead of a gate run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

#: The one xdist work unit that holds every latency item.
GROUP_SCOPE = "deploy-gate-latency"


def parse_stable_id(item: pytest.Item) -> None:
    """Give ``item`` the structured id pytest would parse back from its own nodeid string.

    pytest 9.2 keys ``--lf``/``--ff`` by a structured ``NodeId`` (path, names, ``[params]``)
    that it re-parses from the cache's strings. A ``pytest.Function`` built with a bracketed
    name and no callspec (every gate item: ``model.joblib::smoke[load]``) gets the whole name
    as one segment, so the re-parsed ``params="load"`` never equals it and ``--lf`` reruns
    every check. Our items are parametrized checks in all but pytest's bookkeeping, so their id
    takes the parametrized shape. On pytest < 9.2, where ids are plain strings, nothing changes.
    """
    try:
        # pytest >= 9.2 only; the ignore covers type-checking against older pytest.
        from _pytest.nodeid import NodeId  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return
    current = getattr(item, "_id", None)
    if isinstance(current, NodeId):
        parsed = NodeId.parse(str(current))
        if parsed != current:
            item._id = parsed  # type: ignore[attr-defined, unused-ignore]


def make_scheduler(config: pytest.Config, log: Any, in_group: Callable[[str], bool]) -> Any:
    """An xdist scheduler that schedules like ``--dist load`` but keeps every test whose nodeid
    ``in_group`` accepts on one worker.

    xdist's own ``loadgroup`` finds groups through a suffix it writes into ``item._nodeid`` on
    the worker; pytest 9.2 derives ``nodeid`` from the structured id and ignores that write, so
    grouping silently stops (pytest-xdist issue 1386). Deciding the group here, on the
    controller, from the nodeid itself needs no such side channel. ``_split_scope`` is the
    override point xdist's own loadfile and loadgroup schedulers use.
    """
    from xdist.scheduler import LoadScopeScheduling

    class GateScheduling(LoadScopeScheduling):  # type: ignore[misc]
        """One work unit per test, except the group, which is one unit on one worker."""

        def _split_scope(self, nodeid: str) -> str:
            return GROUP_SCOPE if in_group(nodeid) else nodeid

        def _assign_work_unit(self, node: Any) -> None:
            # A worker that replaces a crashed one is rescheduled before its collection has
            # arrived; xdist's loadscope then raises KeyError (an INTERNALERROR). It gets work
            # once its collection is registered.
            if node not in self.registered_collections:
                return
            super()._assign_work_unit(node)

        def remove_node(self, node: Any) -> str | None:
            # loadscope puts a crashed worker's unit back in the queue with the test that
            # crashed it still pending, so that test runs (and crashes a worker) again and
            # again. xdist has already reported it as failed: like --dist load, run it once.
            crashitem: str | None = super().remove_node(node)
            if crashitem is not None:
                for scope, unit in list(self.workqueue.items()):
                    if crashitem in unit:
                        unit[crashitem] = True
                    if all(unit.values()):
                        del self.workqueue[scope]
            return crashitem

    return GateScheduling(config, log)
