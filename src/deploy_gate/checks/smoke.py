"""Smoke checks: the artifact loads and predicts one row and a batch, validly and quickly."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from deploy_gate import validation as v
from deploy_gate.checks import Check, check, declared
from deploy_gate.checks.common import (
    SAMPLE_ROWS,
    first_row,
    has_proba,
    output_tolerance,
    predict,
    proba_tolerance,
    records,
    require_one_per_row,
    same_outputs,
    sample,
    show,
)
from deploy_gate.errors import CheckFailure, describe_exc

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from deploy_gate.artifact import LoadedArtifact, ModelProfile
    from deploy_gate.checks.common import Tolerance
    from deploy_gate.data import GateData
    from deploy_gate.deployment import Deployment
    from deploy_gate.gate import Gate
    from deploy_gate.options import Settings


@check("smoke", "load")
def smoke_load(
    deploy_gate: Gate,
    deploy_gate_artifact_path: Path,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """The artifact loads (and is a model with predict())."""
    artifact = deploy_gate.artifact_or_error(deploy_gate_artifact_path)
    # What kept the gate out of the model's reach, stated even when the load failed.
    protections, warnings = deploy_gate.protections(deploy_gate_artifact_path)
    if protections:
        deploy_gate_property("isolation", ", ".join(protections))
    if warnings:
        deploy_gate_property("isolation_warnings", "; ".join(warnings))
    if isinstance(artifact, BaseException):
        reason = describe_exc(artifact)
        if deploy_gate_artifact_path.name not in reason:
            reason = f"{deploy_gate_artifact_path} failed to load: {reason}"
        # The first line stands alone; what follows (a dead model process's last output, such
        # as the ModuleNotFoundError of a serving interpreter) is the detail.
        detail = str(artifact).strip().splitlines()[1:]
        raise CheckFailure("\n".join([reason, *detail]))
    deploy_gate_property("loader", artifact.loader)
    deploy_gate_property("model_type", artifact.profile.model_type)
    deploy_gate_property("task", artifact.profile.task)
    for name, version in artifact.libraries.items():
        deploy_gate_property(f"loaded_with.{name}", version)
    if artifact.load_warnings:
        deploy_gate_property("load_warnings", "; ".join(artifact.load_warnings))
    mismatched = [w for w in artifact.load_warnings if "InconsistentVersion" in w]
    if mismatched and deploy_gate.settings.strict_versions:
        raise CheckFailure(
            f"{deploy_gate_artifact_path.name} was saved with other library versions than the "
            f"model process loaded it with (deploy_gate_strict_versions): {mismatched[0]}"
        )


@check("smoke", "inference-single")
def smoke_inference_single(deployment: Deployment, deploy_gate_data: GateData) -> None:
    """predict_single on one row returns an output."""
    output = deployment.predict_single(first_row(deploy_gate_data))
    if output is None:
        raise CheckFailure("predict_single returned None for row 0")


@check("smoke", "output-valid")
def smoke_output_valid(
    deployment: Deployment, deploy_gate_data: GateData, model_artifact: LoadedArtifact
) -> None:
    """The single-row output is a valid prediction (finite, known label, valid probabilities)."""
    rows = sample(deploy_gate_data, 1)
    preds = predict(deployment, rows)
    proba = v.as_array(deployment.batch_predict_proba(rows)) if has_proba(deployment) else None
    classes = getattr(deployment, "classes", None) or model_artifact.profile.classes
    problems = v.find_problems(preds, n_rows=1, proba=proba, classes=classes)
    if problems:
        raise CheckFailure(
            "invalid output for row 0: "
            + "; ".join(map(str, problems))
            + f"\n  output: {show(preds)}"
        )


#: Rows of the larger batch smoke[batch] sends when the data holds fewer: the data repeated.
#: A model that silently cuts batches above some size (a serving max-batch setting of 5,000
#: rows) answered every batch of a 2,500-row holdout in full and was approved.
LARGE_BATCH_ROWS = 10_000
#: Share of deploy_gate_check_timeout the larger batch may be expected to take; a model too
#: slow for it within the check's deadline is not sent it (the item records why).
LARGE_BATCH_SHARE_OF_DEADLINE = 0.25


@check("smoke", "batch")
def smoke_batch(
    deployment: Deployment,
    deploy_gate_data: GateData,
    deploy_gate_settings: Settings,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """batch_predict returns one output per row, on the data and on a batch of 10,000 rows.

    A data of fewer rows is repeated up to ``LARGE_BATCH_ROWS``, and the outputs must equal
    the data's own, row by row (within the tolerance of their dtype): a batch cut short, or
    chunks joined wrongly past the data's size, fail. A model may refuse so large a batch with
    an error (a serving limit on batch size); that is recorded on the item, not failed.
    """
    rows = deploy_gate_data.features
    n = len(rows)
    started = time.perf_counter()
    preds = predict(deployment, rows)
    took = time.perf_counter() - started
    problem = v.length_problem(preds, n)
    if problem is not None:
        raise CheckFailure(f"batch_predict on {n} rows: {problem}")
    if not 0 < n < LARGE_BATCH_ROWS or preds.ndim == 0:
        return
    expected = took * LARGE_BATCH_ROWS / n
    if expected > LARGE_BATCH_SHARE_OF_DEADLINE * deploy_gate_settings.check_timeout:
        deploy_gate_property(
            "large_batch",
            f"not sent: {n} rows took {took:.1f} s, so {LARGE_BATCH_ROWS} would take about "
            f"{expected:.0f} s of the check's {deploy_gate_settings.check_timeout:g} s",
        )
        return
    import numpy as np

    tiled = np.resize(np.arange(n), LARGE_BATCH_ROWS)
    try:
        large = predict(deployment, rows.iloc[tiled].reset_index(drop=True))
    except CheckFailure:
        raise
    except Exception as exc:  # a limit on batch size, stated: a refusal is no wrong answer
        deploy_gate_property("large_batch", f"refused: {describe_exc(exc)}")
        return
    deploy_gate_property("large_batch", f"{LARGE_BATCH_ROWS} rows (the data repeated)")
    if (problem := v.length_problem(large, LARGE_BATCH_ROWS)) is not None:
        raise CheckFailure(
            f"batch_predict on {LARGE_BATCH_ROWS} rows (the {n} rows of the data repeated): "
            f"{problem}; batch_predict on the {n} rows alone answered every row (a batch "
            "cut at a size limit?)"
        )
    expected_outputs = preds[tiled]
    tolerance = output_tolerance(large, expected_outputs)
    if same_outputs(large, expected_outputs, tolerance).all():
        return
    again = predict(deployment, rows)
    if len(again) != n or not same_outputs(again, preds, tolerance).all():
        # Not reproducible on the data itself: smoke[deterministic] names that fault.
        deploy_gate_property("large_batch", "not compared: outputs not reproducible")
        return
    where = f" in a batch of {LARGE_BATCH_ROWS} rows (the data repeated)"
    _fail_if_differ(
        "outputs in the large batch and in the data's own batch",
        large,
        expected_outputs,
        tolerance,
        [int(i) for i in tiled],
        n,
        ("large batch", "data's batch"),
        where=where,
    )


#: Rows asked one by one in smoke[batch-consistency]: enough to meet a fault of a few percent
#: of rows in the single-row path (120 rows miss a 4% fault with probability 0.7%).
SINGLE_ROWS = 120


#: Most rows added to smoke[batch-consistency]'s for missing values: for each column with a
#: missing value that none of the rows asked holds one in, a row that does. A single-row path
#: that fills a missing value unlike the batch path (NaN as 0 for one-row requests where a
#: batch gets the training median) shows only on such rows, and 120 rows spread evenly miss a
#: column missing on 2% of rows more often than not.
MISSING_VALUE_ROWS = 40


def missing_value_rows(
    frame: pd.DataFrame, chosen: Sequence[int], limit: int = MISSING_VALUE_ROWS
) -> list[int]:
    """Positions of up to ``limit`` rows of ``frame`` outside ``chosen`` that hold a missing
    value in a column none of the rows so far holds one in (the middle such row of each)."""
    import numpy as np

    covered = set(frame.columns[frame.iloc[list(chosen)].isna().any(axis=0).to_numpy()])
    taken = set(chosen)
    added: list[int] = []
    for position, column in enumerate(frame.columns):
        if len(added) >= limit:
            break
        if column in covered:
            continue
        where = np.flatnonzero(frame.iloc[:, position].isna().to_numpy())
        where = where[~np.isin(where, list(taken))]
        if not len(where):
            continue
        row = int(where[len(where) // 2])
        added.append(row)
        taken.add(row)
        covered |= set(frame.columns[frame.iloc[row].isna().to_numpy()])
    return added


def spread_rows(n: int, k: int = SAMPLE_ROWS) -> list[int]:
    """``k`` row positions of ``n``: the first five and the rest spread evenly to the last row,
    so a fault that shows only past a batch's first rows (or in its tail) is among them."""
    import numpy as np

    head = range(min(n, 5))
    rest = np.linspace(0, n - 1, max(0, min(n, k) - len(head))).round().astype(int).tolist()
    return sorted(set(head) | set(rest))


