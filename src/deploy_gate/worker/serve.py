"""The model worker's main: ``python -m deploy_gate.worker.serve CONFIG_JSON``.

The gate starts it with a request pipe on fd 0, a response pipe on fd 1 and a log file on fd 2.
Before anything else it moves both pipes to private close-on-exec descriptors and points fds 0,
1 and 2 at /dev/null and the log, so nothing the model prints (``print``, ``os.write(1, ...)``,
a C library's stdout) can reach the protocol channel, and no process the model starts inherits
the channel. Then it applies the sandbox (``sandbox.apply``) while still single-threaded, and
only then imports numpy and serves requests until the gate closes the pipe.

The same file runs under another interpreter (a production virtualenv) that has
``deploy_gate`` and its dependencies installed: it uses only the standard library before the
sandbox, and ``deploy_gate.latency``/``deploy_gate.artifact`` lazily, for the requests that
need them.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from typing import Any

#: Distributions reported by ``hello``; the first installed name of each entry wins.
REPORTED_LIBRARIES = (
    ("numpy",),
    ("pandas",),
    ("scikit-learn",),
    ("scipy",),
    ("joblib",),
    ("threadpoolctl",),
    ("onnxruntime", "onnxruntime-gpu"),
    ("skops",),
    ("lightgbm",),
    ("xgboost", "xgboost-cpu"),
    ("pytest-deploy-gate",),
)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    config = json.loads(args[0])
    cpus = config.get("cpus")
    if cpus and hasattr(os, "sched_setaffinity"):
        # First, before any library starts a thread: every thread inherits the set.
        # CPUs this process may not use (OSError, ValueError): the OS places it.
        with contextlib.suppress(OSError, ValueError):
            os.sched_setaffinity(0, cpus)
    channel_in, channel_out = os.dup(0), os.dup(1)  # new descriptors are close-on-exec
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)  # the model's stdout goes to the log with its stderr
    import faulthandler

    faulthandler.enable(all_threads=True)  # a crash leaves its Python traceback in the log

    from deploy_gate.worker import sandbox

    limits = sandbox.WorkerLimits.from_data(config["limits"])
    protections = sandbox.apply(
        config["isolation"], limits, config["scratch"], gate_pid=config["gate_pid"]
    )
    for entry in reversed(config.get("sys_path", [])):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    return _Server(channel_in, channel_out, config, protections, limits).run()


class _Server:
    def __init__(
        self,
        channel_in: int,
        channel_out: int,
        config: dict[str, Any],
        protections: Any,
        limits: Any,
    ) -> None:
        from deploy_gate.worker import codec

        self.codec = codec
        self.out = channel_out
        self.reader = codec.FrameReader(
            channel_in,
            max_frame_bytes=config.get("max_frame_bytes", codec.DEFAULT_MAX_FRAME_BYTES),
            rehearse=True,
        )
        self.config = config
        self.protections = protections
        self.limits = limits
        self.objects: dict[str, Any] = {}
        self.handle_of: dict[int, str] = {}
        self.inputs: dict[str, list[Any]] = {}
        self.limiter: Any = None
        #: Duration of the last ``call`` request's method itself, in ns (None for other ops).
        self.call_ns: int | None = None
        self.ops = {
            "hello": self.hello,
            "construct": self.construct,
            "call": self.call,
            "getattr": self.getattr,
            "setattr": self.setattr,
            "put_inputs": self.put_inputs,
            "collect": self.collect,
            "concurrent": self.concurrent,
            "time_calls": self.time_calls,
            "time_pairs": self.time_pairs,
            "threads": self.threads,
            "describe": self.describe,
            "release": self.release,
            "echo": self.echo,
            "exit": self.echo,
        }

    def run(self) -> int:
        codec = self.codec
        spin = float(self.config.get("spin_seconds", 0.0))
        # A check sends its next request soon after an answer: poll for it a moment before
        # sleeping, unless this process has a single CPU (see WorkerConfig). The gate may pin
        # this process to one CPU for a latency comparison, where polling would take the other
        # worker's time: asked again after each request but single calls (and every 256th),
        # which are many and fast, and come in the checks that gain from polling.
        cpus = os.sched_getaffinity if hasattr(os, "sched_getaffinity") else None

        def polling() -> float:
            return spin if cpus is None or len(cpus(0)) > 1 else 0.0

        waiting = polling()
        served = 0
        while True:
            try:
                header, buffers = self.reader.read(spin_seconds=waiting)
            except EOFError:
                return 0
            except codec.FrameError as exc:
                print(f"deploy-gate worker: bad request frame: {exc}", file=sys.stderr)
                return 2
            op = header.get("op")
            encoder = codec.Encoder()
            self.call_ns = None
            try:
                handler = self.ops.get(op)
                if handler is None:
                    raise ValueError(f"unknown worker operation {op!r}")
                reply = {"id": header.get("id"), "r": handler(header, buffers, encoder)}
            except BaseException as exc:  # everything the model raises goes back to the gate
                encoder = codec.Encoder()
                reply = {"id": header.get("id"), "e": self.error(exc)}
            if self.call_ns is not None:  # the method's own time, for the gate's accounting
                reply["ns"] = self.call_ns
            try:
                frame = codec.pack_frame(reply, encoder.buffers)
            except Exception as exc:  # an answer the encoder let through and JSON cannot hold
                reply = {"id": header.get("id"), "e": self.error(codec.EncodeError(str(exc)))}
                frame = codec.pack_frame(reply, [])
            codec.write_frame(self.out, frame)
            if op == "exit":
                return 0
            served += 1
            if op != "call" or served % 256 == 0:
                waiting = polling()

    def error(self, exc: BaseException) -> dict[str, Any]:
        try:
            return self.codec.encode_exception(exc, self.note(exc))
        except BaseException:  # a hostile exception whose attributes raise
            return {"t": "RuntimeError", "m": "builtins", "msg": "unreportable exception"}

    def note(self, exc: BaseException) -> str:
        from deploy_gate.worker.sandbox import format_bytes

        if isinstance(exc, MemoryError) and self.limits.memory_bytes:
            return f"(memory limit of the model process: {format_bytes(self.limits.memory_bytes)})"
        if isinstance(exc, OSError) and exc.errno == 27 and self.limits.file_size_bytes:
            limit = format_bytes(self.limits.file_size_bytes)
            return f"(file size limit of the model process: {limit})"
        if isinstance(exc, PermissionError) and self.config["isolation"] == "sandbox":
            return (
                "(the model process is sandboxed: no network, writes only under "
                f"{self.config['scratch']})"
            )
        return ""

    # -- values ---------------------------------------------------------------------------

    def decode(self, value: Any, buffers: list[memoryview]) -> Any:
        return self.codec.Decoder(buffers, self.resolve).value(value)

    def resolve(self, ref: Any) -> Any:
        try:
            return self.objects[ref.handle]
        except KeyError:
            raise ValueError(f"no object with handle {ref.handle!r} in the model process") from None

    def result(self, value: Any, ref: Any, encoder: Any) -> Any:
        """``value`` encoded as data, or kept here under a handle when it is not data."""
        if type(value) in self.codec.PLAIN:  # most single-row answers
            return value
        mark = len(encoder.buffers)
        try:
            return encoder.value(value)
        except self.codec.EncodeError:
            del encoder.buffers[mark:]
        handle = self.handle_of.get(id(value))
        if handle is None:
            if type(ref) is not str:
                raise TypeError(f"{type(value).__qualname__} result cannot be sent as data")
            handle = ref
            self.objects[handle] = value
            self.handle_of[id(value)] = handle
        t = type(value)
        return {
            "$t": "ref",
            "h": handle,
            "type": f"{t.__module__}.{t.__qualname__}",
            "m": self.codec.public_methods(value),
        }

    # -- operations -----------------------------------------------------------------------

    def hello(self, header: dict[str, Any], buffers: list[memoryview], encoder: Any) -> Any:
        import platform

        return {
            "protocol": self.codec.PROTOCOL_VERSION,
            "pid": os.getpid(),
            "python": platform.python_version(),
            "executable": sys.executable,
            "isolation": self.config["isolation"],
            "protections": list(self.protections.in_force),
            "warnings": list(self.protections.warnings),
            "versions": _library_versions(),
        }

    def construct(self, header: dict[str, Any], buffers: list[memoryview], encoder: Any) -> Any:
        import importlib

        for entry in reversed(header.get("path") or []):
            if type(entry) is str and entry not in sys.path:
                sys.path.insert(0, entry)
        module_name, _, qualname = str(header["f"]).partition(":")
        if not module_name or not qualname:
            raise ValueError(f"factory {header['f']!r} is not 'module:qualname'")
        factory: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            factory = getattr(factory, part)
        obj = factory(*self.decode(header["a"], buffers), **self.decode(header["k"], buffers))
        handle = header["h"]
        self.objects[handle] = obj
        self.handle_of[id(obj)] = handle
        t = type(obj)
        return {"type": f"{t.__module__}.{t.__qualname__}", "m": self.codec.public_methods(obj)}

    def call(self, header: dict[str, Any], buffers: list[memoryview], encoder: Any) -> Any:
        method = getattr(self.objects[header["h"]], header["m"])
        if self.reader.tagless:  # plain values (a row as a mapping): nothing to decode
            args, kwargs = header.get("a", ()), header.get("k", {})
        else:
            args = self.decode(header["a"], buffers) if "a" in header else ()
            kwargs = self.decode(header["k"], buffers) if "k" in header else {}
        begin = time.perf_counter_ns()
        try:
            value = method(*args, **kwargs)
        finally:
            self.call_ns = time.perf_counter_ns() - begin
        return self.result(value, header.get("ref"), encoder)

    def getattr(self, header: dict[str, Any], buffers: list[memoryview], encoder: Any) -> Any:
        value = getattr(self.objects[header["h"]], header["n"])
        if callable(value) and not isinstance(value, type):
            return {"$t": "fn"}
        return self.result(value, header.get("ref"), encoder)

    def setattr(self, header: dict[str, Any], buffers: list[memoryview], encoder: Any) -> Any:
        setattr(self.objects[header["h"]], header["n"], self.decode(header["v"], buffers))

    def put_inputs(self, header: dict[str, Any], buffers: list[memoryview], encoder: Any) -> Any:
        inputs = self.decode(header["v"], buffers)
        if not isinstance(inputs, list) or not inputs:
            raise ValueError("inputs must be a non-empty list")
        self.inputs[header["key"]] = inputs
        return len(inputs)

    def collect(self, header: dict[str, Any], buffers: list[memoryview], encoder: Any) -> Any:
        import gc

        return gc.collect()

    def concurrent(self, header: dict[str, Any], buffers: list[memoryview], encoder: Any) -> Any:
        from deploy_gate.concurrency import answer_concurrently

        fn = getattr(self.objects[header["h"]], header["m"])
        out = answer_concurrently(fn, self.inputs[header["key"]], int(header["threads"]))
        errors = [list(error) for error in out.errors]
        return encoder.value({"alone": out.alone, "threads": out.threads, "errors": errors})

    def time_calls(self, header: dict[str, Any], buffers: list[memoryview], encoder: Any) -> Any:
        from deploy_gate.latency import time_calls

        fn = getattr(self.objects[header["h"]], header["m"])
        inputs = self.inputs[header["key"]]
        with _Round(header.get("gc", True)) as rnd:
            durations = time_calls(fn, inputs, int(header["calls"]), start=int(header["start"]))
        return encoder.value({"d": durations, "s": rnd.switches})

    def time_pairs(self, header: dict[str, Any], buffers: list[memoryview], encoder: Any) -> Any:
        from deploy_gate.latency import time_pairs

        first = getattr(self.objects[header["h"]], header["m"])
        second = getattr(self.objects[header["h2"]], header["m"])
        inputs = self.inputs[header["key"]]
        with _Round(header.get("gc", True)) as rnd:
            a, b = time_pairs(
                first, second, inputs, int(header["calls"]), start=int(header["start"])
            )
        return encoder.value({"d": a, "d2": b, "s": rnd.switches})

    def threads(self, header: dict[str, Any], buffers: list[memoryview], encoder: Any) -> Any:
        from threadpoolctl import ThreadpoolController

        if self.limiter is not None:
            self.limiter.restore_original_limits()
            self.limiter = None
        limit = header.get("limit")
        if limit is None:
            return []
        # One limiter for the whole process, kept until the next ``threads`` request; built from
        # the libraries loaded now, which is why the gate asks for it after load_model().
        self.limiter = ThreadpoolController().limit(limits=int(limit))
        # {user_api: threads before}, e.g. {"blas": 2, "openmp": 2}: the pools now limited.
        return sorted(str(api) for api in self.limiter.get_original_num_threads())

    def describe(self, header: dict[str, Any], buffers: list[memoryview], encoder: Any) -> Any:
        import dataclasses

        from deploy_gate.artifact import LoadedArtifact

        obj = self.objects[header["h"]]
        artifact = obj if isinstance(obj, LoadedArtifact) else None
        if artifact is None and getattr(obj, "is_loaded", False) is True:
            candidate = getattr(obj, "artifact", None)
            artifact = candidate if isinstance(candidate, LoadedArtifact) else None
        if artifact is None:
            return None
        return encoder.value(
            {
                "path": str(artifact.path),
                "sha256": artifact.sha256,
                "size": artifact.size,
                "version_id": artifact.version_id,
                "loader": artifact.loader,
                "profile": dataclasses.asdict(artifact.profile),
                "metadata": artifact.metadata(),
                "load_warnings": list(artifact.load_warnings),
                "libraries": dict(artifact.libraries),
            }
        )

    def release(self, header: dict[str, Any], buffers: list[memoryview], encoder: Any) -> Any:
        obj = self.objects.pop(header["h"], None)
        if obj is not None:
            self.handle_of.pop(id(obj), None)

    def echo(self, header: dict[str, Any], buffers: list[memoryview], encoder: Any) -> Any:
        return encoder.value(self.decode(header.get("v"), buffers))


class _Round:
    """Counts the measuring thread's involuntary context switches; optionally pauses the GC."""

    def __init__(self, keep_gc: bool) -> None:
        self.keep_gc = keep_gc
        self.switches = 0

    def __enter__(self) -> _Round:
        import gc
        import resource

        self._who = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)
        self._gc_was_on = gc.isenabled()
        if not self.keep_gc:
            gc.disable()
        self._before = resource.getrusage(self._who).ru_nivcsw
        return self

    def __exit__(self, *exc: object) -> None:
        import gc
        import resource

        self.switches = resource.getrusage(self._who).ru_nivcsw - self._before
        if self._gc_was_on:
            gc.enable()


def _library_versions() -> dict[str, str]:
    from importlib import metadata

    found: dict[str, str] = {}
    for names in REPORTED_LIBRARIES:
        for name in names:
            try:
                found[names[0]] = metadata.version(name)
                break
            except metadata.PackageNotFoundError:
                continue
    return found


if __name__ == "__main__":
    sys.exit(main())
