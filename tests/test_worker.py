"""The model worker: nothing a model does in its process can take down or fool the gate.

Hostile models from ``worker_models`` run in a real worker. Time bounds here are liveness bounds
(the deadline plus a generous margin), never performance figures.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import re
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import worker_models as wm

from deploy_gate.errors import SchemaError
from deploy_gate.worker import (
    ModelWorker,
    RemoteError,
    RemoteObject,
    WorkerConfig,
    WorkerDied,
    WorkerError,
    WorkerLimits,
    WorkerProtocolError,
    WorkerTimeout,
    codec,
)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the worker tests use /proc")

TESTS = Path(__file__).parent
ROW = {"a": 0.5, "b": 0.3}
FRAME = pd.DataFrame({"a": [0.5, -1.0, 2.0], "b": [0.3, 0.1, -4.0]})
#: Slack on top of a deadline for start-up and kill on a busy two-core machine.
MARGIN = 10.0


def config(**overrides: Any) -> WorkerConfig:
    settings: dict[str, Any] = {"sys_path": (str(TESTS),), "call_timeout": 60.0}
    settings.update(overrides)
    return WorkerConfig(**settings)


@contextlib.contextmanager
def deployed(
    tmp_path: Path, model: object, **overrides: Any
) -> Iterator[tuple[ModelWorker, RemoteObject]]:
    """A worker serving ``model`` through ``ModelDeployment``, loaded."""
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    with ModelWorker(config(**overrides)) as worker:
        deployment = worker.construct(
            "deploy_gate.deployment:ModelDeployment", [str(path)], {"trust": ["worker_models"]}
        )
        deployment.load_model()
        yield worker, deployment


def protected(worker: ModelWorker, what: str) -> None:
    info = worker.start()
    if not any(p.startswith(what) for p in info.protections):
        pytest.skip(f"no {what!r} on this machine: {'; '.join(info.warnings)}")


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != b"Z":
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return state[state.rindex(b")") + 2 :].split()[0] != b"Z"


# -- a healthy model ------------------------------------------------------------------------------


def test_a_healthy_model_answers_through_the_worker_as_it_does_in_process(tmp_path: Path) -> None:
    from deploy_gate.deployment import ModelDeployment

    path = tmp_path / "local.joblib"
    joblib.dump(wm.Healthy(), path)
    local = ModelDeployment(path, trust=["worker_models"])
    local.load_model()
    with deployed(tmp_path, wm.Healthy()) as (worker, remote):
        assert remote.is_loaded is True
        assert remote.predict_single(ROW) == local.predict_single(ROW)
        np.testing.assert_array_equal(remote.batch_predict(FRAME), local.batch_predict(FRAME))
        np.testing.assert_allclose(
            remote.batch_predict_proba(FRAME), local.batch_predict_proba(FRAME)
        )
        assert remote.feature_names == ("a", "b")
        assert remote.classes == (0, 1)
        assert remote.model_version.startswith("v_")
        assert remote.get_model_metadata()["feature_names"] == ["a", "b"]
        assert os.getpid() != worker.pid


def test_remote_tells_where_a_proxy_lives_and_the_worker_times_each_call(tmp_path: Path) -> None:
    from deploy_gate.worker import remote

    with deployed(tmp_path, wm.Healthy()) as (worker, deployment):
        where = remote(deployment)
        assert where is not None
        assert (where.worker, where.proxy, where.method) == (worker, deployment, None)
        assert where.type_name == "deploy_gate.deployment.ModelDeployment"
        method = remote(deployment.predict_single)
        assert method is not None
        assert (method.worker, method.handle, method.method) == (
            worker,
            where.handle,
            "predict_single",
        )
        assert remote(ROW) is None
        assert remote(ModelWorker) is None
        begin = time.perf_counter_ns()
        deployment.predict_single(ROW)
        wall = time.perf_counter_ns() - begin
        # The method's own time, as the worker measured it: part of the call's wall time here.
        assert worker.last_call_ns is not None
        assert 0 < worker.last_call_ns < wall
        worker.echo(1)
        assert worker.last_call_ns is None


def test_the_worker_reports_the_protections_in_force(tmp_path: Path) -> None:
    with ModelWorker(config()) as worker:
        info = worker.start()
        assert info.isolation == "sandbox"
        assert info.protections[0] == "process isolated"
        assert any(p.startswith("memory ") for p in info.protections)
        assert any(p.startswith("cpu ") for p in info.protections)
        if not info.warnings:  # everything available, as on this project's CI machines
            assert "network off" in info.protections
            assert f"writes confined to {worker.scratch}" in info.protections
        assert info.versions["numpy"] == np.__version__
    with ModelWorker(config(isolation="process")) as worker:
        info = worker.start()
        assert "network off" not in info.protections
        assert not any(p.startswith("writes confined") for p in info.protections)


# -- deaths ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "method", "message"),
    [
        (
            wm.ExitZero(),
            "predict_single",
            "model process exited with status 0 during predict_single",
        ),
        (wm.ExitOne(), "batch_predict", "model process exited with status 1 during batch_predict"),
        (wm.Segfault(), "predict_single", "model process killed by SIGSEGV during predict_single"),
    ],
    ids=["exit-0", "exit-1", "segfault"],
)
def test_a_dying_model_fails_the_call_naming_what_happened_and_the_worker_restarts(
    tmp_path: Path, model: object, method: str, message: str
) -> None:
    with deployed(tmp_path, model) as (worker, remote):
        first = worker.pid
        argument = ROW if method == "predict_single" else FRAME
        with pytest.raises(WorkerDied) as caught:
            getattr(remote, method)(argument)
        assert str(caught.value).splitlines()[0] == message
        assert worker.deaths == 1
        assert first is not None
        assert not alive(first)
        # The next request starts a new process and replays construction and load_model().
        assert remote.is_loaded is True
        assert worker.pid != first
        assert worker.starts == 2


def test_a_restart_asked_for_is_a_new_process_in_the_same_state_and_no_death(
    tmp_path: Path,
) -> None:
    with deployed(tmp_path, wm.DiesOnce()) as (worker, remote):
        assert remote.is_loaded is True
        first = worker.pid
        # Within a deadline far too short for a start-up: the restart has its own.
        with worker.deadline(0.001, "a check nearly out of time"):
            worker.restart("a test", timeout=60.0)
        assert worker.pid not in (None, first)
        assert first is not None
        assert not alive(first)
        assert (worker.starts, worker.deaths) == (2, 0)
        # Construction and load_model() were replayed: the same proxy serves at once.
        assert remote.is_loaded is True
        assert worker.starts == 2


def test_a_segfault_leaves_its_python_traceback_in_the_message(tmp_path: Path) -> None:
    with deployed(tmp_path, wm.Segfault()) as (_, remote), pytest.raises(WorkerDied) as caught:
        remote.predict_single(ROW)
    assert "Segmentation fault" in str(caught.value)
    assert "worker_models.py" in str(caught.value)


def test_a_model_that_dies_once_is_served_again_after_a_restart(tmp_path: Path) -> None:
    with deployed(tmp_path, wm.DiesOnce()) as (worker, remote):
        with pytest.raises(WorkerDied, match="exited with status 3 during predict_single"):
            remote.predict_single(ROW)
        assert remote.predict_single(ROW) == 1
        assert worker.starts == 2


def test_after_max_deaths_every_request_fails_fast_without_a_new_process() -> None:
    with ModelWorker(config(max_deaths=3)) as worker:
        model = worker.construct("worker_models:ExitOne")
        for _ in range(3):
            with pytest.raises(WorkerDied, match="exited with status 1 during predict"):
                model.predict(FRAME)
        starts = worker.starts
        begin = time.monotonic()
        with pytest.raises(WorkerDied) as caught:
            model.predict(FRAME)
        assert time.monotonic() - begin < 1.0
        assert str(caught.value) == (
            "model process died 3 times; not restarted (predict not run). "
            "Last: model process exited with status 1 during predict"
        )
        assert worker.starts == starts == 3


def test_a_worker_killed_from_outside_is_reported_and_replaced(tmp_path: Path) -> None:
    with ModelWorker(config()) as worker:
        echo = worker.construct("worker_models:Echo")
        echo.load_model()
        pid = worker.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(
            WorkerDied, match=r"^model process killed by SIGKILL during echo .*out of memory"
        ):
            echo.echo(1)
        assert echo.echo(2) == 2
        assert echo.prefix == "loaded"  # load_model() was replayed


def test_junk_written_on_the_channel_is_a_protocol_error_not_an_answer(tmp_path: Path) -> None:
    with deployed(tmp_path, wm.ChannelScribbler()) as (worker, remote):
        with pytest.raises(WorkerProtocolError, match="invalid answer during predict_single"):
            remote.predict_single(ROW)
        assert worker.deaths == 1


def test_what_the_model_prints_goes_to_the_log_not_the_channel(tmp_path: Path) -> None:
    with deployed(tmp_path, wm.Chatty()) as (worker, remote):
        assert remote.predict_single(ROW) == 1
        assert remote.predict_single(ROW) == 1
        assert worker.log_path is not None
        log = worker.log_path.read_text()
        assert "predicting!" in log
        assert "raw bytes on fd 1" in log
        assert "raw bytes on fd 2" in log


def test_sys_exit_in_a_model_is_an_error_of_the_call_not_a_death(tmp_path: Path) -> None:
    with deployed(tmp_path, wm.SysExit()) as (worker, remote):
        with pytest.raises(RemoteError) as caught:
            remote.predict_single(ROW)
        assert type(caught.value).__name__ == "SystemExit"
        assert worker.deaths == 0


# -- hangs and budgets ----------------------------------------------------------------------------


@pytest.mark.parametrize("model", [wm.SwallowingLoop(), wm.BlockedInC()], ids=["python", "in-c"])
def test_a_hanging_model_is_killed_at_the_call_deadline(tmp_path: Path, model: object) -> None:
    with deployed(tmp_path, model) as (worker, remote):
        pid = worker.pid
        begin = time.monotonic()
        with pytest.raises(WorkerTimeout) as caught:
            worker.call(remote, "predict_single", [ROW], timeout=2.0)
        assert time.monotonic() - begin < 2.0 + MARGIN
        assert (
            str(caught.value) == "model process did not answer predict_single within 2 s: killed it"
        )
        assert pid is not None
        assert not alive(pid)


def test_a_check_deadline_covers_every_call_inside_it(tmp_path: Path) -> None:
    with deployed(tmp_path, wm.SwallowingLoop()) as (worker, remote):
        begin = time.monotonic()
        with (
            pytest.raises(WorkerTimeout) as caught,
            worker.deadline(1.5, "check errors[nan-input]"),
        ):
            remote.batch_predict(FRAME)
        assert time.monotonic() - begin < 1.5 + MARGIN
        assert str(caught.value) == (
            "check errors[nan-input] did not finish within its 1.5 s deadline: "
            "killed the model process during batch_predict"
        )


def test_a_spent_budget_fails_every_later_request_at_once() -> None:
    with ModelWorker(config(budget_seconds=4.0)) as worker:
        loop = worker.construct("worker_models:SwallowingLoop")
        begin = time.monotonic()
        with pytest.raises(WorkerTimeout) as caught:
            loop.act()
        assert time.monotonic() - begin < 4.0 + MARGIN
        assert str(caught.value) == (
            "the 4 s time budget of the model process is spent: killed it during act; not restarted"
        )
        begin = time.monotonic()
        with pytest.raises(WorkerTimeout, match=r"budget .* is spent; reading is_loaded not run"):
            loop.is_loaded  # noqa: B018
        assert time.monotonic() - begin < 1.0
        assert worker.starts == 1


# -- launching ahead ------------------------------------------------------------------------------


def test_a_launched_worker_starts_and_prepares_before_its_first_request() -> None:
    with ModelWorker(config()) as worker:
        assert worker.launch("worker_models:prepare") is True
        pid = worker.pid
        assert pid is not None
        assert alive(pid)
        assert worker.info is None  # its hello is read by the next request, not awaited here
        probe = worker.construct("worker_models:Prepared")
        assert probe.runs() == [pid]
        assert worker.info is not None
        assert worker.info.pid == pid
        assert worker.launch("worker_models:prepare") is False  # running: nothing sent again
        assert probe.runs() == [pid]
        assert worker.starts == 1


def test_a_failed_preparation_is_raised_by_the_next_request_only() -> None:
    with ModelWorker(config()) as worker:
        worker.launch("worker_models:fails_to_prepare", "worker_models:prepare")
        with pytest.raises(LookupError, match="not ready"):
            worker.echo(1)
        assert worker.echo(2) == 2
        assert worker.construct("worker_models:Prepared").runs() == [worker.pid]
        assert worker.deaths == 0


@pytest.mark.parametrize(
    ("command", "error", "message"),
    [
        ("exit 0", WorkerDied, "^model process exited with status 0 during start-up"),
        ("exec sleep 60", WorkerTimeout, "^model process did not answer start-up within 2 s"),
    ],
)
def test_a_launched_worker_that_never_answers_fails_the_next_request(
    tmp_path: Path, command: str, error: type[BaseException], message: str
) -> None:
    script = tmp_path / "fake-python"
    script.write_text(f"#!/bin/sh\n{command}\n")
    script.chmod(0o755)
    with ModelWorker(config(python=str(script), start_timeout=2.0)) as worker:
        assert worker.launch("worker_models:prepare") is True
        begin = time.monotonic()
        with pytest.raises(error, match=message):
            worker.echo(1)
        assert time.monotonic() - begin < 2.0 + MARGIN
        assert worker.deaths == 1


def test_a_worker_gone_before_launch_could_write_is_reported_by_the_next_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "fake-python"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)

    def gone(*args: object) -> None:
        raise BrokenPipeError

    with ModelWorker(config(python=str(script), start_timeout=5.0)) as worker:
        with monkeypatch.context() as patch:
            patch.setattr(codec, "write_frame", gone)
            assert worker.launch("worker_models:prepare") is True
        with pytest.raises(
            WorkerDied, match=r"^model process exited with status 0 during start-up"
        ):
            worker.echo(1)


# -- limits ---------------------------------------------------------------------------------------


def test_a_20_gb_allocation_fails_cleanly_under_the_memory_limit(tmp_path: Path) -> None:
    with deployed(tmp_path, wm.MemoryBomb()) as (worker, remote):
        pid = worker.pid
        with pytest.raises(MemoryError, match=r"memory limit of the model process: \d"):
            remote.predict_single(ROW)
        assert worker.pid == pid  # a clean error: the same process serves on
        assert worker.deaths == 0


def test_a_model_past_its_cpu_limit_is_stopped_and_named() -> None:
    with ModelWorker(config(limits=WorkerLimits(cpu_seconds=2))) as worker:
        burner = worker.construct("worker_models:CpuBurner")
        begin = time.monotonic()
        with pytest.raises(WorkerDied) as caught:
            burner.act()
        assert time.monotonic() - begin < 2.0 + 5.0 + MARGIN
        assert str(caught.value).startswith(
            "model process exceeded its CPU time limit of 2 s (SIGXCPU) during act"
        )


def test_a_write_past_the_file_size_limit_fails_cleanly(tmp_path: Path) -> None:
    limits = WorkerLimits(file_size_bytes=1 << 20)
    with deployed(tmp_path, wm.ScratchWriter(2 << 20), limits=limits) as (worker, remote):
        with pytest.raises(OSError, match=r"File too large.*file size limit of the model process"):
            remote.predict_single(ROW)
        assert worker.deaths == 0


def test_a_fork_bomb_is_stopped_in_the_sandbox_and_leaves_no_process(tmp_path: Path) -> None:
    with deployed(tmp_path, wm.ForkBomb(1000)) as (worker, remote):
        pgid = worker.pid
        assert pgid is not None
        with pytest.raises(OSError, match=r"Resource temporarily unavailable|not permitted"):
            remote.predict_single(ROW)
        assert len(group_members(pgid)) <= 1 + 64
        worker.close()
        assert group_members(pgid) == []


def test_processes_a_model_starts_die_with_its_worker(tmp_path: Path) -> None:
    with deployed(tmp_path, wm.ForkBomb(20), isolation="process") as (worker, remote):
        pgid = worker.pid
        assert pgid is not None
        assert remote.predict_single(ROW) == 1
        assert len(group_members(pgid)) >= 21
        worker.close()
        deadline = time.monotonic() + MARGIN
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert group_members(pgid) == []


# -- the sandbox ----------------------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()


def _connections(server: socket.socket) -> int:
    count = 0
    with contextlib.suppress(BlockingIOError):
        while True:
            conn, _ = server.accept()
            conn.close()
            count += 1
    return count


def test_a_sandboxed_model_cannot_reach_the_network(
    tmp_path: Path, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    with deployed(tmp_path, wm.Connector("127.0.0.1", port)) as (worker, remote):
        protected(worker, "network off")
        with pytest.raises(OSError, match="sandboxed: no network"):
            remote.predict_single(ROW)
    assert _connections(listener) == 0


def test_without_the_sandbox_the_same_model_does_connect(
    tmp_path: Path, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    with deployed(tmp_path, wm.Connector("127.0.0.1", port), isolation="process") as (_, remote):
        assert remote.predict_single(ROW) == 1
    time.sleep(0.1)
    assert _connections(listener) == 1


def test_a_sandboxed_model_cannot_write_outside_its_scratch_folder(tmp_path: Path) -> None:
    outside = tmp_path / "checkout"
    outside.mkdir()
    canary = outside / "canary.txt"
    with deployed(tmp_path, wm.CanaryWriter(str(canary))) as (worker, remote):
        protected(worker, "writes confined")
        with pytest.raises(PermissionError, match=f"writes only under {worker.scratch}"):
            remote.predict_single(ROW)
    assert not canary.exists()
    with deployed(tmp_path, wm.CanaryWriter(str(canary)), isolation="process") as (_, remote):
        remote.predict_single(ROW)
    assert canary.exists()  # the same model does write when not sandboxed


def test_a_sandboxed_model_may_write_in_its_scratch_folder(tmp_path: Path) -> None:
    with deployed(tmp_path, wm.ScratchWriter(1000)) as (worker, remote):
        assert remote.predict_single(ROW) == 1
        assert worker.scratch is not None
        assert (worker.scratch / "blob.bin").stat().st_size == 1000


def test_a_sandboxed_model_cannot_signal_the_gate(tmp_path: Path) -> None:
    with deployed(tmp_path, wm.SignalsParent()) as (worker, remote):
        protected(worker, "gate process shielded")
        with pytest.raises(PermissionError):
            remote.predict_single(ROW)
    with deployed(tmp_path, wm.SignalsParent(), isolation="process") as (_, remote):
        assert remote.predict_single(ROW) == 1


# -- exceptions -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raiser() -> Iterator[RemoteObject]:
    with ModelWorker(config()) as worker:
        yield worker.construct("worker_models:Raiser")


def test_builtin_errors_come_back_as_themselves(raiser: RemoteObject) -> None:
    with pytest.raises(ValueError, match=r"^bad value$") as caught:
        raiser.boom("ValueError", "bad value")
    assert type(caught.value) is ValueError
    with pytest.raises(KeyError) as key_error:
        raiser.boom("KeyError", "colour")
    assert type(key_error.value) is KeyError
    assert str(key_error.value) == "'colour'"
    with pytest.raises(FileNotFoundError) as missing:
        raiser.boom("OSError", "/no/such/model.joblib")
    assert missing.value.errno == 2
    assert missing.value.filename == "/no/such/model.joblib"


def test_deploy_gate_errors_come_back_as_themselves(raiser: RemoteObject) -> None:
    with pytest.raises(SchemaError) as caught:
        raiser.boom("Schema", "unknown feature(s) 'zzz'")
    assert type(caught.value) is SchemaError
    assert str(caught.value) == "unknown feature(s) 'zzz'"


def test_other_errors_keep_their_name_message_and_builtin_bases(raiser: RemoteObject) -> None:
    with pytest.raises(ValueError, match="call fit first") as caught:
        raiser.boom("NotFitted", "call fit first")
    error = caught.value
    assert isinstance(error, RemoteError)
    assert isinstance(error, AttributeError)
    assert type(error).__name__ == "NotFittedError"
    assert error.remote_type == "sklearn.exceptions.NotFittedError"  # type: ignore[attr-defined]
    with pytest.raises(LookupError) as custom:
        raiser.boom("Custom", "not found")
    assert isinstance(custom.value, RemoteError)
    assert type(custom.value).__name__ == "CustomError"


def test_messages_from_the_worker_are_cleaned_and_capped(raiser: RemoteObject) -> None:
    hostile = "\x1b[2J\x1b[31mred\r\x00 alert\u202e" + "x" * 10_000
    with pytest.raises(ValueError, match="red alert") as caught:
        raiser.boom("Custom-less", hostile)
    text = str(caught.value)
    assert "\x1b" not in text
    assert "\x00" not in text
    assert "\u202e" not in text
    assert "\r" not in text
    assert len(text) <= codec.MAX_MESSAGE_CHARS
    assert "more characters" in text


def test_a_worker_error_is_never_a_models_clear_error() -> None:
    for cls in (WorkerError, WorkerDied, WorkerTimeout, WorkerProtocolError):
        assert not issubclass(cls, Exception)
        assert not issubclass(cls, (ValueError, KeyError))
    assert issubclass(WorkerDied, WorkerError)


# -- the codec ------------------------------------------------------------------------------------


def _round_trip(value: Any) -> Any:
    encoder = codec.Encoder()
    header = {"v": encoder.value(value)}
    chunks = codec.pack_frame(header, encoder.buffers)
    read, write = os.pipe()
    try:
        reader = codec.FrameReader(read)
        for chunk in chunks:
            os.write(write, bytes(chunk))
        got, buffers = reader.read()
    finally:
        os.close(read)
        os.close(write)
    return codec.Decoder(buffers).value(got["v"])


def mixed_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "num": [1.5, np.nan, -0.0, np.inf],
            "count": np.array([1, 2, 3, 4], dtype=np.int32),
            "flag": [True, False, True, False],
            "colour": pd.Categorical(["red", None, "blue", "red"], categories=["red", "blue"]),
            "level": pd.Categorical(["lo", "hi", "hi", "lo"], ordered=True),
            "note": pd.Series(["x", None, np.nan, "y"], dtype=object),
            "city": pd.array(["Oslo", None, "Rome", "Lima"], dtype="string"),
            "label": pd.Series(["a", None, "c", "d"], dtype="str"),
            "maybe": pd.array([1, None, 3, 4], dtype="Int64"),
            "when": pd.to_datetime(["2024-01-01", None, "2024-03-01", "2024-04-01"]),
            "zoned": pd.to_datetime(["2024-01-01"] * 4).tz_localize("Europe/Oslo"),
            3: [0.1, 0.2, 0.3, 0.4],
        }
    )[
        [
            "colour",
            "num",
            "count",
            "flag",
            "level",
            "note",
            "city",
            "label",
            "maybe",
            "when",
            "zoned",
            3,
        ]
    ]


def test_the_codec_round_trips_frames_with_categoricals_nan_none_and_strings_exactly() -> None:
    frame = mixed_frame()
    out = _round_trip(frame)
    pd.testing.assert_frame_equal(out, frame)
    assert list(out.columns) == list(frame.columns)
    assert out["note"].iloc[1] is None
    assert math.isnan(out["note"].iloc[2])
    assert math.copysign(1.0, out["num"].iloc[2]) == -1.0
    pd.testing.assert_series_equal(_round_trip(frame["colour"]), frame["colour"])
    sliced = frame.iloc[[2, 0]]
    pd.testing.assert_frame_equal(_round_trip(sliced), sliced)


def test_the_codec_round_trips_arrays_scalars_and_containers() -> None:
    value = {
        "floats": np.array([[1.0, np.nan], [np.inf, -np.inf]], dtype=np.float32),
        "times": np.array(["2024-01-01T00:00", "NaT"], dtype="datetime64[ns]"),
        "labels": np.array(["yes", "no"]),
        "objects": np.array(["a", None, 3, np.nan], dtype=object),
        "empty": np.empty((0, 3)),
        "fortran": np.asfortranarray(np.arange(6).reshape(2, 3)),
        "scalars": [np.float32(0.5), np.int64(-3), np.bool_(True), np.datetime64("2024-01-01")],
        "tuple": (1, "two", None),
        "tagged": {"$t": "nd", "other": 1},
        "keys": {0: "zero", ("a", 1): "pair"},
        "plain": [float("nan"), float("inf"), -0.0, 10**30, True],
        "bytes": b"\x00\x01",
        "na": [pd.NA, pd.NaT],
    }
    out = _round_trip(value)
    for key in ("floats", "times", "labels", "empty", "fortran"):
        np.testing.assert_array_equal(out[key], value[key])
        assert out[key].dtype == value[key].dtype
    assert out["objects"].dtype == object
    assert out["objects"][1] is None
    assert math.isnan(out["objects"][3])
    assert [type(x) for x in out["scalars"]] == [type(x) for x in value["scalars"]]
    assert out["scalars"] == value["scalars"]
    assert out["tuple"] == (1, "two", None)
    assert out["tagged"] == {"$t": "nd", "other": 1}
    assert out["keys"] == {0: "zero", ("a", 1): "pair"}
    assert math.isnan(out["plain"][0])
    assert out["plain"][1:] == [math.inf, -0.0, 10**30, True]
    assert math.copysign(1.0, out["plain"][2]) == -1.0
    assert out["bytes"] == b"\x00\x01"
    assert out["na"][0] is pd.NA
    assert out["na"][1] is pd.NaT


def test_decimals_dates_times_and_zoned_timestamps_cross_as_data() -> None:
    # What Parquet DECIMAL, DATE and TIME columns hold in pandas (object columns of these
    # values), and a tz-aware timestamp in a single row: a healthy pipeline that drops such a
    # column failed 23 checks with "decimal.Decimal has no data-only encoding" in the worker.
    import datetime
    import decimal
    import zoneinfo

    paris = zoneinfo.ZoneInfo("Europe/Paris")
    value = [
        decimal.Decimal("12.3400"),
        datetime.date(2024, 2, 29),
        datetime.datetime(2024, 1, 2, 3, 4, 5, 678),
        datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
        datetime.datetime(2024, 7, 2, 3, 4, 5, tzinfo=paris),
        datetime.time(12, 30, 1, 5),
        pd.Timestamp("2024-03-01 10:00", tz="America/New_York"),
    ]
    out = _round_trip(value)
    assert out == value
    assert [type(x) for x in out] == [type(x) for x in value]
    assert out[4].tzinfo == paris  # the zone by name, not only its summer offset
    frame = pd.DataFrame(
        {"price": [decimal.Decimal("1.50"), None], "day": [datetime.date(2020, 1, 1), None]}
    )
    pd.testing.assert_frame_equal(_round_trip(frame), frame)


def test_array_subclasses_cross_as_their_data() -> None:
    # A model returning a masked array crashed the worker's encoder (its buffer holds more than
    # its elements), and the gate reported that as the model's failure in another check.
    labels = np.ma.MaskedArray(np.arange(200), mask=False)
    np.testing.assert_array_equal(_round_trip(labels), np.arange(200))
    gaps = _round_trip(np.ma.MaskedArray([1.0, 2.0, 3.0], mask=[0, 1, 0]))
    assert type(gaps) is np.ndarray
    assert [gaps[0], gaps[2]] == [1.0, 3.0]
    assert math.isnan(gaps[1])
    assert list(_round_trip(np.ma.MaskedArray([1, 2, 3], mask=[0, 1, 0]))) == [1, None, 3]
    with pytest.warns(PendingDeprecationWarning):
        old_style = np.matrix([[1, 2], [3, 4]])
    matrix = _round_trip(old_style)
    assert type(matrix) is np.ndarray
    np.testing.assert_array_equal(matrix, [[1, 2], [3, 4]])


def test_a_malformed_date_in_a_frame_is_a_frame_error() -> None:
    from deploy_gate.worker import codec

    decoder = codec.Decoder([], lambda ref: ref)
    for bad in (
        {"$t": "date", "v": "2024-02-30"},
        {"$t": "dec", "v": "twelve"},
        {"$t": "dtm", "v": "2024-01-01T00:00", "z": "../../etc/passwd"},
        {"$t": "dtm", "v": "2024-01-01T00:00", "z": "No/Such_Zone"},
    ):
        with pytest.raises(codec.FrameError):
            decoder.value(bad)


def test_numbers_json_cannot_hold_cross_as_data() -> None:
    # A long double's item() is a long double again, and Python's complex is no JSON number:
    # the first crashed the worker's encoder, the second came back as a remote object.
    value = [np.longdouble(1.25), np.clongdouble(1 + 2j), 1.5 - 0.5j, np.complex64(3j)]
    out = _round_trip(value)
    assert [type(x) for x in out] == [np.longdouble, np.clongdouble, np.complex128, np.complex64]
    assert out == [np.longdouble(1.25), np.clongdouble(1 + 2j), 1.5 - 0.5j, np.complex64(3j)]


def test_values_cross_a_real_worker_unchanged_both_ways() -> None:
    frame = mixed_frame()
    with ModelWorker(config()) as worker:
        echo = worker.construct("worker_models:Echo")
        pd.testing.assert_frame_equal(echo.echo(frame), frame)
        assert echo.echo(ROW) == ROW
        big = np.random.default_rng(0).standard_normal((500, 1000))
        np.testing.assert_array_equal(echo.echo(big), big)


def test_objects_without_a_data_encoding_stay_in_the_worker_as_proxies() -> None:
    with ModelWorker(config()) as worker:
        echo = worker.construct("worker_models:Echo")
        inner = echo.opaque()
        assert isinstance(inner, RemoteObject)
        assert inner.prefix == "inner"
        assert inner.echo(5) == 5
        assert echo.echo(inner) is not None  # a proxy goes back as the object itself
        with pytest.raises(TypeError, match="no data-only encoding"):
            echo.echo(object())


def test_an_answer_carrying_a_pickled_array_is_refused_and_never_unpickled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the gate unpickled something from the worker")

    payload = pickle.dumps(np.array([{"a": 1}, None], dtype=object))
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    for dtype in ("|O", "O", "[('a', 'O')]", "|V8"):
        value = {"$t": "nd", "d": dtype, "s": [2], "b": 0}
        with pytest.raises(codec.FrameError, match="not allowed"):
            codec.Decoder([memoryview(payload)]).value(value)


def test_a_worker_answering_with_a_pickled_array_is_a_protocol_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: a fake worker that answers every request with a pickled object array."""
    script = tmp_path / "fake-python"
    script.write_text(
        f"#!/bin/sh\nexec {sys.executable} -c 'import worker_models; worker_models.forge()'\n"
    )
    script.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    monkeypatch.setattr(pickle, "loads", lambda *a: pytest.fail("unpickled"))
    with ModelWorker(config(python=str(script), env=env)) as worker:
        with pytest.raises(WorkerProtocolError, match=re.escape("dtype '|O' not allowed")):
            worker.echo(1)
        assert worker.deaths == 1


