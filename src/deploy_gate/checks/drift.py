"""Drift checks: current production inputs and predictions against the reference."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import pytest

from deploy_gate import validation as v
from deploy_gate.checks import Check
from deploy_gate.checks.common import (
    has_proba,
)
from deploy_gate.errors import CheckFailure

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from deploy_gate.artifact import LoadedArtifact, ModelProfile
    from deploy_gate.data import GateData
    from deploy_gate.deployment import Deployment
    from deploy_gate.drift import DriftResults, DriftThresholds
    from deploy_gate.gate import Gate
    from deploy_gate.options import Settings


def drift_features(profile: ModelProfile | None, settings: Settings) -> tuple[str, ...]:
    """The features drift is judged on: the model's, else the saved profile's, else the data's."""
    from deploy_gate.data import read_columns

    if profile is not None and profile.feature_names is not None:
        return profile.feature_names
    if settings.profile is not None:
        from deploy_gate.drift import Profile

        return Profile.load(settings.profile).feature_names
    if settings.data is not None:
        return tuple(c for c in read_columns(settings.data) if c != settings.target)
    return ()


def checks(profile: ModelProfile | None, settings: Settings) -> list[Check]:
    """``drift[<feature>]`` per feature and ``drift[prediction]`` with --deploy-gate-current;
    ``drift[save-profile]`` with --deploy-gate-save-profile."""
    found = []
    if settings.current is not None:
        found = [
            Check("drift", name, _drift_check(name)) for name in drift_features(profile, settings)
        ]
        found.append(Check("drift", "prediction", _drift_check("prediction")))
    if settings.save_profile is not None:
        found.append(Check("drift", "save-profile", drift_save_profile))
    return found


def _scores(deployment: Deployment, names: Sequence[str]) -> Callable[[pd.DataFrame], np.ndarray]:
    from deploy_gate.drift import prediction_scores

    def predict(rows: pd.DataFrame) -> np.ndarray:
        rows = rows[list(names)]
        out = (
            deployment.batch_predict_proba(rows)
            if has_proba(deployment)
            else deployment.batch_predict(rows)
        )
        return prediction_scores(v.as_array(out))

    return predict


def drift_results(
    gate: Gate, artifact: LoadedArtifact, deployment: Deployment, data: GateData | None
) -> DriftResults:
    """Drift of every feature and of the predictions, computed once per artifact; the current
    data is streamed in chunks, or is a profile built where the data lives.

    The result maps a feature (or ``prediction``) to its :class:`FeatureDrift`, or to the reason
    (a string) why there is no figure for it."""
    from deploy_gate.drift import (
        DriftThresholds,
        Profile,
        detect_drift,
        drift_against_profile,
        iter_chunks,
    )
    from deploy_gate.sources import is_profile_file

    def compute() -> DriftResults:
        names = list(drift_features(artifact.profile, gate.settings))
        try:
            return compute_with(names, _scores(deployment, names))
        except _DriftSkip:
            raise
        except Exception as exc:
            # The model could not score the rows (too few outputs, an exception): only the
            # drift of its predictions depends on it. The features are judged without it, and
            # a data problem that is not the model's fails them all as before.
            try:
                out = compute_with(names, None)
            except Exception:
                raise exc from None
            out["prediction"] = CheckFailure(f"drift could not be computed: {exc}")
            return out

    def compute_with(
        names: list[str], predict: Callable[[pd.DataFrame], np.ndarray] | None
    ) -> DriftResults:
        settings = gate.settings
        thresholds = DriftThresholds(
            psi_threshold=settings.drift_psi,
            pvalue=settings.drift_pvalue,
            ks_floor=settings.drift_effect_floor,
            cramers_v_floor=settings.drift_effect_floor,
        )
        current_path = settings.path("current")
        if is_profile_file(current_path):
            return _profile_to_profile(settings, names, thresholds, predict, data)
        current = iter_chunks(current_path, columns=names)
        if settings.profile is not None:
            reference = Profile.load(settings.profile)
            # A profile built here leaves date features out: find them in the current rows.
            profiled = set(reference.feature_names)
            absent = [n for n in names if n not in profiled]
            first = next(iter(iter_chunks(current_path, columns=absent)), None) if absent else None
            judged, timed = _not_times(first, names) if first is not None else (names, {})
            results = drift_against_profile(
                reference,
                current,
                features=judged,
                thresholds=thresholds,
                predict=predict,
            )
        else:
            if data is None or data.synthetic:
                raise _DriftSkip(
                    "drift needs reference rows: pass --deploy-gate-data (the rows the model was "
                    "validated on) or --deploy-gate-profile"
                )
            # The model still gets every feature, dates included, for its predictions.
            judged, timed = _not_times(data, names)
            results = detect_drift(
                data.table[names], current, features=judged, thresholds=thresholds, predict=predict
            )
        out: DriftResults = dict(timed)
        out.update({r.feature if r.kind != "prediction" else "prediction": r for r in results})
        return out

    return gate.drift.get(artifact.path.resolve(), compute)


