"""The state of one gate run: settings, the artifacts named on the command line, what loaded."""

from __future__ import annotations

import contextlib
import os
import site
import sys
from collections.abc import Callable, Hashable, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from deploy_gate.errors import DataError, UnsafeArtifactError

if TYPE_CHECKING:
    from deploy_gate.artifact import LoadedArtifact
    from deploy_gate.compare import BaselineComparison
    from deploy_gate.data import GateData
    from deploy_gate.deployment import Deployment
    from deploy_gate.drift import DriftResults
    from deploy_gate.latency import LatencyMeasurement, LatencyVerdict
    from deploy_gate.memory import MemoryGrowth
    from deploy_gate.options import Settings
    from deploy_gate.rollout import StageResult
    from deploy_gate.worker import ModelWorker, RemoteObject, WorkerConfig


#: The isolation property of an artifact that ran in pytest's own process.
NO_ISOLATION = "none: the model ran inside pytest (--deploy-gate-isolation none)"

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    """Values computed once per key in this process, each memo holding one kind of value."""

    def __init__(self) -> None:
        self._values: dict[K, V] = {}

    def get(self, key: K, compute: Callable[[], V]) -> V:
        """The value for ``key``, from ``compute()`` the first time it is asked for."""
        if key not in self._values:
            self._values[key] = compute()
        return self._values[key]

    def __contains__(self, key: object) -> bool:
        return key in self._values


#: What a model worker imports before the model's own load deadline starts.
_PRELOAD = "deploy_gate.worker.inside:preload"