def test_the_reader_refuses_oversized_and_malformed_frames_before_allocating() -> None:
    cases = {
        "exceeds the 1000 byte limit": struct.pack("<4sII", b"DGW1", 10, 1)
        + struct.pack("<Q", 1 << 40),
        "not a frame": b"HTTP/1.1 200 OK\r\n\r\n",
        "exceeds the limits": struct.pack("<4sII", b"DGW1", 1 << 31, 0),
        "not valid JSON": struct.pack("<4sII", b"DGW1", 5, 0) + b"{nope",
    }
    for message, data in cases.items():
        read, write = os.pipe()
        try:
            os.write(write, data)
            reader = codec.FrameReader(read, max_frame_bytes=1000)
            with pytest.raises(codec.FrameError, match=message):
                reader.read(time.monotonic() + 5)
        finally:
            os.close(read)
            os.close(write)
    shape_lie = {"$t": "nd", "d": "<f8", "s": [1000, 1000], "b": 0}
    with pytest.raises(codec.FrameError, match="needs 8000000 bytes, the frame has 16"):
        codec.Decoder([memoryview(bytes(16))]).value(shape_lie)
    nested: Any = 1
    for _ in range(200):
        nested = [nested]
    with pytest.raises(codec.FrameError, match="nested too deeply"):
        codec.Decoder([]).value(nested)


