"""Latency checks: percentiles per batch size against budgets, a batch against as many single
rows, and the candidate against the baseline."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from deploy_gate.checks import Check
from deploy_gate.checks.baseline import (
    BaselineRun,
    record_baseline,
    served_baseline,
    with_baseline,
)
from deploy_gate.checks.common import (
    records,
)
from deploy_gate.errors import CheckFailure

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    import pandas as pd
    import pytest

    from deploy_gate.artifact import LoadedArtifact, ModelProfile
    from deploy_gate.checks.smoke import Compared
    from deploy_gate.data import GateData
    from deploy_gate.deployment import Deployment
    from deploy_gate.gate import Gate
    from deploy_gate.latency import (
        LatencyComparison,
        LatencyMeasurement,
        LatencySettings,
        LatencyVerdict,
        RoundTimer,
    )
    from deploy_gate.memory import MemoryGrowth
    from deploy_gate.options import Settings

    #: A timed call and the inputs it cycles through.
    Arm = tuple[Callable[[Any], object], Sequence[Any]]


T = TypeVar("T")

PERCENTILES = ("p50", "p95", "p99")
#: Rows (or batches) the latency measurement cycles through.
LATENCY_INPUTS = 200
#: About how long latency[memory-steady]'s second span of calls takes, when there is one.
MORE_SECONDS = 3.0


def _set_budgets(settings: Settings) -> dict[tuple[str, int], float | None]:
    budgets: dict[tuple[str, int], float | None] = {("p99", 1): 50.0}
    for label, batch, value in settings.latency_budget or ():
        budgets[(label, batch)] = value
    return budgets


def derived_budgets(settings: Settings) -> dict[tuple[str, int], float]:
    """The p99 budget of each measured batch size N > 1 that has none of its own: N times the
    single-row p99 budget, what N rows one by one may take (``p99@32`` is 1.6 s by default).

    A loose backstop, not a target: ``latency[batch-vs-single-batch=N]`` is what catches a
    batch slower than its rows one by one. Setting ``p99@N`` (or ``p99@1=none``) replaces it.
    """
    budgets = _set_budgets(settings)
    single = budgets.get(("p99", 1))
    if single is None:
        return {}
    return {
        ("p99", batch): batch * single
        for batch in settings.latency_batch_sizes
        if batch > 1 and ("p99", batch) not in budgets
    }


def latency_budgets(settings: Settings) -> dict[tuple[str, int], float | None]:
    """``{(percentile, batch): budget_ms}``: p99 of single rows is 50 ms unless configured, and a
    batch of N rows gets N times the single-row p99 budget unless configured."""
    return {**_set_budgets(settings), **derived_budgets(settings)}


def checks(profile: ModelProfile | None, settings: Settings) -> list[Check]:
    """``latency[p50-batch=1]`` ... per batch size, ``latency[batch-vs-single-batch=N]`` per
    batch size N > 1, ``latency[p99-vs-baseline-batch=N]`` with a baseline, and last
    ``latency[memory-steady]`` and ``latency[answers-unchanged]`` (which restarts the model
    process, so it comes after the memory of the one measured is read)."""
    budgets = latency_budgets(settings)
    found: list[Check] = []
    for batch in settings.latency_batch_sizes:
        labels = dict.fromkeys([*PERCENTILES, *(p for p, b in budgets if b == batch)])
        found += [
            Check("latency", f"{label}-batch={batch}", _latency_check(label, batch))
            for label in labels
        ]
        if batch > 1:
            found.append(
                Check("latency", f"batch-vs-single-batch={batch}", _batch_vs_single_check(batch))
            )
        if settings.baseline is not None:
            found.append(
                Check(
                    "latency",
                    f"p99-vs-baseline-batch={batch}",
                    _latency_vs_baseline_check(batch),
                    with_baseline,
                )
            )
    found.append(Check("latency", "memory-steady", _memory_steady))
    found.append(Check("latency", "answers-unchanged", _answers_unchanged))
    return found


def _latency_settings(settings: Settings) -> LatencySettings:
    from deploy_gate.latency import LatencySettings

    cap = float(settings.latency_max_seconds)
    return LatencySettings(
        threads=settings.latency_threads,
        disable_gc=settings.latency_gc == "off",
        max_seconds=cap,
        # A comparison of slow models may take longer for its p99 to have the calls it needs;
        # the extension stays well inside the check's timeout (check timeout + the cap).
        max_seconds_for_calls=cap + min(2 * cap, float(settings.check_timeout) / 2),
    )


def _latency_inputs(
    deployment: Deployment, data: GateData, batch: int, names: Sequence[str] | None = None
) -> tuple[Callable[[Any], object], list[Any]]:
    """The call to time and the inputs it cycles through: real rows, one mapping per call for
    single rows, DataFrames of ``batch`` rows otherwise."""
    table = data.table
    rows = table[list(names)] if names is not None else data.features
    if batch == 1:
        return deployment.predict_single, records(rows.iloc[:LATENCY_INPUTS])
    n = len(rows)
    frames = [
        rows.take([(start + i) % n for i in range(batch)])
        for start in range(0, batch * min(LATENCY_INPUTS // 4, max(1, n // batch + 1)), batch)
    ]
    return deployment.batch_predict, frames


def _worker_timer(
    fn: Callable[[Any], object],
    inputs: Sequence[Any],
    settings: Settings,
    *,
    gc: bool | None = None,
) -> RoundTimer | None:
    """A ``RoundTimer`` that times ``fn`` in its model worker, next to the model, when ``fn`` is
    a method of a worker proxy (None otherwise: the calls are timed here). The inputs are sent
    once; each round is one request, and only the durations come back. The garbage collector
    runs during the calls as ``deploy_gate_latency_gc`` says, unless ``gc`` says otherwise."""
    from deploy_gate.worker import remote

    where = remote(fn)
    if where is None or where.method is None:
        return None
    worker, owner, method = where.worker, where.proxy, where.method
    key = f"latency-{where.handle}-{method}-{len(inputs)}-{id(inputs)}"
    worker.put_inputs(key, list(inputs))
    keep_gc = settings.latency_gc != "off" if gc is None else gc

    def timer(calls: int, start: int) -> tuple[np.ndarray, int]:
        timed = worker.time_calls(owner, method, key, calls, start=start, gc=keep_gc)
        return timed.durations_ns, timed.switches

    return timer


def _worker_timers(
    settings: Settings, first: Arm, second: Arm
) -> tuple[RoundTimer, RoundTimer] | None:
    """One worker timer per ``(fn, inputs)`` arm, or None unless both arms run in a worker:
    arms compared with each other are timed the same way, never one here and one there."""
    one, other = _worker_timer(*first, settings), _worker_timer(*second, settings)
    return None if one is None or other is None else (one, other)


@contextlib.contextmanager
def _one_cpu(*objs: object) -> Iterator[None]:
    """While two model workers are compared, run both on the same CPU.

    Interleaving their calls cancels load that changes over time, but not load that sits on
    one core: a busy process (a CPU hog, another job) sharing the candidate's core and not the
    baseline's made a candidate 1.15x the baseline measure 1.6x. On one CPU, and never running
    at the same time, the two share whatever that core carries. The workers' own affinity comes
    back afterwards. Nothing changes where the OS has no ``sched_setaffinity``.
    """
    from deploy_gate.worker import remote

    pids = [where.worker.pid for where in map(remote, objs) if where is not None]
    tids = [tid for pid in pids if pid is not None for tid in _threads(pid)]
    if len(pids) < 2 or not tids or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before: dict[int, set[int]] = {}
    cpu = _comparison_cpu()
    for tid in tids:
        try:
            before[tid] = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, {cpu})
        except OSError:  # a thread that ended meanwhile
            continue
    try:
        yield
    finally:
        for tid, cpus in before.items():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, cpus)


def _comparison_cpu() -> int:
    """The CPU a comparison's two workers share: any one would be fair to both arms, but not
    the same one for every gate on the machine. A pytest-xdist worker takes the CPU of its
    number (gw0, gw1, ... spread over the CPUs this process may use); a lone gate takes the one
    the OS is running it on now, so two gates started side by side, as two CI jobs on one runner
    are, are not both sent to the first CPU."""
    from deploy_gate.worker import one_cpu

    cpus = sorted(os.sched_getaffinity(0))
    number = os.environ.get("PYTEST_XDIST_WORKER", "")[2:]
    placed = one_cpu(int(number)) if number.isdigit() else None
    if placed is not None:
        return placed[0]
    try:  # field 39 of /proc/self/stat: the CPU this process last ran on (proc(5))
        with open("/proc/self/stat", "rb") as stat:
            here = int(stat.read().rpartition(b")")[2].split()[36])
    except (OSError, ValueError, IndexError):
        return cpus[0]
    return here if here in cpus else cpus[0]


def _threads(pid: int) -> list[int]:
    """The thread ids of a process (its own pid alone where /proc does not list them)."""
    try:
        return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return [pid]


def _budgets_of(settings: Settings, batch: int) -> dict[str, float | None]:
    budgets = latency_budgets(settings)
    labels = dict.fromkeys([*PERCENTILES, *(p for p, b in budgets if b == batch)])
    return {label: budgets.get((label, batch)) for label in labels}


def latency_measurement(
    gate: Gate,
    artifact: LoadedArtifact,
    deployment: Deployment,
    data: GateData,
    batch: int,
    baseline: BaselineRun | None = None,
) -> LatencyMeasurement[Any]:
    """One measurement per artifact and batch size; it feeds all percentile items of the size.

    With a ``baseline`` whose comparison at this batch size is still to be measured, both come
    from one run of calls (``_measured_together``); alone otherwise, or when the baseline fails.
    """
    from deploy_gate.latency import LatencyMeasurement

    key = (artifact.path.resolve(), batch)
    _before_measuring(gate, artifact, deployment, data)

    def compute() -> LatencyMeasurement[Any]:
        fn, inputs = _latency_inputs(deployment, data, batch)
        return LatencyMeasurement(
            fn,
            inputs,
            _budgets_of(gate.settings, batch),
            batch_size=batch,
            settings=_latency_settings(gate.settings),
            timer=_worker_timer(fn, inputs, gate.settings),
        )

    if (
        baseline is not None
        and key not in gate.latency
        and _comparison_key(key) not in gate.latency_verdicts
    ):
        with contextlib.suppress(_BaselineFailed):  # measured alone below
            measurement, verdict = _measured_together(gate, deployment, baseline, data, batch)
            gate.latency_verdicts.get(_comparison_key(key), lambda: verdict)
            return gate.latency.get(key, lambda: measurement)
    return gate.latency.get(key, compute)


def _before_measuring(
    gate: Gate, artifact: LoadedArtifact, deployment: Deployment, data: GateData
) -> None:
    """Before the first latency measurement of an artifact in this process: the model's
    answers to the data, for ``latency[answers-unchanged]`` (usually observed already, by the
    output checks), then its process's memory, for ``latency[memory-steady]``. Once each."""
    from deploy_gate.checks.output import observe

    # A model that cannot answer the data fails the checks that ask it; the measurement then
    # says what it says.
    with contextlib.suppress(Exception):
        observe(deployment, data)

    gate.memory_before.get(artifact.path.resolve(), lambda: _resident(deployment))


