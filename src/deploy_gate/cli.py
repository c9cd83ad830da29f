"""The ``deploy-gate`` command: ask the deployment ledger what is deployed and what to roll back to.

    deploy-gate ledger [--ledger PATH] list | current | previous | show VERSION | verify [PATH]
                       [--json]
    deploy-gate profile build DATA... [--reference REF.json] -o OUT.json [--engine stream|dask]
                       [--scheduler tcp://host:8786] [--workers N] [--features A,B]

Tables are for people, ``--json`` for scripts. Exit status: 0 answered; 1 nothing to answer
(no or empty ledger, no previous version, unknown version, file not recorded) or a ledger line
whose fields contradict each other or the file; 2 usage errors and files that cannot be read.
Lines a reader skips (torn by a killed writer) are reported once on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from deploy_gate.errors import LedgerError
from deploy_gate.ledger import (
    DEFAULT_LEDGER,
    Ledger,
    LedgerEntry,
    LedgerRead,
    latest,
    rollback_target,
    sha256_file,
)

__all__ = ["EXIT_ERROR", "EXIT_NOTHING", "EXIT_OK", "main"]

EXIT_OK = 0
EXIT_NOTHING = 1
EXIT_ERROR = 2


class _Nothing(Exception):
    """The ledger has no answer, or its answer contradicts itself; the message says why."""


def main(argv: Sequence[str] | None = None, prog: str = "deploy-gate") -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    try:
        args = _parser(prog).parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error argparse has already explained
        return exit_.code if isinstance(exit_.code, int) else EXIT_ERROR
    out, err = sys.stdout, sys.stderr
    if args.command == "profile":
        return _profile_build(args, prog, out, err)
    read = LedgerRead()
    try:
        ledger = Ledger(args.ledger)
        if not ledger.path.exists():
            raise _Nothing(
                f"no ledger at {ledger.path} (record one with pytest --deploy-gate-record)"
            )
        read = ledger.read()
        status = _ledger(args, ledger, read, out)
    except _Nothing as nothing:
        print(f"{prog}: {nothing}", file=err)
        status = EXIT_NOTHING
    except (LedgerError, OSError) as exc:
        print(f"{prog}: error: {_describe(exc)}", file=err)
        status = EXIT_ERROR
    # Torn lines are worth one line each on stderr, never a Python warning.
    for skipped in read.skipped:
        print(f"{prog}: warning: {skipped}", file=err)
    return status


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Tools of pytest-deploy-gate for the deployment ledger."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    ledger = commands.add_parser(
        "ledger",
        parents=[_options(DEFAULT_LEDGER, False)],
        help="what is deployed, and what to roll back to",
        description="Answer from the deployment ledger written by pytest --deploy-gate-record. "
        "Exit status 1 when there is nothing to answer.",
    )
    # --ledger and --json are accepted after the action too; there they default to SUPPRESS so
    # that they do not overwrite a value given before the action.
    shared = _options(argparse.SUPPRESS, argparse.SUPPRESS)
    actions = ledger.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", parents=[shared], help="all recorded versions, newest first")
    actions.add_parser("current", parents=[shared], help="the last recorded version")
    actions.add_parser(
        "previous",
        parents=[shared],
        help="the rollback target: the last recorded version with other bytes than current",
    )
    show = actions.add_parser("show", parents=[shared], help="one recorded version in full")
    show.add_argument("version", metavar="VERSION", help="a version id, e.g. v_20250101T120000Z_…")
    verify = actions.add_parser(
        "verify",
        parents=[shared],
        help="does this file match a recorded version, and does every field of its line agree? "
        "Without PATH: does every field of every line agree?",
    )
    verify.add_argument(
        "file", metavar="PATH", nargs="?", default=None, help="the artifact file to check"
    )
    _profile_parser(commands)
    return parser


def _profile_parser(commands: Any) -> None:
    profile = commands.add_parser(
        "profile",
        help="build drift profiles where the data lives",
        description="Drift profiles: summaries of data that the gate compares instead of rows.",
    )
    actions = profile.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = actions.add_parser(
        "build",
        help="profile data files (or merge saved profiles) into one profile",
        description="Profile DATA (files, folders, globs of Parquet/CSV/JSON-lines files, fsspec "
        "URLs such as s3://bucket/window/, and saved profiles, which are merged in). With "
        "--reference, the result is a current profile that pytest --deploy-gate-current accepts "
        "next to --deploy-gate-profile REF.json. Exit status 2 on unreadable input.",
    )
    build.add_argument("data", metavar="DATA", nargs="+", help="what to profile")
    build.add_argument(
        "--reference",
        metavar="REF.json",
        help="the reference profile to count against (pytest --deploy-gate-save-profile); "
        "without it, a reference profile is built",
    )
    build.add_argument("-o", "--output", metavar="OUT.json", required=True, help="where to write")
    build.add_argument(
        "--engine",
        choices=("stream", "dask"),
        default="stream",
        help="stream: read here, chunk by chunk (default); dask: map-reduce over row groups on "
        "a Dask cluster (pip install 'pytest-deploy-gate[dask]')",
    )
    build.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="with --engine dask: the cluster's scheduler, e.g. tcp://host:8786 (default: a "
        "local cluster for this run)",
    )
    build.add_argument(
        "--workers",
        metavar="N",
        type=_positive_int,
        help="with --engine dask and no --scheduler: local worker processes (default 2)",
    )
    build.add_argument(
        "--features", metavar="A,B", help="profile only these columns (default: the reference's)"
    )
    build.add_argument(
        "--chunk-rows",
        metavar="N",
        type=_positive_int,
        default=100_000,
        help="rows read at a time (default 100000): memory per process is bounded by it",
    )
    build.add_argument(
        "--sample-rows",
        metavar="N",
        type=_nonnegative_int,
        default=None,
        help="current rows sampled for prediction drift, which the gate's model worker scores "
        "(default 5000; 0: none, and drift[prediction] is skipped)",
    )
    build.add_argument(
        "--storage-option",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="an fsspec storage option for URLs, e.g. anon=true (repeatable)",
    )


def _positive_int(text: str) -> int:
    value = _nonnegative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def _storage_options(items: Sequence[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--storage-option: expected KEY=VALUE, got {item!r}")
        lowered = value.lower()
        options[key] = lowered == "true" if lowered in ("true", "false") else json_or_text(value)
    return options


def json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _profile_build(args: argparse.Namespace, prog: str, out: TextIO, err: TextIO) -> int:
    import time

    from deploy_gate import profiles
    from deploy_gate.errors import DeployGateError

    started = time.perf_counter()
    try:
        reference = (
            None if args.reference is None else profiles.load(args.reference, what="--reference")
        )
        features = (
            None
            if args.features is None
            else tuple(f.strip() for f in args.features.split(",") if f.strip())
        )
        sample = args.sample_rows if args.sample_rows is not None else profiles.DEFAULT_SAMPLE_ROWS
        profile = profiles.build(
            args.data,
            reference=reference,
            features=features,
            engine=args.engine,
            scheduler=args.scheduler,
            workers=args.workers,
            chunk_rows=args.chunk_rows,
            sample_rows=sample,
            storage_options=_storage_options(args.storage_option),
        )
        target = Path(args.output)
        if target.parent != Path():
            target.parent.mkdir(parents=True, exist_ok=True)
        profile.save(target)
    except (DeployGateError, ValueError, OSError) as exc:
        print(f"{prog}: error: {_describe(exc)}", file=err)
        return EXIT_ERROR
    kind = "current profile" if profile.reference is not None else "reference profile"
    sample_note = f", {profile.sample.rows} rows sampled" if profile.sample is not None else ""
    print(
        f"wrote {kind} {target}: {profile.rows} rows, {len(profile.features)} features"
        f"{sample_note} ({time.perf_counter() - started:.1f} s, engine {args.engine})",
        file=out,
    )
    return EXIT_OK


def _options(ledger: str, json_default: object) -> argparse.ArgumentParser:
    # A new parser per use: argparse shares option objects with the parsers built from it.
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--ledger",
        metavar="PATH",
        default=ledger,
        help=f"the ledger file (default: {DEFAULT_LEDGER} in the current directory)",
    )
    options.add_argument(
        "--json", action="store_true", default=json_default, help="print JSON for scripts"
    )
    return options


def _ledger(args: argparse.Namespace, ledger: Ledger, read: LedgerRead, out: TextIO) -> int:
    entries = list(read.entries)
    if not entries:
        raise _Nothing(f"the ledger {ledger.path} holds no readable entries")
    action: str = args.action
    if action == "list":
        if args.json:
            _print_json([e.to_dict() for e in reversed(entries)], out)
        else:
            _print_table(entries, out)
        return EXIT_OK
    if action == "verify" and args.file is None:
        return _verify_ledger(ledger, read, out)
    if action == "current":
        entry = latest(entries)
        if entry is None:
            raise _Nothing(
                f"no version in {ledger.path} was recorded by a full run (partial runs are "
                "never the deployed version)"
            )
    elif action == "previous":
        entry = rollback_target(entries)
        if entry is None:
            raise _Nothing(f"no rollback target in {ledger.path}: every entry has the same bytes")
    elif action == "show":
        entry = next((e for e in reversed(entries) if e.version == args.version), None)
        if entry is None:
            raise _Nothing(f"version {args.version} is not recorded in {ledger.path}")
    else:  # verify PATH
        entry = _verify_file(ledger, read, Path(args.file))
        if not args.json:
            print(f"{args.file} matches {entry.version}", file=out)
    if args.json:
        _print_json(entry.to_dict(), out)
    else:
        _print_entry(entry, out)
    return EXIT_OK


def _verify_file(ledger: Ledger, read: LedgerRead, file: Path) -> LedgerEntry:
    """The full run's entry of ``file``, every field of whose line agrees with the rest and with
    the file; anything else is a :class:`_Nothing` saying what is wrong, where."""
    digest = sha256_file(file)
    size = file.stat().st_size
    matches = [
        (number, e)
        for number, e in zip(read.line_numbers, read.entries, strict=True)
        if e.sha256 == digest
    ]
    full = [(number, e) for number, e in matches if not e.is_partial]
    if not full:
        if matches:
            raise _Nothing(
                f"{file} (sha256 {digest}) is recorded only by a partial run "
                f"({matches[-1][1].version}), which is never a deployed version"
            )
        raise _Nothing(f"{file} (sha256 {digest}) matches no recorded version in {ledger.path}")
    number, entry = full[-1]
    wrong = entry.contradictions(size=size)
    if wrong:
        raise _Nothing(
            f"{file} matches {entry.version}, but its line contradicts itself:\n"
            + "\n".join(f"{ledger.path}:{number}: {c}" for c in wrong)
        )
    return entry


def _verify_ledger(ledger: Ledger, read: LedgerRead, out: TextIO) -> int:
    problems = [
        f"{ledger.path}:{number}: {c}"
        for number, entry in zip(read.line_numbers, read.entries, strict=True)
        for c in entry.contradictions()
    ]
    if problems:
        raise _Nothing(
            f"{len(problems)} contradicting field(s) in {ledger.path}:\n" + "\n".join(problems)
        )
    print(
        f"{ledger.path}: {len(read.entries)} entries, every field of every line agrees",
        file=out,
    )
    return EXIT_OK


def _print_json(data: Any, out: TextIO) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False), file=out)


_COLUMNS = ("", "VERSION", "RECORDED (UTC)", "SHA256", "SIZE", "COMMIT", "BRANCH", "PATH")


def _print_table(entries: Sequence[LedgerEntry], out: TextIO) -> None:
    current, previous = latest(entries), rollback_target(entries)
    rows = [_COLUMNS]
    for entry in reversed(entries):
        mark = (
            "current"
            if entry is current
            else "previous"
            if entry is previous
            else "partial"
            if entry.is_partial
            else ""
        )
        rows.append(
            (
                mark,
                entry.version,
                entry.recorded_at.replace("+00:00", "Z"),
                entry.sha256[:12],
                _size(entry.size),
                (entry.git_commit or "-")[:10],
                entry.git_branch or "-",
                entry.path,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    for row in rows:
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=out
        )


def _print_entry(entry: LedgerEntry, out: TextIO) -> None:
    data = entry.to_dict()
    width = max(len(key) for key in data)
    for key, value in data.items():
        if isinstance(value, dict | list):
            value = json.dumps(value, ensure_ascii=False) if value else "-"
        elif value is None:
            value = "-"
        print(f"{key.ljust(width)}  {value}", file=out)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"cannot read {os.fsdecode(exc.filename)}: {exc.strerror}"
    return str(exc)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