# -- latency and the rest of the API --------------------------------------------------------------


def test_calls_are_timed_inside_the_worker_from_stored_inputs() -> None:
    with ModelWorker(config()) as worker:
        first = worker.construct("worker_models:Echo")
        second = worker.construct("worker_models:Echo")
        worker.put_inputs("rows", [ROW, {"a": -1.0, "b": 0.0}])
        timed = worker.time_calls(first, "echo", "rows", 50, start=1)
        assert timed.durations_ns.dtype == np.float64
        assert timed.durations_ns.shape == (50,)
        assert (timed.durations_ns > 0).all()
        assert timed.durations_ns.sum() <= timed.wall_ns
        assert first.calls == 50
        pairs = worker.time_pairs(first, second, "echo", "rows", 20, gc=False)
        assert pairs.first_ns.shape == pairs.second_ns.shape == (20,)
        assert second.calls == 20
        worker.set_threads(1)
        worker.set_threads(None)


def test_inputs_and_thread_limits_survive_a_restart() -> None:
    with ModelWorker(config()) as worker:
        echo = worker.construct("worker_models:Echo")
        worker.put_inputs("rows", [ROW])
        worker.set_threads(1)
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        with pytest.raises(WorkerDied):
            worker.time_calls(echo, "echo", "rows", 5)
        assert worker.time_calls(echo, "echo", "rows", 5).durations_ns.shape == (5,)


