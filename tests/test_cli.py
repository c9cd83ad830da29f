"""The ``deploy-gate ledger`` command line: tables, JSON and exit statuses."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from deploy_gate.cli import main
from deploy_gate.ledger import Ledger, LedgerEntry

T0 = datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone.utc)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, LedgerEntry]:
    """A project directory whose ledger recorded a.joblib, b.joblib, then a.joblib again."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.joblib").write_bytes(b"model a")
    (tmp_path / "b.joblib").write_bytes(b"model b")
    ledger = Ledger("deployments.jsonl")
    recorded = {}
    for minute, (name, path) in enumerate(
        [("a", "a.joblib"), ("b", "b.joblib"), ("a2", "a.joblib")]
    ):
        recorded[name] = ledger.record(
            LedgerEntry.create(path, when=T0 + timedelta(minutes=minute), git_cwd=tmp_path)
        )
    return recorded


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_list_prints_a_table_newest_first_marking_current_and_previous(
    project: dict[str, LedgerEntry], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "ledger", "list")
    header, *rows = out.splitlines()
    assert status == 0
    assert header.split()[:2] == ["VERSION", "RECORDED"]
    assert [row.split()[0] for row in rows] == ["current", "previous", project["a"].version]
    assert rows[0].split()[1] == project["a2"].version
    assert rows[1].split()[1] == project["b"].version
    assert rows[0].split()[2] == "2025-03-04T05:08:07Z"
    assert rows[0].endswith("a.joblib")


def test_list_json_gives_every_entry_newest_first(
    project: dict[str, LedgerEntry], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "ledger", "list", "--json")
    assert status == 0
    assert [e["version"] for e in json.loads(out)] == [
        project["a2"].version,
        project["b"].version,
        project["a"].version,
    ]


@pytest.mark.parametrize(("action", "expected"), [("current", "a2"), ("previous", "b")])
def test_current_and_previous_print_the_entry_as_json_for_scripts(
    project: dict[str, LedgerEntry],
    capsys: pytest.CaptureFixture[str],
    action: str,
    expected: str,
) -> None:
    status, out, _ = run(capsys, "ledger", action, "--json")
    assert status == 0
    assert LedgerEntry.from_dict(json.loads(out)) == project[expected]


def test_show_prints_every_field_of_one_version(
    project: dict[str, LedgerEntry], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "ledger", "show", project["b"].version)
    fields = dict(line.split(None, 1) for line in out.splitlines())
    assert status == 0
    assert fields["sha256"] == project["b"].sha256
    assert fields["path"] == "b.joblib"
    assert set(fields) == set(project["b"].to_dict())


def test_show_of_an_unknown_version_exits_1_naming_it_and_the_ledger(
    project: dict[str, LedgerEntry], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "ledger", "show", "v_19990101T000000Z_00000000")
    assert (status, out) == (1, "")
    assert "v_19990101T000000Z_00000000 is not recorded in deployments.jsonl" in err


def test_verify_answers_whether_a_file_matches_a_recorded_version(
    project: dict[str, LedgerEntry], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, out, _ = run(capsys, "ledger", "verify", "b.joblib")
    assert status == 0
    assert out.splitlines()[0] == f"b.joblib matches {project['b'].version}"

    (tmp_path / "c.joblib").write_bytes(b"model c")
    status, out, err = run(capsys, "ledger", "verify", "c.joblib", "--json")
    assert (status, out) == (1, "")
    assert "c.joblib (sha256 " in err
    assert "matches no recorded version" in err


def _tamper(line_number: int, **changes: object) -> None:
    path = Path("deployments.jsonl")
    lines = path.read_text().splitlines()
    data = json.loads(lines[line_number - 1])
    data.update(changes)
    lines[line_number - 1] = json.dumps(data)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"version": "v_20250304T050707Z_0badf00d"}, "version"),
        ({"version": "v_20250304T050000Z_{prefix}"}, "version"),
        ({"size": 12345}, "size"),
        ({"recorded_at": "2025-03-04 05:07"}, "recorded_at"),
    ],
)
def test_verify_fails_naming_the_field_and_line_that_contradict_the_file(
    project: dict[str, LedgerEntry],
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, object],
    field: str,
) -> None:
    prefix = project["b"].sha256[:8]
    _tamper(
        2, **{k: v.format(prefix=prefix) if isinstance(v, str) else v for k, v in changes.items()}
    )
    status, out, err = run(capsys, "ledger", "verify", "b.joblib")
    assert status == 1, (out, err)
    assert out == ""
    assert f"deployments.jsonl:2: {field}: " in err