def _resident(deployment: Deployment) -> tuple[int, int] | None:
    """The process the model runs in (its pid) and its resident memory after a full garbage
    collection in it, or None where that cannot be read: garbage in reference cycles, left for
    later by a collector that runs now and then (or not at all in the timed rounds of
    ``deploy_gate_latency_gc=off``), is not counted as kept."""
    import gc

    from deploy_gate.memory import resident_bytes
    from deploy_gate.worker import remote

    pid = _model_pid(deployment)
    if pid is None:
        return None
    where = remote(deployment)
    if where is None:
        gc.collect()
    else:
        where.worker.collect_garbage()
    size = resident_bytes(pid)
    return None if size is None else (pid, size)


def _model_pid(deployment: Deployment) -> int | None:
    """The process the model runs in: its model worker's (None when that is not running), or
    this one under ``--deploy-gate-isolation none``."""
    from deploy_gate.worker import remote

    where = remote(deployment)
    return os.getpid() if where is None else where.worker.pid


def _comparison_key(key: tuple[Path, int]) -> tuple[str, Path, int]:
    return ("vs-baseline", *key)


class _BaselineFailed(Exception):
    """The baseline's side of a measurement shared with the candidate failed: the candidate is
    measured alone, and its comparison item measures (and reports) the baseline's failure."""