def test_describe_gives_a_loaded_deployments_artifact_as_plain_data(tmp_path: Path) -> None:
    from deploy_gate.artifact import ModelProfile

    with deployed(tmp_path, wm.Healthy()) as (worker, remote):
        described = worker.describe(remote)
        assert described["loader"]
        assert len(described["sha256"]) == 64
        profile = ModelProfile(**described["profile"])
        assert profile.feature_names == ("a", "b")
        assert profile.classes == (0, 1)
        fresh = worker.construct(
            "deploy_gate.deployment:ModelDeployment", [str(tmp_path / "model.joblib")]
        )
        assert worker.describe(fresh) is None


def test_closing_a_worker_kills_it_and_removes_its_scratch_folder() -> None:
    worker = ModelWorker(config())
    worker.start()
    pid, scratch = worker.pid, worker.scratch
    assert pid is not None
    assert scratch is not None
    assert scratch.is_dir()
    worker.close()
    assert not alive(pid)
    assert not scratch.exists()
    with pytest.raises(WorkerDied, match="closed"):
        worker.echo(1)


def test_an_interpreter_that_cannot_run_the_worker_is_named() -> None:
    missing = "cannot start the model process with /no/such/python"
    with (
        ModelWorker(config(python="/no/such/python")) as worker,
        pytest.raises(WorkerDied, match=missing),
    ):
        worker.start()
    system = Path("/usr/bin/python3")
    if not system.exists():
        pytest.skip("no system python without deploy_gate")
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONNOUSERSITE": "1"}
    with (
        ModelWorker(config(python=str(system), env=env)) as worker,
        pytest.raises(WorkerDied) as caught,
    ):
        worker.start()
    message = str(caught.value)
    assert message.startswith("model process exited with status 1 during start-up")
    assert "No module named" in message


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="placement needs sched_setaffinity and two CPUs",
)
def test_a_worker_on_one_cpu_keeps_every_thread_the_model_starts_there(tmp_path: Path) -> None:
    cpu = max(os.sched_getaffinity(0))
    with ModelWorker(config(cpus=(cpu,))) as worker:
        worker.construct("worker_models:StartsAThread")  # a thread started after the start-up
        tids = os.listdir(f"/proc/{worker.pid}/task")
        assert len(tids) >= 2
        assert {frozenset(os.sched_getaffinity(int(tid))) for tid in tids} == {frozenset({cpu})}
        before = os.sched_getaffinity(0)
        with worker.colocated():
            assert os.sched_getaffinity(0) == {cpu}
            assert worker.echo(7) == 7
        assert os.sched_getaffinity(0) == before