def _import_for_checks() -> None:
    """Import the statistics the checks use in this process. In process, loading the model
    imported them (scikit-learn imports scipy); with a model worker, the first check that needs
    them would pay about a second for it, so this runs while the workers start instead."""
    import importlib

    for name in ("scipy.stats", "sklearn.metrics"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


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
        self._data: GateData | None = None
        self._data_read = False
        self._artifact_data: dict[Path, GateData | str] = {}
        self._pins: dict[str, str] | None = None
        # What the checks compute once per artifact (or endpoint) and share between items.
        self.comparisons: Memo[Path, BaselineComparison] = Memo()
        self.rollouts: Memo[Path, list[StageResult]] = Memo()
        self.drift: Memo[Path, DriftResults] = Memo()
        #: By artifact and batch size.
        self.latency: Memo[tuple[Path, int], LatencyMeasurement[Any]] = Memo()
        #: By kind ("vs-baseline", "batch-vs-single"), artifact and batch size.
        self.latency_verdicts: Memo[tuple[str, Path, int], LatencyVerdict] = Memo()
        #: By artifact: the model process (pid) and its resident bytes before the first
        #: latency measurement, None where that cannot be read.
        self.memory_before: Memo[Path, tuple[int, int] | None] = Memo()
        #: By artifact: latency[memory-steady]'s reading, or why there is none.
        self.memory_growth: Memo[Path, MemoryGrowth | str] = Memo()
        #: By endpoint name and concurrency.
        self.endpoint_latency: Memo[tuple[str, int], LatencyMeasurement[Any]] = Memo()
        #: The client's own ms per request, by endpoint name.
        self.endpoint_overhead: Memo[str, float] = Memo()
        self._at_close: list[Callable[[], None]] = []
        self._deployments: Memo[tuple[Callable[[Path], Deployment], Path], Deployment] = Memo()
        self._factories: Memo[Callable[[Path], Deployment], Callable[[Path], Deployment]] = Memo()
        self._default_factory: DefaultFactory | None = None
        self._workers: dict[Path, ModelWorker] = {}
        self._remote_artifacts: dict[Path, RemoteObject] = {}

    @property
    def isolated(self) -> bool:
        """Whether models run in a model worker (``--deploy-gate-isolation`` not ``none``)."""
        return bool(self.settings.isolation != "none")

    def worker_for(self, path: Path) -> ModelWorker:
        """The model worker of an artifact (started on first use, one per path and process)."""
        from deploy_gate.worker import ModelWorker

        key = path.resolve()
        if key not in self._workers:
            self._workers[key] = ModelWorker(self._worker_config(key))
        return self._workers[key]

    def _worker_config(self, path: Path) -> WorkerConfig:
        import sys

        from deploy_gate.worker import WorkerConfig, WorkerLimits, default_memory_limit

        settings = self.settings
        memory = settings.memory_limit
        baseline = settings.baseline is not None and Path(settings.baseline).resolve() == path
        return WorkerConfig(
            python=str(settings.python) if settings.python is not None else sys.executable,
            isolation=settings.isolation,
            limits=WorkerLimits(
                memory_bytes=default_memory_limit() if memory == "auto" else memory
            ),
            sys_path=project_paths(),
            cwd=str(Path.cwd()),
            # Calls inside a check run under its deadline (Gate.deadline); this is the backstop.
            call_timeout=float(settings.artifact_timeout),
            budget_seconds=float(settings.artifact_timeout),
            label="baseline model process" if baseline else "model process",
        )

    @contextlib.contextmanager
    def deadline(self, seconds: float, what: str) -> Iterator[None]:
        """Every model call of every worker in the block ends within ``seconds``, or the
        worker is killed (no check can catch that: it is not an ``Exception``)."""
        with contextlib.ExitStack() as stack:
            for worker in self._workers.values():
                stack.enter_context(worker.deadline(seconds, what))
            yield

    def protections(self, path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """What protected the gate from this artifact's model, and why a protection of the
        chosen isolation was not in force (both empty before its worker started)."""
        if not self.isolated:
            return (NO_ISOLATION,), ()
        worker = self._workers.get(path.resolve())
        info = worker.info if worker is not None else None
        return (info.protections, info.warnings) if info is not None else ((), ())

    def close(self) -> None:
        """Stop every model worker of this process and close its endpoint connections."""
        for worker in self._workers.values():
            worker.close()
        self._workers.clear()
        while self._at_close:
            self._at_close.pop()()  # the endpoints' HTTP connections (deploy_gate.endpoint)

    def at_close(self, close: Callable[[], None]) -> None:
        """Call ``close`` when the gate closes (at the end of the session)."""
        self._at_close.append(close)

    def is_artifact(self, path: Path) -> bool:
        return path.resolve() in self._resolved

    def artifact_or_error(self, path: Path) -> LoadedArtifact | BaseException:
        """The loaded artifact, or the exception that loading it raised (loaded once)."""
        from deploy_gate.artifact import load_artifact
        from deploy_gate.worker import WorkerError

        key = path.resolve()
        if key not in self._loaded:
            try:
                mismatch = self.pin_mismatch(path)
                if mismatch is not None:
                    raise UnsafeArtifactError(f"{mismatch}; the file was not opened")
                if self.isolated:
                    self._loaded[key] = self._load_in_worker(path)
                else:
                    self._loaded[key] = load_artifact(
                        path, trust=self.settings.trust or (), started=self.started
                    )
            except (Exception, WorkerError) as exc:  # reported by smoke[load]; the rest skip
                self._loaded[key] = exc
        return self._loaded[key]

    def _load_in_worker(self, path: Path) -> LoadedArtifact:
        """Load ``path`` in its model worker; only plain data about it comes back."""
        from deploy_gate.artifact import LoadedArtifact, ModelProfile
        from deploy_gate.errors import ArtifactLoadError
        from deploy_gate.identity import sha256_file, version_id

        if not path.is_file():
            raise FileNotFoundError(f"model artifact not found: {path}")
        sha = sha256_file(path)
        worker = self.worker_for(path)
        worker.launch(_PRELOAD)  # nothing when prestart() launched it
        self._launch_baseline(path)
        _import_for_checks()  # here, while the model workers start
        start = worker.config.start_timeout
        with worker.deadline(start, "starting and importing the model's libraries"):
            # Waits for the launch first; imports nothing new then, but is replayed on restarts.
            worker.construct(_PRELOAD)
        with worker.deadline(float(self.settings.check_timeout), f"loading {path.name}"):
            remote = worker.construct(
                "deploy_gate.artifact:load_artifact",
                [str(path)],
                {"trust": list(self.settings.trust or ())},
            )
            described = worker.describe(remote)
            model = worker.getattr(remote, "model")
            if self.settings.latency_threads is not None:
                # Once, after the model's libraries (BLAS, OpenMP) loaded; kept on restarts.
                worker.set_threads(self.settings.latency_threads)
        if not isinstance(described, dict) or described.get("sha256") != sha:
            raise ArtifactLoadError(f"{path} changed while it was being loaded")
        self._remote_artifacts[path.resolve()] = remote
        return LoadedArtifact(
            path=path,
            sha256=sha,
            size=path.stat().st_size,
            version_id=version_id(sha, self.started),
            loader=str(described["loader"]),
            model=model,
            profile=ModelProfile.from_data(described["profile"]),
            load_warnings=tuple(str(w) for w in described.get("load_warnings", ())),
            libraries={str(k): str(v) for k, v in dict(described.get("libraries", {})).items()},
        )

    def prestart(self) -> None:
        """Start the first artifact's model worker, and the baseline's, without waiting: they
        import their libraries while this process reads the data. Nothing is opened: the
        artifact is loaded (after its pin is checked) when collection asks for it."""
        first = next((p for p in self.artifact_paths if p.is_file()), None)
        if not self.isolated or first is None:
            return
        self._launch(first)
        self._launch_baseline(first)

    def _launch_baseline(self, candidate: Path) -> None:
        """Start the baseline's model worker beside the candidate's, so both import their
        libraries at once on two CPUs, not one after the other when the first baseline check
        comes. Its file is not opened here: loading it (and checking its pin) comes later."""
        if self.settings.baseline is None:
            return
        key = Path(self.settings.baseline).resolve()
        if key == candidate.resolve() or key in self._loaded or key in self._workers:
            return
        if key.is_file():
            self._launch(key)

    def _launch(self, path: Path) -> None:
        """Start the model worker of ``path`` without waiting for it. A start that fails is
        reported by the artifact's load, which tries again."""
        from deploy_gate.worker import WorkerError

        with contextlib.suppress(Exception, WorkerError):
            self.worker_for(path).launch(_PRELOAD)

    def remote_artifact(self, path: Path) -> RemoteObject | None:
        """The worker's own loaded artifact of ``path``, for a deployment built there."""
        return self._remote_artifacts.get(path.resolve())

    def pin_mismatch(self, path: Path) -> str | None:
        """Why ``path`` does not match its pinned hash, or None (also when not pinned)."""
        from deploy_gate.identity import sha256_file
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

    def default_factory(self) -> Callable[[Path], Deployment]:
        """The gate's own deployment for a path: ``ModelDeployment`` with the artifact the gate
        loaded, its feature names and trust, counting invalid outputs instead of raising."""
        if self._default_factory is None:
            self._default_factory = DefaultFactory(self)
        return self._default_factory

    def served_by(self, factory: Callable[[Path], Deployment]) -> Callable[[Path], Deployment]:
        """``factory`` as the checks call it: building in each artifact's model worker.

        A project's own factory goes to the worker as a cloudpickle (a class or function by
        name, a closure or lambda by value); one that cannot be pickled is a ``ConfigError``.
        """
        if not self.isolated or isinstance(factory, DefaultFactory):
            return factory
        return self._factories.get(factory, lambda: RemoteFactory(self, factory))

    def loaded(self, factory: Callable[[Path], Deployment], path: Path) -> Deployment:
        """``factory(path)``, loaded, once per factory and path in this process: the checks
        (the candidate's, the baseline's, an endpoint's comparison with its artifact) share one
        loaded deployment, as a serving process shares one model between requests."""

        def load() -> Deployment:
            deployment = factory(path)
            deployment.load_model()
            return deployment

        return self._deployments.get((factory, path), load)

    def feature_names(self, artifact: LoadedArtifact) -> tuple[str, ...] | None:
        if artifact.profile.feature_names is not None:
            return artifact.profile.feature_names
        real = self.data()
        return tuple(map(str, real.features.columns)) if real is not None else None


def project_paths() -> tuple[str, ...]:
    """This process's import path less the interpreter's own and installed libraries: the
    project's folders (rootdir, conftest folders, PYTHONPATH), so the model worker imports the
    project's modules, but takes its libraries from its own interpreter."""
    installed = {
        os.path.realpath(p)
        for p in (*site.getsitepackages(), site.getusersitepackages(), sys.prefix, sys.base_prefix)
    }

    def library(entry: str) -> bool:
        real = os.path.realpath(entry)
        return any(real == p or real.startswith(p + os.sep) for p in installed)

    return tuple(dict.fromkeys(os.path.abspath(p) for p in sys.path if p and not library(p)))


class DefaultFactory:
    """The default ``deployment_factory``: the gate's ``ModelDeployment`` of a path, built in
    the path's model worker (or here, with ``--deploy-gate-isolation none``)."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    def __call__(self, path: str | Path) -> Deployment:
        from deploy_gate.deployment import ModelDeployment

        gate, path = self.gate, Path(path)
        # The gate's own loaded artifact when there is one (the candidate, the baseline), so the
        # wrapper serves exactly the bytes that were hashed and checked.
        loaded = gate.artifact_or_error(path) if path.is_file() else None
        artifact = None if isinstance(loaded, BaseException) else loaded
        names = gate.feature_names(artifact) if artifact is not None else None
        trust = tuple(gate.settings.trust or ())
        # Single rows arrive as mappings: categorical columns of the data stay categorical.
        real = gate.data()
        categories = real.categories() if real is not None else {}
        text_dtypes = real.text_dtypes() if real is not None else {}
        if not gate.isolated:
            return ModelDeployment(
                path,
                feature_names=names,
                trust=trust,
                on_invalid_output="record",
                artifact=artifact,
                categories=categories,
                text_dtypes=text_dtypes,
            )
        remote = gate.remote_artifact(path)
        kwargs: dict[str, Any] = {
            "feature_names": list(names) if names is not None else None,
            "trust": list(trust),
            "on_invalid_output": "record",
            "categories": categories,
            "text_dtypes": {k: list(v) for k, v in text_dtypes.items()},
        }
        if remote is not None:
            kwargs["artifact"] = remote  # a proxy arrives in the worker as the object itself
        # A proxy of the worker's ModelDeployment: its methods are the deployment's.
        return cast(
            "Deployment",
            gate.worker_for(path).construct(
                "deploy_gate.deployment:ModelDeployment", [str(path)], kwargs
            ),
        )


class RemoteFactory:
    """A project's deployment factory, called in each path's model worker."""

    def __init__(self, gate: Gate, factory: Callable[[Path], Deployment]) -> None:
        import cloudpickle

        from deploy_gate.errors import ConfigError

        self.gate = gate
        self.factory = factory
        try:
            self.pickled = cloudpickle.dumps(factory)
        except Exception as exc:
            raise ConfigError(
                f"deployment_factory returned {factory!r}, which cannot be sent to the model "
                f"worker ({type(exc).__name__}: {exc}); return a class or a function, or debug "
                "with --deploy-gate-isolation none"
            ) from None

    def __call__(self, path: str | Path) -> Deployment:
        worker = self.gate.worker_for(Path(path))
        # A proxy of what the project's factory built in the worker.
        built = worker.construct("deploy_gate.worker.inside:build", [self.pickled, str(path)])
        return cast("Deployment", built)

    def __repr__(self) -> str:
        return f"<{self.factory!r} in the model worker>"


def beside(obj: object, factory: str) -> Any:
    """``factory(obj)`` built in the model worker that holds ``obj`` (a worker proxy), for a
    probe that must run next to the model; None when ``obj`` lives in this process."""
    from deploy_gate.worker import remote

    where = remote(obj)
    if where is None:
        return None
    return where.worker.construct(factory, [where.proxy])