def _fail_if_differ(
    what: str,
    got: np.ndarray,
    ref: np.ndarray,
    tolerance: Tolerance,
    positions: Sequence[int],
    n: int,
    names: tuple[str, str] = ("batch", "single"),
    where: str = "",
) -> None:
    """Fail naming the rows (data positions) where ``got`` and ``ref`` differ."""
    import numpy as np

    differ = [int(i) for i in np.flatnonzero(~same_outputs(got, ref, tolerance))]
    if not differ:
        return
    rows = ", ".join(str(positions[i]) for i in differ[:5]) + (", ..." if len(differ) > 5 else "")
    lines = "\n".join(
        f"  row {positions[i]}: {names[0]} {show(got[i])} vs {names[1]} {show(ref[i])}"
        for i in differ[:10]
    )
    raise CheckFailure(
        f"{what} differ on {len(differ)} of the {len(positions)} rows compared (of {n}): "
        f"rows {rows} ({tolerance}){where}\n{lines}"
    )


@check("smoke", "batch-consistency")
def smoke_batch_consistency(
    deployment: Deployment,
    deploy_gate_data: GateData,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """Outputs of the whole data as one batch equal those of its rows one at a time, within
    the tolerance of their dtype; probabilities too, each row asked alone as a batch of one.

    Relative 1e-7 for float64 outputs, 1e-5 for float32 ones (labels exactly): a float32 model
    sums in another order for a batch than for one row, and rounds at the 7th digit. The rows
    asked one by one are the first five and the rest of 120 spread to the last, with a row
    holding a missing value for each column that has one (``missing_value_rows``), also compared
    as one batch of 20 and as one batch of all of them: a model whose answer depends on what
    else is in the batch (scaled over the batch, rows shifted or reordered in some batch sizes)
    differs, and a ``predict_single`` that answers an array where a batch gives one value per
    row fails.
    """
    import numpy as np

    from deploy_gate.checks.output import observe

    obs = observe(deployment, deploy_gate_data)
    n = obs.n_data_rows
    batch_all = obs.predictions[:n]
    require_one_per_row(batch_all, n)
    features = deploy_gate_data.features
    positions = spread_rows(n, SINGLE_ROWS)
    positions = sorted([*positions, *missing_value_rows(features, positions)])
    rows = features.iloc[positions]
    batch = batch_all[positions]
    raw = [deployment.predict_single(r) for r in records(rows)]
    shapes = sorted({np.shape(s) for s in raw})
    if batch_all.ndim == 1 and shapes != [()]:
        raise CheckFailure(
            f"predict_single returned outputs of shape {', '.join(map(str, shapes))} where a "
            f"batch gives one value per row (row {positions[0]}: {show(np.asarray(raw[0]))})"
        )
    single = v.as_array(raw)
    single = single.reshape(batch.shape) if single.size == batch.size else single
    # The same rows as one small batch too: a client batching a few requests; padding and
    # chunking faults show between one row and the whole data.
    # Its first row comes twice, last: two clients sending the same request in one batch.
    few = spread_rows(len(positions), SAMPLE_ROWS)
    repeated = [*few, few[0]]
    small = predict(deployment, rows.iloc[repeated])
    if (problem := v.length_problem(small, len(repeated))) is not None:
        raise CheckFailure(
            f"a batch of {len(repeated)} rows with row {positions[few[0]]} twice: {problem}; a "
            "model must answer every row of a batch, a repeated row too"
        )
    deploy_gate_property("rows_compared", len(positions))
    tolerance = output_tolerance(batch, single)
    deploy_gate_property("tolerance", str(tolerance))
    comparisons = [
        (
            f"the rows as one batch of {len(repeated)} (row {positions[few[0]]} twice)",
            small,
            single[repeated],
            [positions[i] for i in repeated],
        ),
        (f"the whole data as one batch of {n}", batch, single, positions),
    ]
    if len(repeated) < len(positions) < n:
        # And all the rows asked one by one as one batch: a model that joined its chunks with
        # an off-by-one only in batches of 22 to 4096 rows was approved on 6000 rows.
        middle = predict(deployment, rows)
        if (problem := v.length_problem(middle, len(positions))) is not None:
            raise CheckFailure(f"a batch of {len(positions)} rows: {problem}")
        comparisons.append(
            (f"the rows as one batch of {len(positions)}", middle, single, positions)
        )
    for what, got, ref, where in comparisons:
        outputs = "batch and row-by-row outputs"
        _fail_if_differ(outputs, got, ref, tolerance, where, n, where=f" in {what}")
    proba_all = obs.proba[:n] if obs.proba is not None else None
    if proba_all is None or len(proba_all) != n or not has_proba(deployment):
        return
    # Probabilities one row at a time on every row asked (each a request of its own): a
    # single-row path that moves probabilities on a few percent of rows flips few labels.
    alone = [v.as_array(deployment.batch_predict_proba(rows.iloc[[i]])) for i in range(len(rows))]
    proba = proba_all[positions]
    try:
        single_proba = np.concatenate(alone).reshape(proba.shape)
    except ValueError:
        shapes = sorted({str(a.shape) for a in alone})
        raise CheckFailure(
            f"probabilities of one row come back shaped {', '.join(shapes)}; a batch of "
            f"{n} rows gives {proba_all.shape}"
        ) from None
    tolerance = proba_tolerance(proba, single_proba)
    what = "probabilities in the batch and alone"
    _fail_if_differ(what, proba, single_proba, tolerance, positions, n, ("batch", "alone"))


@check("smoke", "deterministic")
def smoke_deterministic(deployment: Deployment, deploy_gate_data: GateData) -> None:
    """The same rows twice give the same outputs and probabilities (within the tolerance of
    their dtype)."""
    from deploy_gate.checks.output import observe

    rows = deploy_gate_data.features
    first = predict(deployment, rows)
    require_one_per_row(first, len(rows))
    compared = answers_again(deployment, rows, first, observe(deployment, deploy_gate_data).proba)
    require_unchanged(compared, "changed between two identical calls", "then")


#: Rows smoke[concurrent-calls] asks, one at a time and from each thread.
CONCURRENT_ROWS = 8


@check("smoke", "concurrent-calls")
def smoke_concurrent_calls(
    deployment: Deployment,
    deploy_gate_data: GateData,
    deploy_gate_settings: Settings,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """Single-row answers asked from ``deploy_gate_serving_threads`` threads at once (default
    4) equal the same rows' answers one at a time, within the tolerance of their dtype.

    A threaded server (FastAPI's ``def`` endpoints, gunicorn's ``gthread``) calls the model
    from a pool of threads. A model that keeps per-call state on itself answers one request
    with another's data there, and right one call at a time, which is how every other check
    calls it. Each thread asks 8 rows spread over the data, starting at its own row, so
    different rows are in flight together, and the threads switch at every call of the model's
    own code (``deploy_gate.concurrency``). The calls run next to the model, in its worker.
    A serving process that answers one request at a time sets the option to 1, which skips
    this check.
    """
    import numpy as np
    import pytest

    from deploy_gate.concurrency import answer_concurrently
    from deploy_gate.worker import remote

    threads = int(deploy_gate_settings.serving_threads)
    if threads < 2:
        pytest.skip("deploy_gate_serving_threads is 1: the model is served one call at a time")
    n = len(deploy_gate_data.features)
    positions = spread_rows(n, CONCURRENT_ROWS)
    rows = records(deploy_gate_data.features.iloc[positions])
    where = remote(deployment.predict_single)
    if where is not None and where.method is not None:
        key = f"concurrent-{where.handle}"
        where.worker.put_inputs(key, rows)
        out = where.worker.answer_concurrently(where.proxy, where.method, key, threads)
    else:  # --deploy-gate-isolation none: the threads run here
        out = answer_concurrently(deployment.predict_single, rows, threads)
    deploy_gate_property("threads", threads)
    deploy_gate_property("rows", len(rows))
    deploy_gate_property("concurrent_calls", threads * len(rows))
    at_once = f"called from {threads} threads at once"
    if out.errors:
        t, i, error = out.errors[0]
        raise CheckFailure(
            f"predict_single raised on {len(out.errors)} of {threads * len(rows)} calls "
            f"{at_once}, and on none of the same rows one at a time: row {positions[i]} "
            f"(thread {t + 1}): {error}; the model is not safe to call from several threads"
        )
    alone = v.as_array(out.alone)
    worst: tuple[int, list[int], np.ndarray, Tolerance] | None = None
    for t, answers in enumerate(out.threads):
        got = v.as_array(answers)
        got = got.reshape(alone.shape) if got.size == alone.size else got
        tolerance = output_tolerance(alone, got)
        differ = [int(i) for i in np.flatnonzero(~same_outputs(alone, got, tolerance))]
        if differ and (worst is None or len(differ) > len(worst[1])):
            worst = (t, differ, got, tolerance)
    if worst is None:
        return
    # As many calls again, one at a time: a model that answers each call otherwise differs
    # from threads too, and that is smoke[deterministic]'s finding, not a thread's doing.
    again = [v.as_array([deployment.predict_single(row) for row in rows]) for _ in out.threads]
    unsteady = sorted(
        {
            int(i)
            for a in again
            for i in np.flatnonzero(
                ~same_outputs(alone, a.reshape(alone.shape) if a.size == alone.size else a)
            )
        }
    )
    if unsteady:
        raise CheckFailure(
            f"single-row outputs are not reproducible: {len(again) * len(rows)} more calls of "
            f"the same rows one at a time differ on rows "
            f"{', '.join(str(positions[i]) for i in unsteady[:5])}"
            f"{', ...' if len(unsteady) > 5 else ''} (see smoke[deterministic]), so calls from "
            f"several threads cannot be judged"
        )
    t, differ, got, tolerance = worst
    lines = "\n".join(
        f"  row {positions[i]}: alone {show(alone[i])} vs from thread {t + 1} {show(got[i])}"
        for i in differ[:10]
    )
    raise CheckFailure(
        f"single-row outputs {at_once} differ from the same rows one at a time on "
        f"{len(differ)} of the {len(rows)} rows in thread {t + 1}: rows "
        f"{', '.join(str(positions[i]) for i in differ[:5])}{', ...' if len(differ) > 5 else ''}"
        f" ({tolerance}); the model is not safe to call from several "
        f"threads (a serving process that answers one request at a time sets "
        f"deploy_gate_serving_threads = 1)\n{lines}"
    )


#: One pair of answers to the same rows: what they are, the first, the second, and the
#: tolerance they are compared within.
Compared = tuple[str, "np.ndarray", "np.ndarray", "Tolerance"]


def answers_again(
    deployment: Deployment,
    rows: pd.DataFrame,
    outputs: np.ndarray,
    proba: np.ndarray | None,
) -> list[Compared]:
    """``outputs`` beside the outputs on ``rows`` asked again, and ``proba`` beside the
    probabilities asked again when there are any (the first ``len(rows)`` of each)."""
    n = len(rows)
    second = predict(deployment, rows)
    require_one_per_row(second, n)
    first = outputs[:n]
    compared: list[Compared] = [("outputs", first, second, output_tolerance(first, second))]
    if proba is not None and len(proba) >= n and has_proba(deployment):
        again = v.as_array(deployment.batch_predict_proba(rows))
        one = proba[:n]
        compared.append(("probabilities", one, again, proba_tolerance(one, again)))
    return compared


def require_unchanged(compared: Sequence[Compared], changed: str, then: str, why: str = "") -> None:
    """Fail on the first pair of ``compared`` that differs, naming its rows: "<what>
    <changed> on <rows> (<tolerance>)<why>", then a line per row, "<first> <then> <second>"."""
    import numpy as np

    for what, one, other, tolerance in compared:
        differ = [int(i) for i in np.flatnonzero(~same_outputs(one, other, tolerance))]
        if differ:
            lines = "\n".join(
                f"  row {i}: {show(one[i])} {then} {show(other[i])}" for i in differ[:10]
            )
            raise CheckFailure(
                f"{what} {changed} on {v.describe_rows(differ, len(one))} ({tolerance}){why}"
                f"\n{lines}"
            )


@check("smoke", "latency-sanity")
def smoke_latency_sanity(
    deployment: Deployment,
    deploy_gate_data: GateData,
    deploy_gate_settings: Settings,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """Mean single-row latency is under a generous budget (deploy_gate_smoke_latency_ms)."""
    rows = records(sample(deploy_gate_data))
    budget = float(deploy_gate_settings.smoke_latency_ms)
    threads = deploy_gate_settings.latency_threads
    timings = []
    # Thread pools are limited to deploy_gate_latency_threads around every gate check.
    for row in rows[:2]:  # warm-up, untimed
        deployment.predict_single(row)
    for row in (rows * 10)[: max(10, min(len(rows), 20))]:
        start = time.perf_counter()
        deployment.predict_single(row)
        timings.append((time.perf_counter() - start) * 1000.0)
    mean = sum(timings) / len(timings)
    deploy_gate_property("mean_ms", round(mean, 4))
    deploy_gate_property("budget_ms", budget)
    deploy_gate_property("threads", "auto" if threads is None else threads)
    if mean > budget:
        raise CheckFailure(
            f"mean single-row latency {mean:.1f} ms exceeds budget {budget:.1f} ms "
            f"(n={len(timings)} calls after 2 warm-up calls, "
            f"threads={'auto' if threads is None else threads}; deploy_gate_smoke_latency_ms)"
        )


def checks(profile: ModelProfile | None, settings: Settings) -> list[Check]:
    """The ``smoke`` checks, as this module declares them."""
    return declared(__name__)