def test_cpus_must_be_cpu_numbers() -> None:
    with pytest.raises(ValueError, match="cpus"):
        WorkerConfig(cpus=())
    with pytest.raises(ValueError, match="cpus"):
        WorkerConfig(cpus=(-1,))


def test_spin_seconds_must_be_zero_to_one_second() -> None:
    for name in ("spin_seconds", "worker_spin_seconds"):
        for bad in (-0.001, 2.0, float("nan"), "0.1"):
            with pytest.raises(ValueError, match=name):
                WorkerConfig(**{name: bad})


@pytest.mark.parametrize("delay", [0.0, 0.0005, 0.05], ids=["at-once", "while-polling", "later"])
def test_a_frame_is_read_whether_it_comes_while_the_reader_polls_or_after(delay: float) -> None:
    read, write = os.pipe()
    os.set_blocking(read, False)
    chunks = codec.pack_frame({"v": [1, "two"]})
    writer = threading.Timer(delay, lambda: os.write(write, bytes(chunks[0])))
    try:
        reader = codec.FrameReader(read)
        writer.start()
        header, buffers = reader.read(time.monotonic() + 30, spin_seconds=0.002)
        assert header == {"v": [1, "two"]}
        assert buffers == []
    finally:
        writer.join()
        os.close(read)
        os.close(write)