def test_verify_without_a_file_checks_every_line_of_the_ledger(
    project: dict[str, LedgerEntry], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "ledger", "verify")
    assert (status, err) == (0, "")
    assert "3 entries" in out
    _tamper(3, version="v_20250304T050807Z_00000000")
    status, out, err = run(capsys, "ledger", "verify")
    assert status == 1
    assert "deployments.jsonl:3: version: " in err
    assert "sha256 prefix" in err


def test_verify_refuses_a_file_recorded_only_by_a_partial_run(
    project: dict[str, LedgerEntry], capsys: pytest.CaptureFixture[str]
) -> None:
    _tamper(2, partial={"latency": {"deselected": 3, "skipped": 0}})
    status, out, err = run(capsys, "ledger", "verify", "b.joblib")
    assert (status, out) == (1, "")
    assert f"only by a partial run ({project['b'].version})" in err
    status, out, _ = run(capsys, "ledger", "list")
    assert "partial" in out.splitlines()[2]


def test_verify_of_a_missing_file_exits_2_naming_it(
    project: dict[str, LedgerEntry], capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "ledger", "verify", "gone.joblib")
    assert status == 2
    assert "cannot read gone.joblib: No such file or directory" in err


def test_previous_exits_1_when_every_entry_has_the_same_bytes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.joblib").write_bytes(b"model a")
    ledger = tmp_path / "deployments.jsonl"
    for minute in range(2):
        entry = LedgerEntry.create(tmp_path / "a.joblib", when=T0 + timedelta(minutes=minute))
        Ledger(ledger).record(entry)
    status, out, err = run(capsys, "ledger", "--ledger", str(ledger), "previous")
    assert (status, out) == (1, "")
    assert "no rollback target" in err


def test_a_missing_ledger_exits_1_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.jsonl"
    status, out, err = run(capsys, "ledger", "current", "--ledger", str(missing))
    assert (status, out) == (1, "")
    assert f"no ledger at {missing}" in err


def test_an_empty_ledger_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "deployments.jsonl"
    empty.touch()
    status, _, err = run(capsys, "ledger", "--ledger", str(empty), "list")
    assert status == 1
    assert "holds no readable entries" in err


def test_an_unreadable_ledger_exits_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "deployments.jsonl"
    directory.mkdir()
    status, _, err = run(capsys, "ledger", "--ledger", str(directory), "list")
    assert status == 2
    assert f"cannot read ledger {directory}" in err


def test_a_torn_line_is_reported_on_stderr_and_the_rest_still_answered(
    project: dict[str, LedgerEntry], capsys: pytest.CaptureFixture[str]
) -> None:
    with open("deployments.jsonl", "ab") as handle:
        handle.write(b'{"version": "v_2025')
    status, out, err = run(capsys, "ledger", "current", "--json")
    assert status == 0
    assert json.loads(out)["version"] == project["a2"].version
    assert "warning: deployments.jsonl:4: skipped torn last line" in err


def test_options_are_accepted_before_and_after_the_action(
    project: dict[str, LedgerEntry], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = str(tmp_path / "deployments.jsonl")
    answers = {
        run(capsys, "ledger", "--ledger", path, "--json", "current")[1],
        run(capsys, "ledger", "current", "--ledger", path, "--json")[1],
        run(capsys, "ledger", "--json", "current", "--ledger", path)[1],
    }
    assert len(answers) == 1
    assert json.loads(answers.pop())["version"] == project["a2"].version


def test_a_missing_action_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "ledger")
    assert status == 2
    assert "required: ACTION" in err


def test_python_m_deploy_gate_ledger_list_runs_as_a_program(
    project: dict[str, LedgerEntry], tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "deploy_gate", "ledger", "list"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].split()[:2] == ["current", project["a2"].version]
