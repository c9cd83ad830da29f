"""Map-reduce over units of data on a Dask cluster (the ``dask`` extra): profiles at scale.

Each task reads one unit of data (a Parquet row group, or a file) where the cluster runs and
returns its part (``profiles.build`` passes ``profile_unit``); parts merge pairwise on the
workers until one is left. This module knows nothing of profiles, so it imports none of
``profiles``: that module imports this one, and the layering stays one-way. Only profiles
travel: the rows stay on the workers, and memory per task is bounded by one chunk of the unit.
No model is ever sent to the cluster (prediction drift is judged later, by the gate's model
worker, on the profile's sample).

``scheduler`` is the address of a running cluster (``tcp://host:8786``); without one, a local
cluster of ``workers`` single-threaded processes is started for the run and closed after it.
The workers need pytest-deploy-gate installed, and the fsspec backend of any URL they read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from deploy_gate.errors import ConfigError, DataError
from deploy_gate.sources import DataUnit, split_row_groups

T = TypeVar("T")

#: Local cluster size when none is given.
DEFAULT_WORKERS = 2


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ConfigError(
            "engine 'dask' needs Dask: pip install 'pytest-deploy-gate[dask]'"
        ) from exc
    return distributed


def map_reduce_on_dask(
    units: Sequence[DataUnit],
    task: Callable[..., T],
    combine: Callable[[T, T], T],
    *,
    broadcast: Mapping[str, object] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    processes: bool = True,
    what: str = "DATA",
) -> T:
    """``combine`` over ``task(unit, what=what, **broadcast)`` of every Parquet row group or
    file of ``units``, computed on a Dask cluster (see the module docstring). ``broadcast``
    values are sent to each worker once, not with every task."""
    distributed = _distributed()
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    parts = split_row_groups(units, what)
    cluster = None
    try:
        if scheduler is None:
            cluster = distributed.LocalCluster(
                n_workers=workers or DEFAULT_WORKERS,
                threads_per_worker=1,
                processes=processes,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            client = distributed.Client(cluster, set_as_default=False)
        else:
            try:
                client = distributed.Client(scheduler, set_as_default=False, timeout="30s")
            except (OSError, TimeoutError) as exc:
                raise DataError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
        with client:
            result: T = _map_reduce(client, parts, task, combine, broadcast or {}, what)
            return result
    finally:
        if cluster is not None:
            cluster.close()


def _map_reduce(
    client: Any,
    parts: Sequence[DataUnit],
    task: Callable[..., Any],
    combine: Callable[[Any, Any], Any],
    broadcast: Mapping[str, object],
    what: str,
) -> Any:
    shared = {name: client.scatter(value, broadcast=True) for name, value in broadcast.items()}
    futures = client.map(task, list(parts), what=what, pure=False, **shared)
    while len(futures) > 1:
        pairs = [
            client.submit(combine, futures[i], futures[i + 1], pure=False)
            for i in range(0, len(futures) - 1, 2)
        ]
        futures = pairs + ([futures[-1]] if len(futures) % 2 else [])
    return futures[0].result()


__all__ = ["DEFAULT_WORKERS", "map_reduce_on_dask"]