def test_a_peer_that_closes_while_the_reader_polls_is_end_of_file_not_a_timeout() -> None:
    read, write = os.pipe()
    os.set_blocking(read, False)
    closer = threading.Timer(0.0005, os.close, (write,))
    try:
        reader = codec.FrameReader(read)
        closer.start()
        with pytest.raises(EOFError):
            reader.read(time.monotonic() + 30, spin_seconds=0.002)
    finally:
        closer.join()
        os.close(read)


@pytest.mark.parametrize("spin", [0.0, 0.002], ids=["sleeping", "polling"])
def test_answers_are_the_same_whether_the_two_sides_poll_or_sleep(spin: float) -> None:
    with ModelWorker(config(spin_seconds=spin, worker_spin_seconds=spin / 2)) as worker:
        table = worker.construct("builtins:dict", [{"a": 1}])
        assert [table.get("a") for _ in range(50)] == [1] * 50
        assert worker.echo({"x": [1.5, None]}) == {"x": [1.5, None]}


def test_a_reader_whose_cpu_is_wanted_stops_polling_and_sleeps_for_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each yield of the CPU takes 1 ms, as when another process runs in the meantime: polling
    # would take that process's time, so the reader gives up and sleeps at once for a while.
    yields: list[float] = []

    def busy_elsewhere() -> None:
        yields.append(time.perf_counter())
        time.sleep(0.001)

    monkeypatch.setattr(codec.os, "sched_yield", busy_elsewhere)
    read, write = os.pipe()
    os.set_blocking(read, False)
    try:
        reader = codec.FrameReader(read)
        os.write(write, bytes(codec.pack_frame({"n": 1})[0]))
        reader._spin(0.05)  # data waiting: no yield at all
        assert yields == []
        assert reader.read(time.monotonic() + 30) == ({"n": 1}, [])
        reader._spin(0.05)  # nothing to read, and the CPU is wanted: gives up early
        assert 1 <= len(yields) < 10
        given_up = len(yields)
        reader._spin(0.05)  # within the back-off: no polling at all
        assert len(yields) == given_up
    finally:
        os.close(read)
        os.close(write)


