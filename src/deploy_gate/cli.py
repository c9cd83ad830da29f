"""The ``deploy-gate`` command: ask the deployment ledger what is deployed and what to roll back to.

    deploy-gate ledger [--ledger PATH] list | current | previous | show VERSION | verify [PATH]
                       [--json]

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
    return parser


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
