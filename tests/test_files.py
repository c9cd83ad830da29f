"""Every file the gate writes is replaced in one step: readers see the old or the new one."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import IO, Any

import pytest

from deploy_gate.files import write_atomic


def test_text_bytes_and_writers_replace_the_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "gate.xml"  # the folder is created
    write_atomic(target, "first\n")
    assert target.read_text() == "first\n"
    write_atomic(target, b"\x00second")
    assert target.read_bytes() == b"\x00second"
    write_atomic(target, lambda f: f.write(b"third"))
    assert target.read_bytes() == b"third"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # shared, not mkstemp's 0600
    assert [p.name for p in target.parent.iterdir()] == ["gate.xml"]


def test_a_writer_that_fails_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "profile.json"
    target.write_text("old")

    def half_then_crash(f: IO[Any]) -> None:
        f.write(b"half of the new")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, half_then_crash)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["profile.json"]


def test_the_reports_and_profiles_are_written_through_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import deploy_gate.files

    written: list[str] = []
    real = deploy_gate.files.write_atomic

    def spy(path: Any, content: Any, **kwargs: Any) -> Path:
        written.append(Path(path).name)
        return real(path, content, **kwargs)

    monkeypatch.setattr(deploy_gate.files, "write_atomic", spy)
    from deploy_gate.latency import write_benchmark_json

    write_benchmark_json(tmp_path / "bench.json", [])
    assert written == ["bench.json"]