@pytest.fixture
def empty_pipe() -> Iterator[int]:
    """The non-blocking read end of a pipe nothing is written to."""
    read, write = os.pipe()
    os.set_blocking(read, False)
    yield read
    os.close(read)
    os.close(write)


def test_a_lasting_contention_keeps_the_reader_asleep_longer_and_a_free_cpu_brings_it_back(
    monkeypatch: pytest.MonkeyPatch, empty_pipe: int
) -> None:
    shortest, longest = codec.SPIN_BACK_OFF
    # Each yield of the CPU takes 1 ms, as when another process runs meanwhile.
    monkeypatch.setattr(codec.os, "sched_yield", lambda: time.sleep(0.001))
    reader = codec.FrameReader(empty_pipe)
    sleeps = []
    for _ in range(10):  # each time the reader polls again, the CPU is still wanted
        reader._busy_until = 0.0  # as if the back-off had passed
        reader._spin(0.05)
        sleeps.append(reader._back_off)
    assert sleeps[:3] == [shortest, 2 * shortest, 4 * shortest]
    assert sleeps[-1] == longest
    # The CPU is free again: polling that finds no one else running calms it down step by step.
    monkeypatch.setattr(codec.os, "sched_yield", lambda: None)
    calmer = []
    while reader._back_off:
        reader._busy_until = 0.0
        reader._spin(codec.SPIN_WINDOW)
        calmer.append(reader._back_off)
    assert calmer[0] == longest / 2 or (len(calmer) > 1 and calmer[1] == longest / 2)
    assert len(calmer) < 30


