"""The deployment ledger (append safety, torn lines, current/previous) and the ML Test Score map."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from deploy_gate.errors import LedgerError, VersionCollisionError
from deploy_gate.ledger import (
    GitInfo,
    Ledger,
    LedgerEntry,
    git_info,
    sha256_file,
    version_id,
)
from deploy_gate.mltestscore import (
    RUBRIC,
    SECTIONS,
    GateRun,
    interpretation,
    score,
)

T0 = datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
FIELDS = {f.name for f in dataclasses.fields(LedgerEntry)}


def make_entry(
    content: bytes, when: datetime = T0, path: str = "model.joblib", **extra: object
) -> LedgerEntry:
    digest = hashlib.sha256(content).hexdigest()
    return LedgerEntry(
        version=version_id(digest, when),
        sha256=digest,
        size=len(content),
        path=path,
        recorded_at=when.isoformat(),
        **extra,  # type: ignore[arg-type]
    )


def sequence(*contents: bytes) -> list[LedgerEntry]:
    """Entries for ``contents`` recorded one minute apart, as successive deploys would be."""
    return [make_entry(c, T0 + timedelta(minutes=i)) for i, c in enumerate(contents)]


# --- version ids and entries ---------------------------------------------------------------


def test_version_id_is_the_utc_timestamp_and_the_hash_prefix() -> None:
    digest = hashlib.sha256(b"model").hexdigest()
    local = datetime(2025, 3, 4, 7, 6, 7, tzinfo=timezone(timedelta(hours=2)))
    assert version_id(digest, local) == f"v_20250304T050607Z_{digest[:8]}"


def test_version_id_refuses_a_naive_time_and_a_malformed_hash() -> None:
    digest = hashlib.sha256(b"model").hexdigest()
    with pytest.raises(ValueError, match="when must be a timezone-aware"):
        version_id(digest, datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="sha256 must be 64 hex digits, got 'abc'"):
        version_id("abc", T0)


def test_create_describes_the_artifact_by_hash_size_version_and_library_versions(
    tmp_path: Path,
) -> None:
    artifact = tmp_path / "model.joblib"
    artifact.write_bytes(b"x" * 1234)
    digest = hashlib.sha256(b"x" * 1234).hexdigest()
    entry = LedgerEntry.create(
        artifact,
        when=T0,
        counts={"smoke": {"passed": 7, "failed": 0, "skipped": 0}},
        latency={"batch=1": {"p99_ms": 1.5}},
        baseline_version="v_20250101T000000Z_00000000",
        metric_ratios={"accuracy": 1.01},
    )
    assert entry.sha256 == digest == sha256_file(artifact)
    assert entry.size == 1234
    assert entry.version == f"v_20250304T050607Z_{digest[:8]}"
    assert entry.recorded_at == "2025-03-04T05:06:07+00:00"
    assert entry.libraries["numpy"] == np.__version__
    assert entry.counts["smoke"]["passed"] == 7
    assert entry.metric_ratios == {"accuracy": 1.01}


def test_create_reuses_the_gates_version_id_and_library_table(tmp_path: Path) -> None:
    artifact = tmp_path / "model.joblib"
    artifact.write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    shown = f"v_20250101T000000Z_{digest[:8]}"
    entry = LedgerEntry.create(artifact, version=shown, libraries={"numpy": "9.9"}, when=T0)
    assert (entry.version, entry.libraries) == (shown, {"numpy": "9.9"})
    with pytest.raises(ValueError, match="does not end in the artifact's sha256 prefix"):
        LedgerEntry.create(artifact, version="v_20250101T000000Z_00000000")


def test_entry_json_unwraps_numpy_scalars_and_writes_non_finite_figures_as_null() -> None:
    entry = make_entry(
        b"a",
        counts={"latency": {"passed": np.int64(3)}},  # type: ignore[dict-item]
        latency={"batch=1": {"p50_ms": np.float64(2.5), "p99_ms": float("nan")}},
    )
    data = json.loads(entry.to_json())
    assert data["counts"] == {"latency": {"passed": 3}}
    assert data["latency"] == {"batch=1": {"p50_ms": 2.5, "p99_ms": None}}


def test_entry_json_names_a_field_that_json_cannot_hold() -> None:
    entry = make_entry(b"a", latency={"rounds": {1, 2}})
    with pytest.raises(TypeError, match=r"latency\.rounds holds set"):
        entry.to_json()


def test_entry_refuses_a_malformed_hash_and_a_negative_size() -> None:
    with pytest.raises(ValueError, match="sha256 must be 64 hex digits"):
        LedgerEntry(version="v", sha256="zz", size=1, path="m", recorded_at="t")
    with pytest.raises(ValueError, match="size must be a non-negative int"):
        LedgerEntry(version="v", sha256="0" * 64, size=-1, path="m", recorded_at="t")


def test_from_dict_ignores_keys_written_by_a_newer_version() -> None:
    entry = make_entry(b"a")
    assert LedgerEntry.from_dict({**entry.to_dict(), "added_later": 1}) == entry


# --- appending -------------------------------------------------------------------------------


def test_append_writes_exactly_one_line_per_entry_with_every_field(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "deployments.jsonl")
    entries = sequence(b"a", b"b")
    for entry in entries:
        ledger.append(entry)
    lines = ledger.path.read_text().splitlines()
    assert len(lines) == 2
    assert [set(json.loads(line)) for line in lines] == [FIELDS, FIELDS]
    assert ledger.entries() == entries


def _append_many(
    path: str, worker: int, count: int, start: multiprocessing.synchronize.Event
) -> None:
    ledger = Ledger(path)
    start.wait()
    for i in range(count):
        content = f"{worker}-{i}".encode()
        ledger.append(make_entry(content, path=f"worker-{worker}/{i}"))


def test_eight_processes_appending_500_lines_each_leave_4000_parseable_lines(
    tmp_path: Path,
) -> None:
    path = tmp_path / "deployments.jsonl"
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [
        context.Process(target=_append_many, args=(str(path), w, 500, start)) for w in range(8)
    ]
    for process in workers:
        process.start()
    start.set()  # all at once, so the appends really contend
    for process in workers:
        process.join(timeout=120)
    assert [p.exitcode for p in workers] == [0] * 8

    data = path.read_bytes()
    assert data.count(b"\n") == 4000
    entries = Ledger(path).entries()  # filterwarnings=error: any torn line fails here
    assert len(entries) == 4000
    assert {e.path for e in entries} == {f"worker-{w}/{i}" for w in range(8) for i in range(500)}


def test_a_torn_last_line_is_reported_not_warned_and_the_next_append_starts_fresh(
    tmp_path: Path,
) -> None:
    ledger = Ledger(tmp_path / "deployments.jsonl")
    first, second, killed, after = sequence(b"a", b"b", b"c", b"d")
    ledger.append(first)
    ledger.append(second)
    with ledger.path.open("ab") as handle:  # a writer killed half-way through its line
        handle.write(killed.to_json().encode()[:40])

    # filterwarnings=error: a warning here would be an exception in a project's run.
    read = ledger.read()
    assert read.entries == (first, second)
    assert [str(s) for s in read.skipped] == [
        f"{ledger.path}:3: skipped torn last line (no newline: a writer was probably killed "
        "mid-write)"
    ]
    assert ledger.entries() == [first, second]

    ledger.append(after)
    lines = ledger.path.read_bytes().split(b"\n")
    assert lines[3] == after.to_json().encode()
    read = ledger.read()
    assert read.entries == (first, second, after)
    assert read.line_numbers == (1, 2, 4)
    assert str(read.skipped[0]).startswith(f"{ledger.path}:3: skipped unreadable line")


def test_an_unreadable_line_in_the_middle_is_skipped_naming_its_line_number(
    tmp_path: Path,
) -> None:
    path = tmp_path / "deployments.jsonl"
    first, second = sequence(b"a", b"b")
    path.write_text(f'{first.to_json()}\n{{"version": "v_x"}}\n{second.to_json()}\n')
    read = Ledger(path).read()
    assert read.entries == (first, second)
    (skipped,) = read.skipped
    assert skipped.number == 2
    assert "missing sha256" in skipped.reason


def test_a_missing_ledger_reads_as_empty(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "none.jsonl")
    assert not ledger.exists()
    assert ledger.entries() == []
    assert ledger.current() is None
    assert ledger.previous() is None


def test_an_unreadable_ledger_raises_a_ledger_error_naming_the_file(tmp_path: Path) -> None:
    directory = tmp_path / "deployments.jsonl"
    directory.mkdir()
    with pytest.raises(LedgerError, match=r"cannot read ledger .*deployments\.jsonl"):
        Ledger(directory).entries()
    with pytest.raises(LedgerError, match=r"cannot write ledger .*deployments\.jsonl"):
        Ledger(directory).append(make_entry(b"a"))


# --- answering ------------------------------------------------------------------------------


def test_current_and_previous_follow_a_sequence_with_a_redeploy_of_an_older_hash(
    tmp_path: Path,
) -> None:
    ledger = Ledger(tmp_path / "deployments.jsonl")
    a, b, c, b_again, a_again = sequence(b"a", b"b", b"c", b"b", b"a")
    assert b_again.sha256 == b.sha256
    assert b_again.version != b.version

    for entry in (a, b, c):
        ledger.record(entry)
    assert (ledger.current(), ledger.previous()) == (c, b)
    assert ledger.is_redeploy(b.sha256)
    ledger.record(b_again)
    assert (ledger.current(), ledger.previous()) == (b_again, c)
    ledger.record(b_again)  # recording the same bytes twice does not make them their own target
    assert (ledger.current(), ledger.previous()) == (b_again, c)
    ledger.record(a_again)
    assert (ledger.current(), ledger.previous()) == (a_again, b_again)


def test_previous_is_none_while_every_entry_has_the_same_bytes(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "deployments.jsonl")
    for entry in sequence(b"a", b"a"):
        ledger.append(entry)
    assert ledger.current() is not None
    assert ledger.previous() is None


def test_find_and_by_sha256_return_the_recorded_entry_or_none(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "deployments.jsonl")
    a, b = sequence(b"a", b"b")
    ledger.append(a)
    ledger.append(b)
    assert ledger.find(a.version) == a
    assert ledger.find("v_19990101T000000Z_00000000") is None
    assert ledger.by_sha256(b.sha256.upper()) == b
    assert not ledger.is_redeploy(hashlib.sha256(b"c").hexdigest())


def test_verify_matches_a_file_to_its_recorded_version_and_nothing_after_a_change(
    tmp_path: Path,
) -> None:
    artifact = tmp_path / "model.joblib"
    artifact.write_bytes(b"weights")
    ledger = Ledger(tmp_path / "deployments.jsonl")
    entry = ledger.record(LedgerEntry.create(artifact, when=T0))
    assert ledger.verify(artifact) == entry
    artifact.write_bytes(b"weights, retrained")
    assert ledger.verify(artifact) is None


def test_record_refuses_a_version_id_recorded_for_other_bytes(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "deployments.jsonl")
    recorded = ledger.record(make_entry(b"a"))
    impostor = dataclasses.replace(make_entry(b"b"), version=recorded.version)
    before = ledger.path.read_bytes()

    assert ledger.collides(impostor.version, impostor.sha256)
    assert not ledger.collides(recorded.version, recorded.sha256)
    with pytest.raises(VersionCollisionError, match=rf"{recorded.version} is already recorded"):
        ledger.record(impostor)
    assert ledger.path.read_bytes() == before
    ledger.record(recorded)  # the same id for the same bytes is a re-record, not a collision
    assert len(ledger.entries()) == 2


def test_a_partial_entry_is_never_current_previous_or_a_verified_deployment(
    tmp_path: Path,
) -> None:
    artifact = tmp_path / "model.joblib"
    artifact.write_bytes(b"b")
    ledger = Ledger(tmp_path / "deployments.jsonl")
    a, b = sequence(b"a", b"b")
    partial_b = dataclasses.replace(b, partial={"latency": {"deselected": 3, "skipped": 0}})
    ledger.record(a)
    ledger.record(partial_b)
    assert partial_b.is_partial
    assert not a.is_partial
    assert ledger.entries() == [a, partial_b]
    assert ledger.current() == a
    assert ledger.previous() is None
    assert ledger.find(b.version) == partial_b
    assert ledger.by_sha256(b.sha256) is None
    assert ledger.verify(artifact) is None


def test_record_reads_each_line_once_however_long_the_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    import deploy_gate.ledger as module

    read = []
    real_read, real_pread = os.read, module._pread

    def counting_read(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        read.append(len(data))
        return data

    def counting_pread(fd: int, n: int, offset: int) -> bytes:
        data = real_pread(fd, n, offset)
        read.append(len(data))
        return data

    ledger = Ledger(tmp_path / "deployments.jsonl")
    monkeypatch.setattr(module.os, "read", counting_read)
    monkeypatch.setattr(module, "_pread", counting_pread)
    n = 300
    for i in range(n):
        ledger.record(make_entry(str(i).encode(), T0 + timedelta(seconds=i)))
    monkeypatch.undo()
    size = ledger.path.stat().st_size
    # Re-reading the ledger on every record reads about n / 2 times its final size.
    assert sum(read) <= 2 * size
    assert len(ledger.entries()) == n


def test_record_notices_lines_another_writer_appended(tmp_path: Path) -> None:
    path = tmp_path / "deployments.jsonl"
    mine, theirs = Ledger(path), Ledger(path)
    mine.record(make_entry(b"a"))
    recorded = theirs.record(make_entry(b"b", T0 + timedelta(minutes=1)))
    impostor = dataclasses.replace(make_entry(b"c"), version=recorded.version)
    with pytest.raises(VersionCollisionError):
        mine.record(impostor)
    path.write_text("")  # replaced by an empty ledger: nothing remembered collides
    mine.record(impostor)
    assert Ledger(path).entries() == [impostor]
    # Edited in place to the same length: what was remembered is read again.
    other = make_entry(b"e", T0 + timedelta(minutes=2))
    path.write_text(path.read_text().replace(impostor.version, other.version[:-8] + "00000000"))
    mine.record(dataclasses.replace(make_entry(b"f"), version=impostor.version))


def test_record_all_writes_every_entry_or_none(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "deployments.jsonl")
    a, b, c = sequence(b"a", b"b", b"c")
    ledger.record_all([a, b])
    assert ledger.entries() == [a, b]
    before = ledger.path.read_bytes()
    impostor = dataclasses.replace(make_entry(b"d"), version=b.version)
    with pytest.raises(VersionCollisionError):
        ledger.record_all([c, impostor])
    assert ledger.path.read_bytes() == before


def test_an_entry_whose_fields_agree_has_no_contradiction(tmp_path: Path) -> None:
    artifact = tmp_path / "model.joblib"
    artifact.write_bytes(b"weights")
    entry = LedgerEntry.create(artifact, when=T0, counts={"smoke": {"passed": 7}})
    assert entry.contradictions(size=artifact.stat().st_size) == []


@pytest.mark.parametrize(
    ("change", "field", "phrase"),
    [
        ({"version": "v_20250304T050607Z_00000000"}, "version", "sha256 prefix"),
        ({"version": "v_20250304T050608Z_{prefix}"}, "version", "recorded_at"),
        ({"version": "model-1_{prefix}"}, "version", "v_<UTC"),
        ({"recorded_at": "yesterday"}, "recorded_at", "ISO 8601"),
        ({"recorded_at": "2025-03-04T05:06:07"}, "recorded_at", "time zone"),
        ({"size": 8}, "size", "7 bytes"),
        ({"counts": {"smoke": {"passed": 6, "failed": 1}}}, "counts", "failed"),
        ({"counts": {"smoke": {"passed": -1}}}, "counts", "non-negative"),
        ({"baseline_version": "v_20250304T050607Z_00000000"}, "baseline_version", "prefix"),
        ({"git_commit": "main"}, "git_commit", "hex"),
        ({"format": 99}, "format", "99"),
    ],
)
def test_each_field_that_contradicts_the_others_is_named(
    tmp_path: Path, change: dict[str, object], field: str, phrase: str
) -> None:
    artifact = tmp_path / "model.joblib"
    artifact.write_bytes(b"weights")
    entry = LedgerEntry.create(
        artifact,
        when=T0,
        baseline_version=version_id("b" * 64, T0),
        baseline_sha256="b" * 64,
    )
    prefix = entry.sha256[:8]
    values = {k: v.format(prefix=prefix) if isinstance(v, str) else v for k, v in change.items()}
    bad = LedgerEntry.from_dict({**entry.to_dict(), **values})
    found = bad.contradictions(size=artifact.stat().st_size)
    assert [c.field for c in found] == [field], found
    assert phrase in found[0].message


# --- git ------------------------------------------------------------------------------------


def test_git_info_is_empty_outside_a_work_tree_and_without_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert git_info(tmp_path) == GitInfo(None, None)
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on the PATH
    assert git_info(tmp_path) == GitInfo(None, None)


def test_git_info_gives_up_when_git_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    def hang(*args: object, **kwargs: object) -> None:
        raise subprocess.TimeoutExpired(cmd="git", timeout=5)

    monkeypatch.setattr(subprocess, "run", hang)
    assert git_info() == GitInfo(None, None)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_info_names_the_commit_and_branch_and_the_ci_branch_on_a_detached_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME", "BRANCH_NAME"):
        monkeypatch.delenv(name, raising=False)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    for key, value in {**env, "GIT_COMMITTER_EMAIL": "t@t"}.items():
        monkeypatch.setenv(key, value)

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    git("init", "-q", "-b", "feature/ledger")
    git("commit", "-q", "--allow-empty", "-m", "first")
    commit = git("rev-parse", "HEAD")
    assert git_info(tmp_path) == GitInfo(commit, "feature/ledger")

    git("checkout", "-q", "--detach")
    assert git_info(tmp_path) == GitInfo(commit, None)
    monkeypatch.setenv("GITHUB_HEAD_REF", "pr-branch")
    assert git_info(tmp_path) == GitInfo(commit, "pr-branch")


# --- ML Test Score --------------------------------------------------------------------------

FULL_PASSED = frozenset(
    {
        "smoke[load]",
        "output[no-nan]",
        "output[no-inf]",
        "output[shape]",
        "latency[p99-batch=1]",
        "latency[p99-vs-baseline-batch=1]",
        "errors[nan-input]",
        "version[version-id]",
        "baseline[accuracy]",
        "baseline[prediction-shift]",
        "rollout[5%]",
        "rollout[100%]",
        "drift[age]",
        "drift[prediction]",
    }
)
FULL_RUN = GateRun(passed=FULL_PASSED, ledger_has_previous=True)


def test_the_rubric_has_four_sections_of_seven_items_in_the_papers_words() -> None:
    assert [sum(i.section == s for i in RUBRIC) for s in SECTIONS] == [7, 7, 7, 7]
    texts = {item.id: item.text for item in RUBRIC}
    assert texts["Infra 4"] == "Model quality is validated before serving"
    assert texts["Infra 6"] == "Models are canaried before serving"
    assert texts["Infra 7"] == "Serving models can be rolled back"
    assert texts["Monitor 5"] == "Models are numerically stable"
    assert texts["Data 1"] == "Feature expectations are captured in a schema"


def test_a_run_without_baseline_drift_or_ledger_automates_only_numerical_stability() -> None:
    run = GateRun(passed=frozenset({"smoke[load]", "output[no-nan]", "output[no-inf]"}))
    assert score(run).automated_by_gate == ("Monitor 5",)


def test_a_full_run_automates_infra_4_6_7_and_monitor_2_5_6_7() -> None:
    assert score(FULL_RUN).automated_by_gate == (
        "Infra 4",
        "Infra 6",
        "Infra 7",
        "Monitor 2",
        "Monitor 5",
        "Monitor 6",
        "Monitor 7",
    )


@pytest.mark.parametrize(
    ("removed", "lost"),
    [
        ({"baseline[accuracy]"}, {"Infra 4"}),
        ({"rollout[5%]", "rollout[100%]"}, {"Infra 6"}),
        ({"drift[age]", "drift[prediction]"}, {"Monitor 2", "Monitor 7"}),
        ({"drift[prediction]"}, {"Monitor 7"}),
        ({"latency[p99-vs-baseline-batch=1]"}, {"Monitor 6"}),
        ({"output[no-nan]"}, {"Monitor 5"}),
    ],
)
def test_each_item_needs_the_check_that_really_covers_it(removed: set[str], lost: set[str]) -> None:
    full = set(score(FULL_RUN).automated_by_gate)
    reduced = score(dataclasses.replace(FULL_RUN, passed=FULL_PASSED - removed))
    assert full - set(reduced.automated_by_gate) == lost
    for item_id in lost:
        result = next(r for r in reduced.items if r.item.id == item_id)
        assert (result.credit, result.how, result.source) == (0.0, "none", "none")
        assert result.evidence


@pytest.mark.parametrize(
    ("failing", "lost"),
    [
        ("output[no-nan]", "Monitor 5"),
        ("output[known-labels]", "Monitor 5"),
        ("baseline[roc_auc]", "Infra 4"),
        ("rollout[25%]", "Infra 6"),
        ("drift[income]", "Monitor 2"),
        ("latency[p99-vs-baseline-batch=32]", "Monitor 6"),
    ],
)
def test_an_item_is_credited_only_while_every_check_behind_it_passed(
    failing: str, lost: str
) -> None:
    reduced = score(dataclasses.replace(FULL_RUN, failed=frozenset({failing})))
    assert lost not in reduced.automated_by_gate
    result = next(r for r in reduced.items if r.item.id == lost)
    assert result.credit == 0.0
    assert result.evidence == f"{failing} failed"


def test_the_final_score_is_the_minimum_of_the_section_scores() -> None:
    result = score(FULL_RUN)
    assert [result.section(s).score for s in SECTIONS] == [0.0, 0.0, 3.0, 4.0]
    assert result.final == 0.0
    assert interpretation(result.final) == result.render_lines()[1].strip()

    declared = {f"Data {n}": "automated" for n in range(1, 8)}
    declared |= {f"Model {n}": "manual" for n in range(1, 8)}
    result = score(dataclasses.replace(FULL_RUN, declared=declared))  # type: ignore[arg-type]
    sections = [result.section(s).score for s in SECTIONS]
    assert sections == [7.0, 3.5, 3.0, 4.0]
    assert result.final == min(sections) == 3.0


def test_a_gate_run_by_hand_earns_half_points() -> None:
    result = score(dataclasses.replace(FULL_RUN, repeated=False))
    gate = [r for r in result.items if r.source == "gate"]
    assert {(r.credit, r.how) for r in gate} == {(0.5, "manual")}
    assert result.section("Infrastructure").score == 1.5


def test_declared_items_are_credited_but_never_shown_as_verified() -> None:
    run = dataclasses.replace(FULL_RUN, declared={"Model 1": "manual", "Infra 4": "manual"})
    items = {r.item.id: r for r in score(run).items}
    assert (items["Model 1"].credit, items["Model 1"].source) == (0.5, "declared")
    assert "not verified" in items["Model 1"].evidence
    assert (items["Infra 4"].credit, items["Infra 4"].source) == (1.0, "gate")


def test_unknown_categories_and_rubric_items_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"unknown categories \['canary'\]"):
        GateRun(passed=frozenset({"smoke[load]", "canary[5%]"}))
    with pytest.raises(ValueError, match=r"unknown rubric item 'Infra 9'"):
        GateRun(passed=frozenset(), declared={"Infra 9": "manual"})
    with pytest.raises(ValueError, match=r"declared\['Model 1'\] must be"):
        GateRun(passed=frozenset(), declared={"Model 1": "sometimes"})  # type: ignore[dict-item]


def test_from_outcomes_keeps_the_gates_checks_and_ignores_skips_and_project_tests() -> None:
    run = GateRun.from_outcomes(
        {
            "smoke[load]": "passed",
            "baseline[accuracy]": "failed",
            "baseline[error-rate]": "error",
            "drift[age]": "skipped",
            "test_custom.py::test_accuracy": "passed",
        }
    )
    assert run.passed == {"smoke[load]"}
    assert run.failed == {"baseline[accuracy]", "baseline[error-rate]"}
    assert score(run).automated_by_gate == ()


@pytest.mark.parametrize(
    ("final", "starts"),
    [
        (0.0, "More of a research project"),
        (0.5, "Not totally untested"),
        (1.0, "Not totally untested"),
        (1.5, "There's been first pass"),
        (3.0, "Reasonably tested"),
        (4.0, "Strong levels"),
        (5.5, "Exceptional levels"),
    ],
)
def test_interpretation_follows_the_papers_table_v(final: float, starts: str) -> None:
    assert interpretation(final).startswith(starts)


def test_the_summary_line_is_one_line_with_the_score_and_the_items_covered() -> None:
    line = score(FULL_RUN).summary_line()
    assert "\n" not in line
    assert line.startswith(
        "ML Test Score 0 = min(Data 0, Model 0, Infrastructure 3, Monitoring 4): covered "
        "Infra 4, Infra 6, Infra 7, Monitor 2, Monitor 5, Monitor 6, Monitor 7"
    )
    assert "research project" not in line
    nothing = score(GateRun(passed=frozenset({"smoke[load]"}))).summary_line()
    assert nothing.endswith("no rubric item covered by this run")


def test_render_lines_show_the_final_score_sections_and_evidence() -> None:
    lines = score(FULL_RUN).render_lines()
    assert lines[0] == (
        "ML Test Score (Breck et al. 2017): 0 = "
        "min(Data 0, Model 0, Infrastructure 3, Monitoring 4)"
    )
    infra6 = next(line for line in lines if "Infra 6" in line)
    assert "Models are canaried before serving" in infra6
    assert "simulated canary" in infra6


def test_the_score_is_recorded_in_a_ledger_line(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "deployments.jsonl")
    ledger.append(make_entry(b"a", ml_test_score=score(FULL_RUN).to_dict()))
    recorded = ledger.current()
    assert recorded is not None
    assert recorded.ml_test_score is not None
    assert recorded.ml_test_score["final"] == 0.0
    assert recorded.ml_test_score["sections"]["Monitoring"] == 4.0
    assert set(recorded.ml_test_score["items"]) == set(score(FULL_RUN).automated_by_gate)
    assert "output[no-nan]" in recorded.ml_test_score["items"]["Monitor 5"]["evidence"]