#: Why a date or time feature gets no drift figure.
TIMES_NOT_JUDGED = (
    "it holds dates/times, which drift by nature (every new day is out of the reference's "
    "range); the other features and the predictions are judged"
)


def _not_times(
    data: GateData | pd.DataFrame, names: Sequence[str]
) -> tuple[list[str], dict[str, str]]:
    """``names`` without the date and time columns of the data, and why each of those has no
    drift figure: one such feature made every drift item fail before. Names that are not
    columns of ``data`` are kept."""
    import pandas as pd

    from deploy_gate.drift import is_time_dtype

    table = data if isinstance(data, pd.DataFrame) else data.table
    judged, timed = [], {}
    for name in names:
        if name in table.columns and is_time_dtype(table[name].dtype):
            timed[name] = TIMES_NOT_JUDGED
        else:
            judged.append(name)
    return judged, timed


def _profile_to_profile(
    settings: Settings,
    names: list[str],
    thresholds: DriftThresholds,
    predict: Callable[[pd.DataFrame], np.ndarray] | None,
    data: GateData | None,
) -> DriftResults:
    """Drift of a current profile (--deploy-gate-current CURRENT.json) against the reference."""
    from deploy_gate import profiles
    from deploy_gate.drift import build_profile

    current = profiles.load(settings.path("current"), what="--deploy-gate-current")
    source = f"--deploy-gate-current {str(settings.current)!r}"
    if settings.profile is not None:
        reference = profiles.load(settings.profile, what="--deploy-gate-profile")
    elif data is not None and not data.synthetic:
        # Matches the reference a current profile was built against only when that reference
        # was profiled from the same rows in one piece; check_reference says so otherwise.
        reference = build_profile(
            data.table[names], features=_not_times(data, names)[0], predict=predict
        )
    else:
        raise _DriftSkip(
            "drift against a current profile needs its reference: pass --deploy-gate-profile "
            "(the profile it was built against)"
        )
    results: DriftResults = {
        r.feature if r.kind != "prediction" else "prediction": r
        for r in profiles.compare(
            reference,
            current,
            features=names,
            thresholds=thresholds,
            predict=predict,
            current_source=source,
        )
    }
    results.setdefault("prediction", profiles.prediction_skip_reason(reference, current))
    return results


class _DriftSkip(Exception):
    pass


def _drift_check(feature: str) -> Callable[..., None]:
    def drift(
        deploy_gate: Gate,
        model_artifact: LoadedArtifact,
        deployment: Deployment,
        deploy_gate_property: Callable[[str, object], None],
    ) -> None:
        from deploy_gate.errors import DataError

        data = deploy_gate.data_for(model_artifact)
        try:
            results = drift_results(
                deploy_gate, model_artifact, deployment, data if not isinstance(data, str) else None
            )
        except _DriftSkip as exc:
            pytest.skip(str(exc))
        except DataError as exc:
            raise CheckFailure(f"drift could not be computed: {exc}") from None
        result = results.get(feature)
        if isinstance(result, CheckFailure):
            raise CheckFailure(str(result))
        if isinstance(result, str):
            pytest.skip(f"no drift figure for {feature!r}: {result}")
        if result is None:
            pytest.skip(
                f"no drift figure for {feature!r}"
                + (": the profile was saved without predictions" if feature == "prediction" else "")
            )
        for name, value in result.properties():
            deploy_gate_property(name, value)
        if not result.passed:
            raise CheckFailure(result.message)

    drift.__doc__ = (
        "The model's scores on current rows are distributed like on the reference rows."
        if feature == "prediction"
        else f"Feature {feature!r} of the current rows is distributed like in the reference."
    )
    return drift


def drift_save_profile(
    deploy_gate: Gate,
    model_artifact: LoadedArtifact,
    deployment: Deployment,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """Writes the reference profile of --deploy-gate-data to --deploy-gate-save-profile."""
    from deploy_gate.drift import build_profile, iter_chunks

    settings = deploy_gate.settings
    if settings.data is None:
        pytest.skip("a profile is built from --deploy-gate-data: pass the reference rows")
    names = list(drift_features(model_artifact.profile, settings))
    data = deploy_gate.data()
    profile = build_profile(
        iter_chunks(settings.path("data"), columns=names),
        features=_not_times(data, names)[0] if data is not None else names,
        predict=_scores(deployment, names),
    )
    target = settings.path("save_profile")
    target.parent.mkdir(parents=True, exist_ok=True)
    profile.save(target)
    deploy_gate_property("profile_path", str(target))
    deploy_gate_property("profile_rows", profile.rows)
    deploy_gate_property("profile_bytes", target.stat().st_size)