def test_contention_is_judged_over_the_polling_of_several_short_reads(
    monkeypatch: pytest.MonkeyPatch, empty_pipe: int
) -> None:
    # Each read polls for 100 us, each yield losing 50 us: no single read's polling loses the
    # 200 us that show contention, but a few together do.
    def busy_elsewhere() -> None:
        end = time.perf_counter() + 50e-6
        while time.perf_counter() < end:
            pass

    monkeypatch.setattr(codec.os, "sched_yield", busy_elsewhere)
    seen = []
    for _ in range(5):  # a busy machine may take this CPU inside the first read's polling too
        reader = codec.FrameReader(empty_pipe)
        reader._spin(100e-6)
        alone = reader._busy_until
        for _ in range(3):
            reader._spin(100e-6)
        seen.append((alone, reader._busy_until, reader._back_off))
        if alone == 0.0:
            break
    alone, after, back_off = seen[-1]
    assert alone == 0.0, seen
    assert after > 0.0
    assert back_off == codec.SPIN_BACK_OFF[0]


def test_the_worker_reader_parses_its_last_small_header_again_while_it_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed: list[bytes] = []
    loads = codec._loads

    def counting(raw: bytes) -> Any:
        parsed.append(bytes(raw))
        return loads(raw)

    monkeypatch.setattr(codec, "_loads", counting)
    read, write = os.pipe()
    os.set_blocking(read, False)
    try:
        cases = ((True, False, True), (True, True, False), (False, False, False))
        for rehearse, big, again in cases:
            reader = codec.FrameReader(read, rehearse=rehearse)
            header = {"op": "call", "a": ["x" * (5000 if big else 10)]}
            os.write(write, bytes(codec.pack_frame(header)[0]))
            assert reader.read(time.monotonic() + 30) == (header, [])
            parsed.clear()
            reader._spin(0.0005)  # nothing comes
            assert len(parsed) == again
            assert all(loads(raw) == header for raw in parsed)
    finally:
        os.close(read)
        os.close(write)


@pytest.mark.parametrize(
    "value",
    [
        {"id": 7, "r": 1.5, "ns": 10},
        {"x": [float("nan"), float("inf"), -float("inf"), -0.0, 1e-320]},
        {"s": 'é "quoted" \\ \n \u2028 \x00', "k": {"nested": [None, True, False, []]}},
        {"big": 2**70, "neg": -(2**63)},
    ],
    ids=["reply", "special-floats", "text", "big-ints"],
)
def test_frame_headers_read_back_as_the_json_module_writes_and_reads_them(value: Any) -> None:
    text = codec._dumps(value)
    reference = json.dumps(value, ensure_ascii=True, allow_nan=True, separators=(",", ":"))
    assert text == reference
    again = codec._loads(text.encode("ascii") + b"   ")  # the blanks that align buffers
    assert json.dumps(again, allow_nan=True) == json.dumps(value, allow_nan=True)


@pytest.mark.parametrize(
    "raw", [b'{"a":1} x', b'{"a":1}{"b":2}', '{"a":"é"}'.encode(), b" {}", b""]
)
def test_a_header_with_extra_data_or_not_ascii_is_refused(raw: bytes, empty_pipe: int) -> None:
    reader = codec.FrameReader(empty_pipe)
    reader._pending += codec._PREFIX.pack(codec.MAGIC, len(raw), 0) + raw
    with pytest.raises(codec.FrameError, match="not valid JSON"):
        reader.read(time.monotonic() + 30)


def test_arguments_that_look_like_tags_arrive_as_they_were_sent() -> None:
    # Plain arguments skip decoding in the worker; text or keys that look like the codec's
    # tags must not be taken for them, nor make a tagged argument arrive undecoded.
    with ModelWorker(config()) as worker:
        table = worker.construct("builtins:dict", [{}])
        odd = {"$t": "tuple", "v": [1, 2]}
        assert table.get("missing", odd) == odd
        assert table.get("missing", '"$t"') == '"$t"'
        assert table.get("missing", {"k": '{"$t":"tuple","v":[1]}'}) == {
            "k": '{"$t":"tuple","v":[1]}'
        }
        assert table.get("missing", (1, "$t")) == (1, "$t")
        assert table.get("missing", [np.int8(3)]) == [np.int8(3)]
        assert type(table.get("missing", [np.int8(3)])[0]) is np.int8


def _encoded_and_back(value: Any) -> Any:
    """``value`` encoded and decoded in memory (no pipe: a large frame would fill it)."""
    encoder = codec.Encoder()
    header = json.loads(json.dumps(encoder.value(value)))
    return codec.Decoder([memoryview(bytes(b)) for b in encoder.buffers]).value(header)


@pytest.mark.parametrize("rows", [1, 3, 5000])
def test_wide_frames_cross_whole_small_ones_with_each_dtype_block_together(rows: int) -> None:
    # Small frames go by dtype block (a Series per column made one row of 300 features 20 ms
    # each way); large ones column by column. Both come back as they were.
    rng = np.random.default_rng(rows)
    wide = pd.DataFrame(rng.normal(size=(rows, 300)), columns=[f"f{i}" for i in range(300)])
    pd.testing.assert_frame_equal(_encoded_and_back(wide), wide)
    mixed = wide.iloc[:, :5].assign(
        n=np.arange(rows, dtype=np.int32),
        when=pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(rows), unit="h"),
        plan=pd.Categorical(["a", "b", "a"] * (rows // 3) + ["a"] * (rows % 3)),
        city=np.array(["x"] * rows, dtype=object),
        f1_again=wide["f1"],
    )
    mixed.insert(2, "k", np.arange(rows, dtype=np.int64))
    pd.testing.assert_frame_equal(_encoded_and_back(mixed), mixed)
    pd.testing.assert_frame_equal(_round_trip(wide.iloc[[0]]), wide.iloc[[0]])
