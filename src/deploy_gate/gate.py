"""The state of one gate run: settings, the artifacts named on the command line, what loaded."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploy_gate.errors import DataError, UnsafeArtifactError

if TYPE_CHECKING:
    from deploy_gate.artifact import LoadedArtifact
    from deploy_gate.data import GateData
    from deploy_gate.deployment import ModelDeployment
    from deploy_gate.options import Settings


class Gate:
    """Caches every expensive step once per process: loading artifacts, reading data."""

    def __init__(
        self,
        settings: Settings,
        artifact_paths: Iterable[Path],
        started: datetime | None = None,
    ) -> None:
        self.settings = settings
        self.artifact_paths = tuple(artifact_paths)
        self._resolved = frozenset(p.resolve() for p in self.artifact_paths)
        self.started = started or datetime.now(timezone.utc)
        self._loaded: dict[Path, LoadedArtifact | BaseException] = {}
        self._deployments: dict[Path, ModelDeployment] = {}
        self._data: GateData | None = None
        self._data_read = False
        self._artifact_data: dict[Path, GateData | str] = {}
        self._pins: dict[str, str] | None = None
        self._cache: dict[object, Any] = {}

    def is_artifact(self, path: Path) -> bool:
        return path.resolve() in self._resolved

    def artifact_or_error(self, path: Path) -> LoadedArtifact | BaseException:
        """The loaded artifact, or the exception that loading it raised (loaded once)."""
        from deploy_gate.artifact import load_artifact

        key = path.resolve()
        if key not in self._loaded:
            try:
                mismatch = self.pin_mismatch(path)
                if mismatch is not None:
                    raise UnsafeArtifactError(f"{mismatch}; the file was not opened")
                self._loaded[key] = load_artifact(
                    path, trust=self.settings.trust or (), started=self.started
                )
            except Exception as exc:  # reported by smoke[load]; the other checks skip
                self._loaded[key] = exc
        return self._loaded[key]

    def pin_mismatch(self, path: Path) -> str | None:
        """Why ``path`` does not match its pinned hash, or None (also when not pinned)."""
        from deploy_gate.ledger import sha256_file
        from deploy_gate.safeload import check_pin, read_pins

        pin_file = self.settings.pin
        if pin_file is None:
            return None
        if self._pins is None:
            self._pins = read_pins(pin_file)
        return check_pin(path, sha256_file(path), self._pins, Path(pin_file).parent)

    def data(self) -> GateData | None:
        """The rows of --deploy-gate-data (read once), or None when none were given."""
        from deploy_gate.data import load_data

        if not self._data_read:
            if self.settings.data is not None:
                self._data = load_data(self.settings.data, self.settings.target)
            self._data_read = True
        return self._data

    def data_for(self, artifact: LoadedArtifact) -> GateData | str:
        """Rows for this artifact: the real data, or synthetic rows, or why there are none."""
        key = artifact.path.resolve()
        if key not in self._artifact_data:
            self._artifact_data[key] = self._rows_for(artifact)
        return self._artifact_data[key]

    def _rows_for(self, artifact: LoadedArtifact) -> GateData | str:
        from deploy_gate.data import synthetic_data

        real = self.data()
        profile = artifact.profile
        if real is not None:
            if profile.feature_names is not None:
                return real.restrict(profile.feature_names)
            columns = list(real.features.columns)
            if profile.n_features is not None and profile.n_features != len(columns):
                raise DataError(
                    f"--deploy-gate-data: {artifact.path.name} takes {profile.n_features} features "
                    f"by position and names none, but {real.source} has {len(columns)} columns "
                    f"besides the target ({', '.join(columns[:12])}"
                    f"{', ...' if len(columns) > 12 else ''}): give it exactly the model's "
                    "columns, in order"
                )
            return real

        names = profile.feature_names or (
            tuple(f"x{i}" for i in range(profile.n_features)) if profile.n_features else None
        )
        if names is None:
            return (
                f"{artifact.path.name} does not say which features it takes "
                "(no feature_names_in_ or n_features_in_): pass --deploy-gate-data"
            )
        return synthetic_data(names)

    def cached(self, key: object, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per key in this process (comparisons, rollout replays)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def feature_names(self, artifact: LoadedArtifact) -> tuple[str, ...] | None:
        if artifact.profile.feature_names is not None:
            return artifact.profile.feature_names
        real = self.data()
        return tuple(map(str, real.features.columns)) if real is not None else None

    def deployment(
        self, artifact: LoadedArtifact, factory: Callable[[Path], Any]
    ) -> ModelDeployment:
        """The default deployment of an artifact, loaded once and shared by the checks."""
        key = artifact.path.resolve()
        if key not in self._deployments:
            deployment = factory(artifact.path)
            deployment.load_model()
            self._deployments[key] = deployment
        return self._deployments[key]
