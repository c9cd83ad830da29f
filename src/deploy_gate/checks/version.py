"""Version checks: the version id and figures, pinned hashes, the ledger."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from deploy_gate.checks import Check, check, declared
from deploy_gate.errors import CheckFailure

if TYPE_CHECKING:
    from deploy_gate.artifact import LoadedArtifact, ModelProfile
    from deploy_gate.deployment import Deployment
    from deploy_gate.gate import Gate
    from deploy_gate.options import Settings


@check("version", "version-id")
def version_version_id(
    model_artifact: LoadedArtifact,
    deployment: Deployment,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """Records the version id, sha256, size, loader and library versions; the file on disk
    still has the content that was loaded and checked."""
    from deploy_gate.identity import sha256_file

    for key, value in model_artifact.metadata().items():
        deploy_gate_property(key, value)
    # Read leniently: a project's wrapper without model_version still gets its record.
    served = getattr(deployment, "model_version", None)
    if served is not None and served != model_artifact.version_id:
        deploy_gate_property("deployment_model_version", served)
    on_disk = sha256_file(model_artifact.path)
    if on_disk != model_artifact.sha256:
        raise CheckFailure(
            f"{model_artifact.path} changed during the gate run: sha256 {on_disk[:12]}... on disk, "
            f"{model_artifact.sha256[:12]}... when loaded and checked"
        )


def _ledger_in_use(profile: ModelProfile | None, settings: Settings) -> bool:
    return bool(settings.record) or Path(settings.ledger).exists()


@check("version", "ledger", applies=_ledger_in_use)
def version_ledger(
    model_artifact: LoadedArtifact,
    deploy_gate_settings: Settings,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """Against the ledger: a re-deploy of a recorded hash is named; a version id recorded for
    other bytes is refused."""
    from deploy_gate.ledger import Ledger

    settings_ledger = Path(deploy_gate_settings.ledger)
    ledger = Ledger(settings_ledger)
    if not ledger.exists():
        pytest.skip(f"no ledger yet at {settings_ledger}: --deploy-gate-record starts one")
    if ledger.collides(model_artifact.version_id, model_artifact.sha256):
        raise CheckFailure(
            f"version id {model_artifact.version_id} is already recorded in {settings_ledger} "
            "for other bytes: refusing a colliding version"
        )
    earlier = ledger.by_sha256(model_artifact.sha256)
    if earlier is not None:
        deploy_gate_property("redeploy_of", earlier.version)
        deploy_gate_property("redeploy_recorded_at", earlier.recorded_at)
    current = ledger.current()
    if current is not None:
        deploy_gate_property("ledger_current", current.version)


def _pinned(profile: ModelProfile | None, settings: Settings) -> bool:
    return settings.pin is not None


@check("version", "pinned-hash", applies=_pinned)
def version_pinned_hash(
    deploy_gate: Gate,
    deploy_gate_artifact_path: Path,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """The artifact matches its hash in the pin file (deploy_gate_pin), checked before loading."""
    from deploy_gate.identity import sha256_file
    from deploy_gate.safeload import find_pin, read_pins

    pin_file = deploy_gate.settings.path("pin")
    pinned = find_pin(deploy_gate_artifact_path, read_pins(pin_file), pin_file.parent)
    if pinned is None:
        pytest.skip(f"{deploy_gate_artifact_path.name} is not listed in {pin_file}")
    deploy_gate_property("pinned_sha256", pinned)
    mismatch = deploy_gate.pin_mismatch(deploy_gate_artifact_path)
    if mismatch is not None:
        raise CheckFailure(mismatch)
    deploy_gate_property("sha256", sha256_file(deploy_gate_artifact_path))


def checks(profile: ModelProfile | None, settings: Settings) -> list[Check]:
    """The ``version`` checks, as this module declares them."""
    return declared(__name__)