def _baseline_side(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn``, with any failure of it (the model's error, its worker dying or timing out) raised
    as ``_BaselineFailed`` (a check's own deadline excepted, which ends the check)."""
    from deploy_gate.timeouts import CheckTimeout
    from deploy_gate.worker import WorkerError

    def call(*args: Any) -> T:
        try:
            return fn(*args)
        except CheckTimeout:
            raise
        except (Exception, WorkerError) as exc:
            raise _BaselineFailed(str(exc)) from exc

    return call


def _paired_arms(
    gate: Gate, deployment: Deployment, baseline: BaselineRun, data: GateData, batch: int
) -> tuple[Callable[[Any], object], Callable[[Any], object], list[Any], tuple[Any, Any] | None]:
    """The candidate's and the baseline's call on pairs of the same rows, the pairs, and a
    worker timer for each arm (None when the calls are timed here)."""
    cand_fn, cand_inputs = _latency_inputs(deployment, data, batch)
    base_fn, base_inputs = _latency_inputs(
        baseline.deployment,
        data,
        batch,
        baseline.feature_names or tuple(data.features.columns),
    )
    pairs = list(zip(cand_inputs, base_inputs, strict=True))
    timers = _worker_timers(gate.settings, (cand_fn, cand_inputs), (base_fn, base_inputs))
    return (lambda pair: cand_fn(pair[0])), (lambda pair: base_fn(pair[1])), pairs, timers


def _comparison(
    settings: Settings,
    candidate: Callable[[Any], object],
    base: Callable[[Any], object],
    pairs: list[Any],
    batch: int,
    timers: tuple[Any, Any] | None,
    measurement: LatencyMeasurement[Any] | None = None,
) -> LatencyComparison[Any]:
    """The comparison of the candidate with the baseline at ``batch``, by the run's settings."""
    from deploy_gate.latency import LatencyComparison

    return LatencyComparison(
        candidate,
        base,
        pairs,
        max_ratio=settings.latency_max_ratio,
        noise_floor_ms=settings.latency_noise_floor,
        batch_size=batch,
        settings=_latency_settings(settings),
        timers=timers,
        candidate_measurement=measurement,
    )


def _measured_together(
    gate: Gate, deployment: Deployment, baseline: BaselineRun, data: GateData, batch: int
) -> tuple[LatencyMeasurement[Any], LatencyVerdict]:
    """The candidate's budgets and its comparison with the baseline, judged on one run of
    calls: the candidate's calls of the comparison are its measurement, which saves measuring
    it a second time alone (about a third of a gate run's latency time). Raises
    ``_BaselineFailed`` when the baseline's side fails."""
    from deploy_gate.latency import LatencyMeasurement

    settings = gate.settings
    candidate, base, pairs, timers = _baseline_side(_paired_arms)(
        gate, deployment, baseline, data, batch
    )
    if timers is None:
        base = _baseline_side(base)
    else:
        timers = (timers[0], _baseline_side(timers[1]))
    measurement: LatencyMeasurement[Any] = LatencyMeasurement(
        candidate,
        pairs,
        _budgets_of(settings, batch),
        batch_size=batch,
        settings=_latency_settings(settings),
        timer=timers[0] if timers is not None else None,
    )
    comparison = _comparison(settings, candidate, base, pairs, batch, timers, measurement)
    with _one_cpu(deployment, baseline.deployment):
        verdict = comparison.verdict()
    return measurement, verdict


def _histogram(durations_ns: Sequence[Any]) -> str:
    import numpy as np

    values = np.concatenate([np.asarray(d, dtype=float) for d in durations_ns]) / 1e6
    if values.size == 0:
        return json.dumps({"edges_ms": [], "counts": []})
    high = float(np.quantile(values, 0.999))
    counts, edges = np.histogram(np.clip(values, None, high), bins=30)
    return json.dumps(
        {"edges_ms": [round(float(e), 6) for e in edges], "counts": [int(c) for c in counts]}
    )


def _warn(message: str) -> None:
    """Show ``message`` as a ``LatencyInconclusiveWarning`` in pytest's warnings summary.

    Under a project's ``filterwarnings = error`` an ordinary warning would turn the passed item
    into a failure, the very block a warning is meant to avoid: this one is always shown and
    never raised.
    """
    import warnings

    from deploy_gate.errors import LatencyInconclusiveWarning

    with warnings.catch_warnings():
        warnings.simplefilter("always", LatencyInconclusiveWarning)
        warnings.warn(LatencyInconclusiveWarning(message), stacklevel=3)


def judge_latency(
    verdict: LatencyVerdict,
    settings: Settings,
    record: Callable[[str, object], None],
    *,
    undecided_blocks: bool = True,
) -> None:
    """Record the verdict's figures, then fail or warn. ``undecided_blocks=False`` (relative
    checks, derived budgets) makes an undecided verdict a warning whatever
    ``deploy_gate_latency_inconclusive`` says."""
    from deploy_gate.latency import LatencyStatus

    record("percentile", verdict.percentile)
    record("batch", verdict.batch_size)
    if verdict.percentile != "batch-vs-single":  # a ratio, not a duration: see figures
        record("value", verdict.value)
    for name, value in verdict.figures.items():
        record(name, value)
    if verdict.status == LatencyStatus.FAILED:
        raise CheckFailure(verdict.message)
    if verdict.status == LatencyStatus.INCONCLUSIVE:
        if undecided_blocks and settings.latency_inconclusive == "fail":
            raise CheckFailure(verdict.message)
        if undecided_blocks:
            record("inconclusive_warned", True)
        record("warning", verdict.message)
        _warn(verdict.message)


def _selected(request: pytest.FixtureRequest, name: str) -> bool:
    """Whether the item ``name`` of the same artifact as ``request``'s item runs in this
    session (not deselected by ``-k``, ``-m`` or a hook)."""
    parent = request.node.nodeid.rpartition("::")[0]
    wanted = f"{parent}::{name}"
    return any(item.nodeid == wanted for item in request.session.items)


def _baseline_for(gate: Gate, factory: Callable[[Path], Deployment]) -> BaselineRun | None:
    """The baseline, served, for measuring latency together with it; None without one or when
    it does not load (its own items report that)."""
    from deploy_gate.timeouts import CheckTimeout
    from deploy_gate.worker import WorkerError

    path = gate.settings.baseline
    if path is None:
        return None
    loaded = gate.artifact_or_error(path)
    if isinstance(loaded, BaseException):
        return None
    try:
        return served_baseline(gate, factory, loaded)
    except CheckTimeout:
        raise
    except (Exception, WorkerError):
        return None


def _measurement_of_item(
    request: pytest.FixtureRequest,
    gate: Gate,
    artifact: LoadedArtifact,
    deployment: Deployment,
    data: GateData,
    factory: Callable[[Path], Deployment],
    batch: int,
) -> LatencyMeasurement[Any]:
    """The measurement at ``batch`` for a latency item: taken beside the baseline's when the
    comparison with it is selected too (``latency_measurement``)."""
    baseline = None
    if _selected(request, f"latency[p99-vs-baseline-batch={batch}]"):
        baseline = _baseline_for(gate, factory)
    return latency_measurement(gate, artifact, deployment, data, batch, baseline)


def _latency_check(label: str, batch: int) -> Callable[..., None]:
    def latency(
        request: pytest.FixtureRequest,
        deploy_gate: Gate,
        model_artifact: LoadedArtifact,
        deployment: Deployment,
        deploy_gate_data: GateData,
        deploy_gate_factory: Callable[[Path], Deployment],
        deploy_gate_property: Callable[[str, object], None],
    ) -> None:
        measurement = _measurement_of_item(
            request,
            deploy_gate,
            model_artifact,
            deployment,
            deploy_gate_data,
            deploy_gate_factory,
            batch,
        )
        verdict = measurement.verdict(label)
        # Before judging, so a failed check keeps its histogram and rounds for the reports.
        deploy_gate_property("histogram", _histogram(measurement.durations_ns()))
        rounds = [round(float(x), 6) for x in measurement.round_values_ms(label)]
        deploy_gate_property("round_values_ms", json.dumps(rounds))
        derived = (label, batch) in derived_budgets(deploy_gate.settings)
        if derived:
            deploy_gate_property("budget_source", f"derived: {batch} x the p99@1 budget")
        # A derived budget was never chosen: undecided against it is a warning, not a block.
        judge_latency(
            verdict, deploy_gate.settings, deploy_gate_property, undecided_blocks=not derived
        )

    latency.__doc__ = f"{label} latency of batches of {batch} is within its budget (or measured)."
    return latency


def _answers_unchanged(
    request: pytest.FixtureRequest,
    deploy_gate: Gate,
    model_artifact: LoadedArtifact,
    deployment: Deployment,
    deploy_gate_data: GateData,
    deploy_gate_factory: Callable[[Path], Deployment],
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """After the latency measurements, thousands of calls, the model answers the data rows as
    it did before them, and so does the model loaded again in a new model process: outputs and
    probabilities, within the tolerance of their dtype.

    A model that changes as it serves (state kept between calls: online updates, a cache that
    corrupts, a counter) passes every check made in its first calls and answers production
    traffic otherwise: a classifier that flipped its labels after 600 calls was approved.
    Each serving replica, and each restart, is a process of its own: a model whose answers
    depend on Python's hash seed, drawn afresh for every process (``hash()`` of text to bucket
    a feature, the order of a set of strings), or on randomness at load, answers the same rows
    otherwise in each. Under ``--deploy-gate-isolation none`` there is no model process to
    restart; the item's ``new_process`` property says so.
    """
    from deploy_gate.checks.output import observe
    from deploy_gate.checks.smoke import answers_again, require_unchanged

    first = observe(deployment, deploy_gate_data)
    measured = _measurements(
        request, deploy_gate, model_artifact, deployment, deploy_gate_data, deploy_gate_factory
    )
    calls = _calls(measured.values())
    deploy_gate_property("calls_between", calls)
    if _selected(request, "latency[memory-steady]"):
        # Read the memory of this model process before the restart below replaces it.
        with contextlib.suppress(Exception):
            _memory_growth(
                request,
                deploy_gate,
                model_artifact,
                deployment,
                deploy_gate_data,
                deploy_gate_factory,
            )
    rows = deploy_gate_data.features
    compared = answers_again(deployment, rows, first.predictions, first.proba)
    try:
        require_unchanged(
            compared,
            f"changed after the latency measurements ({calls} timed calls)",
            "before, after them",
            ": a model that changes as it serves (state kept between calls: online updates, a "
            "cache, a counter) answers production traffic otherwise than the gate's first calls",
        )
    except CheckFailure:
        # A model that answers each call otherwise changed with no help from use.
        require_unchanged(
            _asked_again(deployment, rows, compared),
            "are not reproducible: two calls after the latency measurements differ",
            "then",
            " (see smoke[deterministic]), so a change with use cannot be judged",
        )
        raise
    _same_in_a_new_process(deploy_gate, deployment, rows, compared, deploy_gate_property)


def _measurements(
    request: pytest.FixtureRequest,
    gate: Gate,
    artifact: LoadedArtifact,
    deployment: Deployment,
    data: GateData,
    factory: Callable[[Path], Deployment],
) -> dict[int, LatencyMeasurement[Any]]:
    """The measurement of every batch size, by batch size (taken now if still to be taken)."""
    return {
        batch: _measurement_of_item(request, gate, artifact, deployment, data, factory, batch)
        for batch in gate.settings.latency_batch_sizes
    }


def _calls(measurements: Iterable[LatencyMeasurement[Any]]) -> int:
    return sum(len(d) for m in measurements for d in m.durations_ns())


def _memory_steady(
    request: pytest.FixtureRequest,
    deploy_gate: Gate,
    model_artifact: LoadedArtifact,
    deployment: Deployment,
    deploy_gate_data: GateData,
    deploy_gate_factory: Callable[[Path], Deployment],
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """Over the latency measurements (thousands of calls), the model process does not keep
    growing: its resident memory grows by less than 64 MiB, or, when it grew by more, a second
    span of calls does not go on growing at a quarter of the first span's rate or more (a
    bounded cache fills once; a leak goes on). See ``deploy_gate.memory``.

    A model that keeps something of every call passes every other check and runs its serving
    process out of memory: one that kept 1 MiB per call grew by 1.6 GiB during a gate run, under
    the memory limit of its process, and was approved. Linux only (``/proc``); skipped with the
    reason elsewhere.
    """
    import pytest

    from deploy_gate.memory import format_mib

    growth = _memory_growth(
        request, deploy_gate, model_artifact, deployment, deploy_gate_data, deploy_gate_factory
    )
    if isinstance(growth, str):
        pytest.skip(f"memory not measured: {growth}")
    deploy_gate_property("memory_before", format_mib(growth.before))
    deploy_gate_property("memory_after", format_mib(growth.after))
    deploy_gate_property("calls_between", growth.calls)
    if growth.suspect:
        deploy_gate_property("memory_more_calls", growth.more_calls)
        deploy_gate_property("memory_more_growth", format_mib(growth.more_growth))
    if growth.leaking:
        raise CheckFailure(growth.message())


def _memory_growth(
    request: pytest.FixtureRequest,
    gate: Gate,
    artifact: LoadedArtifact,
    deployment: Deployment,
    data: GateData,
    factory: Callable[[Path], Deployment],
) -> MemoryGrowth | str:
    """The model process's memory before the latency measurements and after them, with a
    second span of calls when it grew past ``SUSPECT_GROWTH``; or why it cannot be read."""
    path = artifact.path.resolve()

    def compute() -> MemoryGrowth | str:
        import numpy as np

        from deploy_gate.memory import MemoryGrowth

        measured = _measurements(request, gate, artifact, deployment, data, factory)
        before = gate.memory_before.get(path, lambda: None)
        if before is None:
            return "the resident memory of the model process cannot be read here (no /proc)"
        after = _resident(deployment)
        if after is None:
            return "the model process's memory could not be read after the measurements"
        if after[0] != before[0]:
            return "the model process was replaced during the latency measurements"
        growth = MemoryGrowth(before[1], after[1], _calls(measured.values()))
        if not growth.suspect:
            return growth
        # Look again: as many calls as fit in about MORE_SECONDS on the largest batch size,
        # its inputs sent (and kept by the model process) before the memory is read, with the
        # garbage collector on as in production (under deploy_gate_latency_gc=off the timed
        # rounds leave cyclic garbage for later, which is not a leak).
        batch = max(measured)
        fn, inputs = _latency_inputs(deployment, data, batch)
        timer = _worker_timer(fn, inputs, gate.settings, gc=True)
        typical_ns = float(np.median(np.concatenate(measured[batch].durations_ns())))
        more = growth.calls_to_confirm(int(MORE_SECONDS * 1e9 / max(typical_ns, 1.0)))
        start = _resident(deployment)
        if start is None:
            return "the model process's memory could not be read after the measurements"
        if timer is not None:
            timer(more, 0)
        else:
            for i in range(more):
                fn(inputs[i % len(inputs)])
        end = _resident(deployment)
        if end is None or not end[0] == start[0] == before[0]:
            return "the model process was replaced during the second span of calls"
        return MemoryGrowth(before[1], after[1], growth.calls, more, end[1] - start[1])

    return gate.memory_growth.get(path, compute)


def _asked_again(
    deployment: Deployment, rows: pd.DataFrame, compared: Sequence[Compared]
) -> list[Compared]:
    """The later answers of ``compared`` (outputs, and probabilities when compared) beside the
    same rows asked once more."""
    from deploy_gate.checks.smoke import answers_again

    proba = compared[1][2] if len(compared) > 1 else None
    return answers_again(deployment, rows, compared[0][2], proba)


def _same_in_a_new_process(
    gate: Gate,
    deployment: Deployment,
    rows: pd.DataFrame,
    compared: Sequence[Compared],
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """Restart the deployment's model process and ask ``rows`` again, beside the answers of
    ``compared``: see ``_answers_unchanged``."""
    import os

    from deploy_gate.checks.smoke import require_unchanged
    from deploy_gate.worker import remote

    where = remote(deployment)
    if where is None:
        deploy_gate_property(
            "new_process", "not compared: the model is not in a model process the gate starts"
        )
        return
    worker = where.worker
    env = worker.config.env
    fixed = (env if env is not None else os.environ).get("PYTHONHASHSEED")
    # A new process's start-up and load, under the limits the first ones had.
    allowed = worker.config.start_timeout + float(gate.settings.check_timeout)
    worker.restart("latency[answers-unchanged] (the model loaded again)", allowed)
    seed = f"PYTHONHASHSEED={fixed} kept" if fixed else "hash seed drawn afresh"
    deploy_gate_property("new_process", f"compared ({seed})")
    require_unchanged(
        _asked_again(deployment, rows, compared),
        f"changed when the model was loaded again in a new process ({seed})",
        "before, in the new process",
        ": every serving replica and every restart would answer otherwise; a model that "
        "depends on Python's per-process hash seed (hash() of text, the order of a set) or on "
        "randomness at load?",
    )


def _latency_vs_baseline_check(batch: int) -> Callable[..., None]:
    def latency_vs_baseline(
        request: pytest.FixtureRequest,
        deploy_gate: Gate,
        model_artifact: LoadedArtifact,
        deployment: Deployment,
        deploy_gate_baseline: BaselineRun,
        deploy_gate_data: GateData,
        deploy_gate_property: Callable[[str, object], None],
    ) -> None:
        budgeted = _budgets_of(deploy_gate.settings, batch)
        if any(_selected(request, f"latency[{label}-batch={batch}]") for label in budgeted):
            # Run before its budget items (-p randomly, a hook's order): measure both now.
            latency_measurement(
                deploy_gate,
                model_artifact,
                deployment,
                deploy_gate_data,
                batch,
                deploy_gate_baseline,
            )

        def compute() -> LatencyVerdict:
            _before_measuring(deploy_gate, model_artifact, deployment, deploy_gate_data)
            settings = deploy_gate.settings
            candidate, base, pairs, timers = _paired_arms(
                deploy_gate, deployment, deploy_gate_baseline, deploy_gate_data, batch
            )
            comparison = _comparison(settings, candidate, base, pairs, batch, timers)
            with _one_cpu(deployment, deploy_gate_baseline.deployment):
                return comparison.verdict()

        key = (model_artifact.path.resolve(), batch)
        verdict = deploy_gate.latency_verdicts.get(_comparison_key(key), compute)
        record_baseline(deploy_gate_baseline, deploy_gate_property)
        # Blocks only a confident regression; undecided is a warning.
        judge_latency(verdict, deploy_gate.settings, deploy_gate_property, undecided_blocks=False)

    latency_vs_baseline.__doc__ = (
        f"Batches of {batch} are not confidently more than deploy_gate_latency_max_ratio times "
        "slower than the baseline's, timed interleaved in the same run."
    )
    return latency_vs_baseline


def _batch_vs_single_check(batch: int) -> Callable[..., None]:
    def batch_vs_single(
        deploy_gate: Gate,
        model_artifact: LoadedArtifact,
        deployment: Deployment,
        deploy_gate_data: GateData,
        deploy_gate_property: Callable[[str, object], None],
    ) -> None:
        from deploy_gate.latency import BatchVersusSingle

        def compute() -> LatencyVerdict:
            _before_measuring(deploy_gate, model_artifact, deployment, deploy_gate_data)
            settings = deploy_gate.settings
            batch_fn, frames = _latency_inputs(deployment, deploy_gate_data, batch)
            # At most 1,600 rows one by one (50 batches of 32), in the order of their batches.
            frames = frames[: max(1, 8 * LATENCY_INPUTS // batch)]
            rows = [row for frame in frames for row in records(frame)]
            single_fn = deployment.predict_single
            timers = _worker_timers(settings, (batch_fn, frames), (single_fn, rows))
            return BatchVersusSingle(
                batch_fn,
                single_fn,
                frames,
                rows,
                batch_size=batch,
                max_ratio=settings.latency_batch_slack,
                noise_floor_ms=settings.latency_noise_floor,
                settings=_latency_settings(settings),
                timers=timers,
            ).verdict()

        verdict = deploy_gate.latency_verdicts.get(
            ("batch-vs-single", model_artifact.path.resolve(), batch), compute
        )
        deploy_gate_property("value_ms", verdict.figures["batch_ms"])
        judge_latency(verdict, deploy_gate.settings, deploy_gate_property, undecided_blocks=False)

    batch_vs_single.__doc__ = (
        f"A batch of {batch} rows is not confidently slower than deploy_gate_latency_batch_slack "
        f"times {batch} single-row calls on the same rows."
    )
    return batch_vs_single
