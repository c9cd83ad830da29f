"""The gate's report as one self-contained HTML page: verdict, checklist, artifact facts,
latency histograms, baseline comparison, rollout stages and drift, for a reviewer of the
model's pull request.

Everything on the page is derived from :class:`~deploy_gate.report.GateReport` (outcomes and
their ``user_properties``), so it is written on the xdist controller from reports alone. The page
loads nothing: CSS is inline, plots are inline SVG, there is no JavaScript, and a
Content-Security-Policy forbids any request. Every string that came from a model, a data set or a
check message is escaped.
"""

from __future__ import annotations

import html
import itertools
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy_gate.report import CATEGORIES, OTHER, PROJECT, GateReport, Outcome

__all__ = ["render_html", "write_html"]

#: Why a section is empty when none of its checks was collected for an artifact.
NOT_COLLECTED = {
    "latency": (
        "No latency checks ran for this artifact: they were deselected (-k, -m) or not "
        "collected in this run."
    ),
    "baseline": (
        "No baseline was given: pass --deploy-gate-baseline PATH (ini deploy_gate_baseline) "
        "with labelled data (--deploy-gate-target) to compare this candidate with the model in "
        "production."
    ),
    "rollout": (
        "No baseline was given: the staged rollout replays the holdout against the model in "
        "production; pass --deploy-gate-baseline PATH (ini deploy_gate_baseline)."
    ),
    "drift": (
        "No production data was given: pass --deploy-gate-current PATH "
        "(ini deploy_gate_current) to check the features and predictions for drift."
    ),
    "version": "No version facts were recorded: version[version-id] did not run in this run.",
}

_DASH = "—"  # an absent figure
_LABEL = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP"}
_KIND = {"passed": "pass", "failed": "fail", "error": "fail", "skipped": "skip"}
_STAGE = {
    "advanced": ("ADVANCED", "pass"),
    "rolled_back": ("ROLLED BACK", "fail"),
    "inconclusive": ("INCONCLUSIVE", "warn"),
    "not_reached": ("NOT REACHED", "skip"),
}
_LATENCY_STATUS = {
    "passed": ("PASS", "pass"),
    "failed": ("FAIL", "fail"),
    "inconclusive": ("INCONCLUSIVE", "warn"),
    "measured": ("MEASURED", "skip"),
}


def render_html(
    report: GateReport,
    *,
    title: str = "Deploy gate",
    artifacts: Mapping[str, Mapping[str, object]] | None = None,
) -> str:
    """Render ``report`` as one self-contained HTML document (no network, no scripts).

    ``artifacts`` adds facts the reports do not carry, keyed by the artifact path as it appears in
    the node ids (``{"models/candidate.joblib": {"trusted modules": "my_project"}}``); they are
    shown in the artifact's facts table after the recorded ones.
    """
    extra = artifacts or {}
    approved, verdict = report.verdict()
    ids = report.version_ids()
    groups = report.by_artifact()
    counts = _tally(report.outcomes.values())
    body: list[str] = [_header(title, approved, verdict, ids, counts, len(report.outcomes))]
    failures = report.failures()
    if failures:
        body.append(_failures(failures))
    if not report.outcomes:
        body.append(
            '<section><h2>No checks</h2><p class="why">No test reports reached the reporter: '
            "nothing was collected, or every test was deselected.</p></section>"
        )
    for index, (artifact, categories) in enumerate(groups.items()):
        anchor = f"a{index + 1}"
        if any(c in categories for c in CATEGORIES):
            body.append(_artifact_section(anchor, artifact, categories, ids, extra.get(artifact)))
        else:
            body.append(_group_section(anchor, artifact, categories))
    body.append(
        "<footer><p>Written by pytest-deploy-gate from the reports of "
        f"{len(report.outcomes)} tests. This page loads nothing from the network.</p></footer>"
    )
    return _document(title, verdict, "\n".join(body))


def write_html(
    report: GateReport,
    path: str | os.PathLike[str],
    *,
    title: str = "Deploy gate",
    artifacts: Mapping[str, Mapping[str, object]] | None = None,
) -> Path:
    """Write :func:`render_html` to ``path`` atomically (a reader never sees half a page) and
    return the path; missing parent directories are created."""
    from deploy_gate.files import write_atomic

    return write_atomic(path, render_html(report, title=title, artifacts=artifacts))


# -- small helpers --------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _props(outcome: Outcome) -> dict[str, object]:
    return dict(outcome.properties)


def _get(props: Mapping[str, object], *names: str) -> object | None:
    """The first property present among ``names`` (drift figures may carry a ``drift_`` prefix)."""
    for name in names:
        for key in (name, f"drift_{name}"):
            value = props.get(key)
            if value is not None and value != "None" and value != "":
                return value
    return None


def _float(value: object) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _truthy(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _num(value: object, digits: int = 4) -> str:
    number = _float(value)
    if number is None:
        return _DASH if value is None else _e(value)
    if number == int(number) and abs(number) < 1e15:
        return f"{int(number):,}"
    return f"{number:.{digits}g}"


def _ms(value: object) -> str:
    number = _float(value)
    if number is None:
        return _DASH
    if number < 1:
        return f"{number:.3f} ms"
    if number < 100:
        return f"{number:.1f} ms"
    return f"{number:,.0f} ms"


def _pct(value: object) -> str:
    number = _float(value)
    return _DASH if number is None else f"{number:.1%}"


def _size(value: object) -> str:
    number = _float(value)
    if number is None:
        return _e(value)
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if number >= scale:
            return f"{number / scale:.1f} {unit} ({int(number):,} bytes)"
    return f"{int(number):,} bytes"


def _case(outcome: Outcome) -> str:
    """``latency[p99-batch=32]`` -> ``p99-batch=32``."""
    name = outcome.nodeid.rsplit("::", 1)[-1]
    match = re.search(r"\[(.*)\]$", name)
    return match.group(1) if match else name


def _check_name(outcome: Outcome) -> str:
    return outcome.nodeid.rsplit("::", 1)[-1] if outcome.artifact else outcome.nodeid


def _badge(label: str, kind: str) -> str:
    mark = {"pass": "✓", "fail": "✗", "warn": "!", "skip": "○"}.get(kind, "•")
    return f'<span class="badge {kind}"><span aria-hidden="true">{mark}</span> {_e(label)}</span>'


def _outcome_badge(outcome: Outcome) -> str:
    return _badge(_LABEL.get(outcome.outcome, outcome.outcome.upper()), _kind(outcome))


def _kind(outcome: Outcome) -> str:
    return _KIND.get(outcome.outcome, "skip")


_CELL = re.compile(r"<(td|th)(\s[^>]*)?>")


def _table(
    head: Sequence[str],
    rows: Iterable[str],
    caption: str = "",
    cls: str = "",
    right: Sequence[int] = (),
) -> str:
    """A table in its own horizontal scroller; ``right`` are the numeric columns' indexes.

    Each body cell gets its column's name as ``data-label``, so on a phone the rows can stack
    into cards that still say what each figure is, and explicit ARIA roles, so that stacking
    (which changes ``display``) does not cost screen readers the table semantics.
    """
    cap = f"<caption>{caption}</caption>" if caption else ""
    numeric = ' class="n"'
    ths = "".join(
        f'<th scope="col" role="columnheader"{numeric if i in right else ""}>{h}</th>'
        for i, h in enumerate(head)
    )
    body = "".join(_label_row(row, head) for row in rows)
    return (
        f'<div class="scroll"><table class="{cls}" role="table">{cap}<thead role="rowgroup">'
        f'<tr role="row">{ths}</tr></thead><tbody role="rowgroup">{body}</tbody></table></div>'
    )


def _label_row(rows: str, head: Sequence[str]) -> str:
    # Only markup built here is rewritten: every outside string was escaped, so it holds no "<".
    out = []
    for row in re.split(r"(?=<tr[\s>])", rows):
        column = 0

        def label(match: re.Match[str]) -> str:
            nonlocal column
            tag, attrs = match.group(1), match.group(2) or ""
            span = re.search(r'colspan="(\d+)"', attrs)
            name = head[column] if column < len(head) and not span else ""
            column += int(span.group(1)) if span else 1
            role = "cell" if tag == "td" else "rowheader"
            extra = f' data-label="{name}"' if name and tag == "td" else ""
            return f'<{tag} role="{role}"{extra}{attrs}>'

        out.append(re.sub(r"<tr([\s>])", r'<tr role="row"\1', _CELL.sub(label, row), count=1))
    return "".join(out)


def _detail_row(outcome: Outcome, columns: int) -> str:
    """A check's message on its own full-width row under the figures, so long messages do
    not squeeze the table into tall, narrow cells."""
    if not outcome.message:
        return ""
    cls = "detail row-fail" if outcome.failed else "detail"
    return f'<tr class="{cls}"><td colspan="{columns}" class="msg">{_e(outcome.message)}</td></tr>'


def _why(text: str) -> str:
    return f'<p class="why"><span class="why-label">Not run.</span> {_e(text)}</p>'


def _skipped_reasons(outcomes: Sequence[Outcome]) -> str:
    """Skipped checks grouped by reason, so twenty checks skipped for want of data read as one
    line."""
    by_reason: dict[str, list[str]] = {}
    for o in outcomes:
        if o.outcome == "skipped":
            by_reason.setdefault(o.message or "no reason given", []).append(_check_name(o))
    if not by_reason:
        return ""
    items = "".join(
        f'<li>{_badge("SKIP", "skip")} <span class="reason">{_e(reason)}</span> '
        f'<span class="checks">{", ".join(f"<code>{_e(n)}</code>" for n in names)}</span></li>'
        for reason, names in by_reason.items()
    )
    return f'<ul class="skips">{items}</ul>'


def _section_why(category: str, outcomes: Sequence[Outcome]) -> str | None:
    """Why a section shows no figures, or None when some of its checks ran."""
    if not outcomes:
        return _why(NOT_COLLECTED.get(category, f"No {category} checks ran for this artifact."))
    if all(o.outcome == "skipped" for o in outcomes):
        return (
            f'<p class="why"><span class="why-label">Not run.</span> Every {_e(category)} check '
            f"was skipped:</p>{_skipped_reasons(outcomes)}"
        )
    return None


# -- page -----------------------------------------------------------------------------------


def _document(title: str, verdict: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light dark">\n'
        # Defence in depth: even a string that escaped escaping could not load anything.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">\n"
        '<link rel="icon" href="data:,">\n'
        f"<title>{_e(title)}: {_e(verdict)}</title>\n"
        f"<style>{_CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _header(
    title: str,
    approved: bool,
    verdict: str,
    ids: Mapping[str, str],
    counts: Mapping[str, int],
    total: int,
) -> str:
    kind = "pass" if approved else "fail"
    mark = "✓" if approved else "✗"
    versions = "".join(
        f'<li><code class="path">{_e(path)}</code> <code class="vid">{_e(vid)}</code></li>'
        for path, vid in ids.items()
    )
    versions = f'<ul class="versions" aria-label="Version ids">{versions}</ul>' if versions else ""
    tally = (
        f'<p class="tally"><span class="t-pass">{counts["passed"]} passed</span> · '
        f'<span class="t-fail">{counts["failed"]} failed</span> · '
        f'<span class="t-skip">{counts["skipped"]} skipped</span> '
        f'<span class="muted">of {total} tests</span></p>'
    )
    return (
        f'<header class="top">\n<h1>{_e(title)}</h1>\n'
        f'<p class="verdict {kind}" id="verdict"><span class="verdict-mark" aria-hidden="true">'
        f"{mark}</span> <strong>{_e(verdict)}</strong></p>\n{tally}\n{versions}\n</header>"
    )


def _failures(failures: Sequence[Outcome]) -> str:
    items = "".join(
        f'<li>{_outcome_badge(o)} <code class="nodeid">{_e(o.nodeid)}</code>'
        f'<p class="message">{_e(o.message or o.outcome)}</p></li>'
        for o in failures
    )
    return (
        f'<section id="failures" class="card fail-card"><h2>Why it is blocked: '
        f'{len(failures)} failed</h2><ol class="failures">{items}</ol></section>'
    )


def _artifact_section(
    anchor: str,
    artifact: str,
    categories: Mapping[str, list[Outcome]],
    ids: Mapping[str, str],
    extra: Mapping[str, object] | None,
) -> str:
    vid = ids.get(artifact)
    head = f'<code class="path">{_e(artifact)}</code>'
    if vid:
        head += f' <code class="vid">{_e(vid)}</code>'
    parts = [
        f'<section class="artifact" id="{anchor}" aria-labelledby="{anchor}-h">',
        f'<h2 id="{anchor}-h"><span class="h-kind">Artifact</span> {head}</h2>',
        _checklist(f"{anchor}-checks", categories),
        _facts(f"{anchor}-facts", categories, extra),
        _latency(f"{anchor}-latency", categories),
        _baseline(f"{anchor}-baseline", categories.get("baseline", [])),
        _rollout(f"{anchor}-rollout", categories.get("rollout", [])),
        _drift(f"{anchor}-drift", categories.get("drift", [])),
        "</section>",
    ]
    return "\n".join(parts)


def _group_section(anchor: str, name: str, categories: Mapping[str, list[Outcome]]) -> str:
    title = {"project tests": "Project tests", "other tests": "Other tests"}.get(name, name)
    return (
        f'<section class="artifact" id="{anchor}"><h2>{_e(title)}</h2>'
        f"{_checklist(f'{anchor}-checks', categories)}</section>"
    )


def _sub(anchor: str, title: str, content: str) -> str:
    return (
        f'<section class="card" id="{anchor}" aria-labelledby="{anchor}-h">'
        f'<h3 id="{anchor}-h">{title}</h3>{content}</section>'
    )


# -- checklist ------------------------------------------------------------------------------


def _tally(outcomes: Iterable[Outcome]) -> dict[str, int]:
    """Passed/failed/skipped counts, an error counting as failed (as GateReport.counts)."""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for o in outcomes:
        counts["failed" if o.failed else "passed" if o.outcome == "passed" else "skipped"] += 1
    return counts


def _checklist(anchor: str, categories: Mapping[str, list[Outcome]]) -> str:
    rows = []
    every: list[Outcome] = []
    for category in (*CATEGORIES, PROJECT, OTHER):
        outcomes = categories.get(category)
        if not outcomes:
            continue
        every += outcomes
        c = _tally(outcomes)
        if c["failed"]:
            badge = _badge("FAIL", "fail")
        elif c["passed"]:
            badge = _badge("PASS", "pass")
        else:
            badge = _badge("SKIP", "skip")
        rows.append(
            f'<tr class="{"row-fail" if c["failed"] else ""}"><th scope="row">{_e(category)}</th>'
            f'<td>{badge}</td><td class="n">{c["passed"]}</td><td class="n">{c["failed"]}</td>'
            f'<td class="n">{c["skipped"]}</td></tr>'
        )
    table = _table(
        ["Category", "Result", "Passed", "Failed", "Skipped"],
        rows,
        cls="checklist",
        right=(2, 3, 4),
    )
    check_rows = "".join(
        f'<tr><th scope="row"><code>{_e(_check_name(o))}</code></th><td>{_outcome_badge(o)}</td>'
        f'<td class="msg">{_e(o.message)}</td></tr>'
        for o in every
    )
    details = (
        f"<details><summary>Every check ({len(every)}), with its message</summary>"
        + _table(["Check", "Result", "Message or reason"], [check_rows], cls="checks stack")
        + "</details>"
    )
    skipped = _skipped_reasons(every)
    if skipped:
        skipped = f'<h4 class="h4">Skipped, and why</h4>{skipped}'
    return _sub(
        anchor,
        "Checklist",
        f'<div class="split"><div>{table}</div><div>{skipped}</div></div>{details}',
    )


# -- artifact facts -------------------------------------------------------------------------


def _facts(
    anchor: str, categories: Mapping[str, list[Outcome]], extra: Mapping[str, object] | None
) -> str:
    version = next((o for o in categories.get("version", []) if _case(o) == "version-id"), None)
    load = next((o for o in categories.get("smoke", []) if _case(o) == "load"), None)
    pinned = next((o for o in categories.get("version", []) if _case(o) == "pinned-hash"), None)
    rows: list[tuple[str, str]] = []
    props = _props(version) if version is not None else {}
    load_props = _props(load) if load is not None else {}
    for key, label in (("version_id", "Version id"), ("path", "Path")):
        if key in props:
            rows.append((label, f"<code>{_e(props[key])}</code>"))
    if "sha256" in props:
        rows.append(("sha256", f'<code class="hash">{_e(props["sha256"])}</code>'))
    if "size" in props:
        rows.append(("Size", _size(props["size"])))
    for key, label in (("loader", "Loader"), ("model_type", "Model type"), ("task", "Task")):
        value = props.get(key, load_props.get(key))
        if value is not None:
            rows.append((label, f"<code>{_e(value)}</code>"))
    libraries = [
        f"<code>{_e(k.removeprefix('version.'))} {_e(v)}</code>"
        for k, v in props.items()
        if k.startswith("version.")
    ]
    if libraries:
        rows.append(("Libraries", " ".join(libraries)))
    if "deployment_model_version" in props:
        rows.append(("Served version", f"<code>{_e(props['deployment_model_version'])}</code>"))
    if load is not None:
        if load.outcome == "passed":
            scan = (
                f"{_badge('PASS', 'pass')} every import the file makes is on the allowlist; "
                "it loaded through the guarded loader"
            )
        elif load.failed:
            scan = f"{_badge('FAIL', 'fail')} {_e(load.message)}"
        else:
            scan = f"{_badge('SKIP', 'skip')} {_e(load.message)}"
        rows.append(("Allowlist scan and load", scan))
        if "isolation" in load_props:
            rows.append(("Model isolation", _e(load_props["isolation"])))
        if "isolation_warnings" in load_props:
            rows.append(("Not in force", _e(load_props["isolation_warnings"])))
        warnings = load_props.get("load_warnings")
        if warnings:
            rows.append(("Load warnings", f'<span class="msg">{_e(warnings)}</span>'))
    if pinned is not None:
        pin = _get(_props(pinned), "pinned_sha256")
        text = f'<code class="hash">{_e(pin)}</code> ' if pin else ""
        note = _e(pinned.message) if pinned.message else ""
        rows.append(("Pinned hash", f"{_outcome_badge(pinned)} {text}{note}"))
    for key, value in (extra or {}).items():
        rows.append((_e(key), _e(value)))
    content = ""
    if not props:
        why = NOT_COLLECTED["version"]
        if version is not None and version.message:
            why = f"version[version-id] {version.outcome}: {version.message}"
        content += _why(why)
    if rows:
        content += '<dl class="facts">' + "".join(
            f"<div><dt>{label}</dt><dd>{value}</dd></div>" for label, value in rows
        )
        content += "</dl>"
    return _sub(anchor, "Artifact", content)


# -- latency --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Budget:
    label: str
    ms: float


def _batch_of(outcome: Outcome, props: Mapping[str, object]) -> int | None:
    value = _float(_get(props, "batch", "batch_size"))
    if value is not None:
        return int(value)
    match = re.search(r"batch=(\d+)", _case(outcome))
    return int(match.group(1)) if match else None


def _histogram_of(props: Mapping[str, object]) -> tuple[list[float], list[float]] | None:
    """``(edges_ms, counts)`` from the ``histogram`` property, or None when absent or malformed
    (the page then says so instead of drawing a wrong plot)."""
    raw = props.get("histogram")
    if raw is None:
        return None
    try:
        data: Any = json.loads(raw) if isinstance(raw, str | bytes) else raw
        edges = [float(x) for x in data["edges_ms"]]
        counts = [float(x) for x in data["counts"]]
    except (TypeError, ValueError, KeyError, IndexError):
        return None
    ok = (
        len(counts) >= 1
        and len(edges) == len(counts) + 1
        and all(math.isfinite(x) for x in (*edges, *counts))
        and all(b > a for a, b in itertools.pairwise(edges))
        and all(c >= 0 for c in counts)
    )
    return (edges, counts) if ok else None


def _is_relative(outcome: Outcome, props: Mapping[str, object]) -> bool:
    """A latency item judged against the baseline (a ratio), not against a budget in ms."""
    return "vs-baseline" in str(_get(props, "percentile") or _case(outcome))


def _latency(anchor: str, categories: Mapping[str, list[Outcome]]) -> str:
    outcomes = categories.get("latency", [])
    sanity = next((o for o in categories.get("smoke", []) if _case(o) == "latency-sanity"), None)
    content = ""
    why = _section_why("latency", outcomes)
    if why is not None:
        content += why
    else:
        content += _latency_figures(outcomes)
        content += _latency_verdicts(outcomes)
        content += _histograms(anchor, outcomes)
        content += _skipped_reasons(outcomes)
    if sanity is not None:
        p = _props(sanity)
        mean, budget = _ms(_get(p, "mean_ms")), _ms(_get(p, "budget_ms"))
        figures = (
            f"mean {mean} per single-row call, budget {budget}"
            if _get(p, "mean_ms") is not None
            else _e(sanity.message)
        )
        note = f" {_e(sanity.message)}" if sanity.message and _get(p, "mean_ms") else ""
        content += (
            f'<p class="sanity">Smoke sanity check {_outcome_badge(sanity)} {figures}.{note}</p>'
        )
    return _sub(anchor, "Latency", content)


def _latency_figures(outcomes: Sequence[Outcome]) -> str:
    """One row per batch size: every percentile item of a size carries the same figures."""
    by_batch: dict[int | None, Mapping[str, object]] = {}
    for o in outcomes:
        p = _props(o)
        if not _is_relative(o, p) and _get(p, "p50_ms", "p99_ms") is not None:
            by_batch.setdefault(_batch_of(o, p), p)
    rows = []
    for batch, figures in sorted(by_batch.items(), key=lambda b: b[0] or 0):
        calls, rounds = _get(figures, "calls"), _get(figures, "rounds")
        runs = f"{_num(calls)} in {_num(rounds)} rounds" if calls is not None else _DASH
        rows.append(
            f'<tr><th scope="row"><span class="phone">batch size </span>'
            f"{_e(batch if batch is not None else _DASH)}</th>"
            + "".join(
                f'<td class="n">{_ms(_get(figures, f"{k}_ms"))}</td>'
                for k in ("p50", "p95", "p99", "max", "mean")
            )
            + f'<td class="n">{runs}</td>'
            f'<td class="n">{_e(_get(figures, "threads") or _DASH)}</td></tr>'
        )
    if not rows:
        return ""
    return _table(
        ["Batch size", "p50", "p95", "p99", "max", "mean", "Calls", "Threads"],
        rows,
        caption="Per call (a batch is one call); percentiles are the median over rounds.",
        cls="latency stack",
        right=range(1, 8),
    )


def _latency_verdicts(outcomes: Sequence[Outcome]) -> str:
    rows = []
    for o in outcomes:
        p = _props(o)
        if o.outcome == "skipped" and not p:
            continue  # listed with its reason under the plots
        status = str(_get(p, "status") or "")
        badge = (
            _badge(*_LATENCY_STATUS[status])
            if status in _LATENCY_STATUS and o.outcome != "skipped"
            else _outcome_badge(o)
        )
        pct = str(_get(p, "percentile") or _case(o).split("-", 1)[0])
        if _is_relative(o, p):
            label = pct.split("-", 1)[0]
            ratio = _float(_get(p, "ratio"))
            cand = _get(p, f"candidate_{label}_ms")
            base = _get(p, f"baseline_{label}_ms")
            measured = f"{ratio:.2f}&times; the baseline" if ratio is not None else _DASH
            if cand is not None and base is not None:
                measured += f" ({_ms(cand)} vs {_ms(base)})"
            cap = _get(p, "max_ratio", "limit")
            limit = f"at most {_num(cap, 3)}&times;" if cap is not None else _DASH
        else:
            measured = _ms(_get(p, "value_ms", f"{pct}_ms"))
            budget = _get(p, "budget_ms")
            limit = _ms(budget) if budget is not None else "none"
        rows.append(
            f'<tr class="{"row-fail" if o.failed else ""}">'
            f'<th scope="row"><code>{_e(_check_name(o))}</code></th><td>{badge}</td>'
            f'<td class="n">{measured}</td><td class="n">{limit}</td></tr>' + _detail_row(o, 4)
        )
    if not rows:
        return ""
    return _table(
        ["Check", "Result", "Measured", "Budget"], rows, cls="verdicts stack", right=(2, 3)
    )


def _histograms(anchor: str, outcomes: Sequence[Outcome]) -> str:
    batches: dict[int | None, list[tuple[Outcome, dict[str, object]]]] = {}
    for o in outcomes:
        p = _props(o)
        if (o.outcome == "skipped" and not p) or _is_relative(o, p):
            continue
        batches.setdefault(_batch_of(o, p), []).append((o, p))
    figures = []
    for index, (batch, items) in enumerate(sorted(batches.items(), key=lambda b: b[0] or 0)):
        hist = next((h for _, p in items if (h := _histogram_of(p)) is not None), None)
        budgets = []
        for o, p in items:
            ms = _float(_get(p, "budget_ms"))
            if ms is not None and ms > 0:
                pct = str(_get(p, "percentile") or _case(o).split("-", 1)[0])
                budgets.append(_Budget(f"{pct} budget", ms))
        figures_of = next((p for _, p in items if _get(p, "p50_ms") is not None), {})
        markers = [
            (label, v)
            for label in ("p50", "p99")
            if (v := _float(_get(figures_of, f"{label}_ms"))) is not None and v > 0
        ]
        name = f"batch size {batch}" if batch is not None else "these calls"
        fig_id = f"{anchor}-hist{index + 1}"
        if hist is None:
            plot = (
                '<p class="why"><span class="why-label">No plot.</span> No histogram of call '
                f"times was recorded for {_e(name)}.</p>"
            )
        else:
            plot = _histogram_svg(fig_id, name, hist[0], hist[1], budgets, markers)
        if budgets:
            shown = "; ".join(f"{_e(b.label)} {_ms(b.ms)}" for b in _unique(budgets))
            caption = f"Call times, {_e(name)}: {shown} (red line)."
        else:
            caption = f"Call times, {_e(name)}: no absolute budget is configured."
        figures.append(f'<figure class="hist">{plot}<figcaption>{caption}</figcaption></figure>')
    return f'<div class="hists">{"".join(figures)}</div>' if figures else ""


def _unique(budgets: Sequence[_Budget]) -> list[_Budget]:
    seen: dict[tuple[str, float], _Budget] = {}
    for b in budgets:
        seen.setdefault((b.label, b.ms), b)
    return list(seen.values())


def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:
        ticks = []
        for exp in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
            for m in (1, 2, 5):
                t = m * 10.0**exp
                if lo <= t <= hi:
                    ticks.append(t)
        if len(ticks) > 7:
            ticks = [t for t in ticks if f"{t:.0e}".startswith("1")]
        return ticks
    span = hi - lo
    raw = span / 5
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if span / (m * step) <= 6:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _tick_label(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:g}"
    return f"{value:.3g}"


def _histogram_svg(
    fig_id: str,
    name: str,
    edges: Sequence[float],
    counts: Sequence[float],
    budgets: Sequence[_Budget],
    markers: Sequence[tuple[str, float]],
) -> str:
    """Bars of call counts over call time, with each budget a vertical line.

    The x axis turns logarithmic when the budget is far from the calls (a 100 ms budget for
    0.3 ms calls), so neither the bars nor the line end up squeezed against an edge.
    """
    width, height = 480.0, 228.0
    left, right, top, bottom = 54.0, 12.0, 44.0, 38.0
    pw, ph = width - left - right, height - top - bottom
    lo, hi = edges[0], edges[-1]
    for budget in budgets:
        lo, hi = min(lo, budget.ms), max(hi, budget.ms)
    log = lo > 0 and hi / lo > 20
    if log:
        lo, hi = lo / 1.15, hi * 1.15
    else:
        pad = (hi - lo) * 0.04 or 1.0
        lo, hi = max(0.0, lo - pad), hi + pad

    def x(value: float) -> float:
        if log:
            value = max(value, lo)
            return left + pw * (math.log10(value) - math.log10(lo)) / (
                math.log10(hi) - math.log10(lo)
            )
        return left + pw * (value - lo) / (hi - lo)

    peak = max(counts) or 1.0

    def y(count: float) -> float:
        return top + ph * (1 - count / peak)

    parts = [
        f'<svg class="histogram" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-labelledby="{fig_id}-t {fig_id}-d" preserveAspectRatio="xMidYMid meet">',
        f'<title id="{fig_id}-t">Histogram of call times, {_e(name)}</title>',
        f'<desc id="{fig_id}-d">{int(sum(counts)):,} calls from {_ms(edges[0])} to '
        f"{_ms(edges[-1])}" + "".join(f"; {_e(b.label)} {_ms(b.ms)}" for b in budgets) + "</desc>",
        f'<line class="axis" x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}"/>',
        f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}"/>',
    ]
    for t in _ticks(lo, hi, log):
        tx = x(t)
        parts.append(
            f'<line class="grid" x1="{tx:.1f}" y1="{top}" x2="{tx:.1f}" y2="{top + ph}"/>'
            f'<text class="tick" x="{tx:.1f}" y="{top + ph + 16}" text-anchor="middle">'
            f"{_tick_label(t)}</text>"
        )
    parts.append(
        f'<text class="tick" x="{left + pw}" y="{height - 3}" text-anchor="end">'
        f"call time (ms{', log scale' if log else ''})</text>"
        f'<text class="tick" x="{left - 6}" y="{top + 4}" text-anchor="end">{int(peak):,}</text>'
        f'<text class="tick" x="{left - 6}" y="{top + ph}" text-anchor="end">0</text>'
        f'<text class="tick" transform="rotate(-90)" x="{-(top + ph / 2):.1f}" y="12" '
        'text-anchor="middle">calls</text>'
    )
    for (a, b), c in zip(itertools.pairwise(edges), counts, strict=True):
        if c <= 0:
            continue
        x0, x1 = x(a), x(b)
        parts.append(
            f'<rect class="bar" x="{x0:.2f}" y="{y(c):.2f}" width="{max(x1 - x0 - 0.6, 0.8):.2f}" '
            f'height="{top + ph - y(c):.2f}"><title>{_ms(a)} to {_ms(b)}: {int(c):,} calls</title>'
            "</rect>"
        )
    for label, value in markers:
        mx = x(value)
        parts.append(
            f'<line class="marker" x1="{mx:.1f}" y1="{top}" x2="{mx:.1f}" y2="{top + ph}"/>'
            f'<text class="marker-label" x="{mx + 3:.1f}" y="{top + 12}">{_e(label)}</text>'
        )
    for i, line in enumerate(_unique(budgets)):
        bx = x(line.ms)
        anchor = "end" if bx > left + pw * 0.7 else "start"
        tx = bx - 4 if anchor == "end" else bx + 4
        parts.append(
            f'<line class="budget-line" id="{fig_id}-budget{i + 1}" x1="{bx:.1f}" '
            f'y1="{top - 14}" x2="{bx:.1f}" y2="{top + ph}"><title>{_e(line.label)} '
            f"{_ms(line.ms)}</title></line>"
            f'<text class="budget-label" x="{tx:.1f}" y="{top - 5 - 17 * i}" '
            f'text-anchor="{anchor}">{_e(line.label)} {_ms(line.ms)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


# -- baseline comparison --------------------------------------------------------------------


def _compare_svg(candidate: float, baseline: float, limit: float | None, passed: bool) -> str:
    values = [candidate, baseline, *([limit] if limit is not None else [])]
    lo, hi = min(0.0, *values), max(0.0, *values)
    span = (hi - lo) or 1.0
    w, left = 150.0, 2.0

    def x(v: float) -> float:
        return left + (w - 2 * left) * (v - lo) / span

    zero = x(0.0)
    kind = "pass" if passed else "fail"
    parts = [
        f'<svg class="spark" viewBox="0 0 {w:.0f} 22" role="img" aria-label="candidate '
        f"{candidate:.4g}, baseline {baseline:.4g}"
        + (f", limit {limit:.4g}" if limit is not None else "")
        + '">',
        f'<rect class="bar-{kind}" x="{min(zero, x(candidate)):.1f}" y="2" '
        f'width="{max(abs(x(candidate) - zero), 1):.1f}" height="8"/>',
        f'<rect class="bar-base" x="{min(zero, x(baseline)):.1f}" y="12" '
        f'width="{max(abs(x(baseline) - zero), 1):.1f}" height="8"/>',
    ]
    if limit is not None:
        parts.append(
            f'<line class="limit-line" x1="{x(limit):.1f}" y1="0" x2="{x(limit):.1f}" y2="22"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _baseline(anchor: str, outcomes: Sequence[Outcome]) -> str:
    why = _section_why("baseline", outcomes)
    if why is not None:
        return _sub(anchor, "Compared with the baseline", why)
    content = ""
    version = next((_get(_props(o), "baseline_version") for o in outcomes), None)
    sha = next((_get(_props(o), "baseline_sha256") for o in outcomes), None)
    if version or sha:
        content += (
            '<p class="muted">Baseline (the model in production) '
            + (f"<code>{_e(version)}</code>" if version else "")
            + (f' sha256 <code class="hash">{_e(str(sha)[:16])}…</code>' if sha else "")
            + "</p>"
        )
    metric_rows = []
    other_rows = []
    for o in outcomes:
        p = _props(o)
        if o.outcome == "skipped" and _get(p, "metric") is None:
            continue
        badge = _outcome_badge(o)
        if _get(p, "metric") is not None:
            cand, base = _float(_get(p, "candidate")), _float(_get(p, "baseline"))
            limit = _float(_get(p, "threshold"))
            plot = (
                _compare_svg(cand, base, limit, not o.failed)
                if cand is not None and base is not None
                else ""
            )
            ratio = _float(_get(p, "ratio"))
            metric_rows.append(
                f'<tr class="{"row-fail" if o.failed else ""}">'
                f'<th scope="row">{_e(_get(p, "metric"))}</th><td>{badge}</td>'
                f'<td class="n">{_num(cand)}</td><td class="n">{_num(base)}</td>'
                f'<td class="n">{_pct(ratio) if ratio is not None else _DASH}</td>'
                f'<td class="n">{_num(limit)}</td><td class="n">{_num(_get(p, "n"))}</td>'
                f"<td>{plot}</td></tr>"
            )
        elif _get(p, "candidate_error_rate") is not None:
            other_rows.append(
                f'<tr class="{"row-fail" if o.failed else ""}"><th scope="row">error rate</th>'
                f"<td>{badge}</td>"
                f'<td class="n">{_pct(_get(p, "candidate_error_rate"))}</td>'
                f'<td class="n">{_pct(_get(p, "baseline_error_rate"))}</td>'
                f'<td class="n">at most {_pct(_get(p, "limit"))}</td></tr>' + _detail_row(o, 5)
            )
        elif _get(p, "psi") is not None:
            flips = _get(p, "label_flips")
            detail = f"PSI {_num(_get(p, 'psi'))}" + (
                f", {_pct(flips)} of labels changed" if flips is not None else ""
            )
            other_rows.append(
                f'<tr class="{"row-fail" if o.failed else ""}"><th scope="row">prediction shift'
                f'</th><td>{badge}</td><td colspan="3">{detail}</td></tr>' + _detail_row(o, 5)
            )
        elif o.failed:
            other_rows.append(
                f'<tr class="row-fail"><th scope="row"><code>{_e(_case(o))}</code></th>'
                f'<td>{badge}</td><td colspan="3"></td></tr>' + _detail_row(o, 5)
            )
    if metric_rows:
        content += _table(
            ["Metric", "Result", "Candidate", "Baseline", "Ratio", "Limit", "Rows", "Plot"],
            metric_rows,
            caption="Candidate vs baseline on the same labelled rows; the limit is the floor "
            "(or ceiling, for lower-is-better metrics) the candidate must reach. Plot: candidate "
            "bar above the grey baseline bar, the limit as a line.",
            cls="compare stack",
            right=range(2, 7),
        )
    if other_rows:
        content += _table(
            ["Check", "Result", "Candidate", "Baseline", "Limit"],
            other_rows,
            cls="compare-other stack",
            right=range(2, 5),
        )
    content += _skipped_reasons(outcomes)
    return _sub(anchor, "Compared with the baseline", content)


# -- rollout --------------------------------------------------------------------------------


def _share(stage: str) -> float:
    try:
        return float(stage.rstrip("%"))
    except ValueError:
        return math.inf


def _rollout(anchor: str, outcomes: Sequence[Outcome]) -> str:
    if not outcomes:
        return _sub(anchor, "Rollout", _why(NOT_COLLECTED["rollout"]))
    stages = []
    for o in outcomes:
        p = _props(o)
        stage = str(_get(p, "stage") or _case(o))
        status = str(_get(p, "status") or "")
        if status not in _STAGE:
            status = {"passed": "advanced", "skipped": "not_reached"}.get(o.outcome, "rolled_back")
        stages.append((_share(stage), stage, status, o, p))
    stages.sort(key=lambda s: s[0])
    if all(s[2] == "not_reached" and not s[4].get("status") for s in stages):
        why = _section_why("rollout", outcomes)
        return _sub(anchor, "Rollout", why or "")
    items = []
    for _, stage, status, o, p in stages:
        label, kind = _STAGE[status]
        facts = []
        if status == "not_reached":
            pass  # no rows were replayed; zeros would read like a measurement
        elif _get(p, "rows") is not None:
            facts.append(f"{_num(_get(p, 'rows'))} rows replayed")
        if status != "not_reached" and _get(p, "candidate_requests") is not None:
            facts.append(f"{_num(_get(p, 'candidate_requests'))} to the candidate")
        items.append(
            f'<li class="stage {kind}"><p class="stage-share">{_e(stage)}</p>'
            f"<p>{_badge(label, kind)}</p>"
            + (f'<p class="muted">{", ".join(facts)}</p>' if facts else "")
            + (f'<p class="msg">{_e(o.message)}</p>' if o.message else "")
            + "</li>"
        )
    content = (
        '<p class="muted">The holdout replayed as traffic with sticky, hash-based routing; each '
        "stage is judged before the next one opens.</p>"
        f'<ol class="stages" aria-label="Rollout stages">{"".join(items)}</ol>'
    )
    return _sub(anchor, "Rollout", content)


# -- drift ----------------------------------------------------------------------------------


def _drift_svg(psi: float, threshold: float | None, passed: bool) -> str:
    w, h = 120.0, 14.0
    scale = max(psi, threshold or 0.0) * 1.25 or 1.0
    bar = max(w * min(psi / scale, 1.0), 1.0)
    kind = "pass" if passed else "fail"
    label = f"PSI {psi:.3g}" + (f", threshold {threshold:.3g}" if threshold is not None else "")
    parts = [
        f'<svg class="spark" viewBox="0 0 {w:.0f} {h:.0f}" role="img" aria-label="{_e(label)}">',
        f'<rect class="track" x="0" y="3" width="{w:.0f}" height="8"/>',
        f'<rect class="bar-{kind}" x="0" y="3" width="{bar:.1f}" height="8"/>',
    ]
    if threshold is not None:
        tx = w * threshold / scale
        parts.append(f'<line class="limit-line" x1="{tx:.1f}" y1="0" x2="{tx:.1f}" y2="{h:.0f}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _drift(anchor: str, outcomes: Sequence[Outcome]) -> str:
    why = _section_why("drift", outcomes)
    if why is not None:
        return _sub(anchor, "Drift", why)
    rows = []
    ordered = sorted(outcomes, key=lambda o: _case(o) == "prediction")
    for o in ordered:
        p = _props(o)
        if o.outcome == "skipped" and _get(p, "psi") is None:
            continue
        psi, threshold = _float(_get(p, "psi")), _float(_get(p, "psi_threshold"))
        passed = _truthy(_get(p, "passed"))
        ok = (not o.failed) if passed is None else passed
        plot = _drift_svg(psi, threshold, ok) if psi is not None else ""
        test = str(_get(p, "test") or "")
        stat_name = {"ks": "KS D", "chi2": "χ²"}.get(test, _e(test) or "statistic")
        effect_name = {"ks": "D", "chi2": "Cramér's V"}.get(test, "effect")
        feature = _get(p, "feature") or _case(o)
        limit = f'<span class="muted">limit {_num(threshold, 3)}</span>' if threshold else ""
        rows.append(
            f'<tr class="{"row-fail" if o.failed else ""}"><th scope="row">{_e(feature)}</th>'
            f"<td>{_outcome_badge(o)}</td><td>{_e(_get(p, 'kind') or _DASH)}</td>"
            f'<td class="psi"><span class="psi-value">{_num(psi, 3)}</span>{plot}{limit}</td>'
            f'<td class="n">{stat_name} {_num(_get(p, "statistic"), 3)}</td>'
            f'<td class="n">{_num(_get(p, "pvalue"), 3)} '
            f'<span class="muted">(&lt; {_num(_get(p, "pvalue_threshold"), 3)})</span></td>'
            f'<td class="n">{effect_name} {_num(_get(p, "effect"), 3)} '
            f'<span class="muted">(≥ {_num(_get(p, "effect_floor"), 3)})</span></td></tr>'
            + _detail_row(o, 7)
        )
    content = _table(
        [
            "Feature",
            "Result",
            "Kind",
            "PSI, limit",
            "Test statistic",
            "p-value",
            "Effect size",
        ],
        rows,
        caption="Production inputs against the reference; a feature drifts when the change is "
        "both significant (p-value) and material (PSI or effect size).",
        cls="drift stack",
        right=(4, 5, 6),
    )
    return _sub(anchor, "Drift", content + _skipped_reasons(outcomes))


# -- style ----------------------------------------------------------------------------------

_CSS = """
:root{color-scheme:light dark;--bg:#f5f6f8;--card:#fff;--fg:#1b1f24;--muted:#59636e;
--border:#d5dae0;--pass:#116329;--pass-bg:#dafbe1;--fail:#a40e26;--fail-bg:#ffebe9;
--warn:#7d4e00;--warn-bg:#fff4c2;--skip:#4e5761;--skip-bg:#e9ecef;--bar:#5b7fb8;
--base:#9aa4ae;--code-bg:#eef1f4;--grid:#e3e7eb}
@media (prefers-color-scheme:dark){:root{--bg:#0f1318;--card:#171c23;--fg:#e6edf3;
--muted:#9ba6b2;--border:#2f3742;--pass:#56d364;--pass-bg:#0f2d19;--fail:#ff7b72;
--fail-bg:#3a1518;--warn:#e3b341;--warn-bg:#332607;--skip:#a8b1bb;--skip-bg:#262d36;
--bar:#6f9be0;--base:#5d6873;--code-bg:#222a33;--grid:#262e38}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,
"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1120px;margin:0 auto;padding:24px 20px 40px}
h1{font-size:1.35rem;margin:0 0 8px;color:var(--muted);font-weight:600}
h2{font-size:1.2rem;margin:28px 0 12px;overflow-wrap:anywhere}
h3{font-size:1.02rem;margin:0 0 10px}
.h4{font-size:.92rem;margin:14px 0 6px;color:var(--muted)}
code{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--code-bg);
padding:1px 5px;border-radius:4px;overflow-wrap:anywhere}
.hash{word-break:break-all}
.muted{color:var(--muted)}
.top{margin-bottom:8px}
.verdict{font-size:1.55rem;margin:0 0 6px;padding:12px 16px;border-radius:10px;
border:2px solid;line-height:1.25}
.verdict.pass{color:var(--pass);background:var(--pass-bg)}
.verdict.fail{color:var(--fail);background:var(--fail-bg)}
.verdict-mark{display:inline-block;width:1.2em}
.tally{margin:6px 0}
.t-pass{color:var(--pass);font-weight:600}.t-fail{color:var(--fail);font-weight:600}
.t-skip{color:var(--skip);font-weight:600}
.versions{list-style:none;padding:0;margin:4px 0}
.versions li{margin:2px 0}
.card{background:var(--card);border:1px solid var(--border);border-radius:10px;padding:14px 16px;
margin:12px 0}
.fail-card{border-color:var(--fail);border-width:2px}
.fail-card h2{margin:0 0 8px;color:var(--fail)}
.failures{margin:0;padding-left:22px}
.failures li{margin:0 0 10px}
.message{margin:4px 0 0;white-space:pre-wrap;overflow-wrap:anywhere}
.badge{display:inline-block;font:700 11.5px/1.6 system-ui,sans-serif;letter-spacing:.03em;
padding:0 7px;border-radius:999px;white-space:nowrap;border:1px solid}
.badge.pass{color:var(--pass);background:var(--pass-bg)}
.badge.fail{color:var(--fail);background:var(--fail-bg)}
.badge.warn{color:var(--warn);background:var(--warn-bg)}
.badge.skip{color:var(--skip);background:var(--skip-bg)}
.scroll{overflow-x:auto;margin:6px 0 10px}
table{border-collapse:collapse;width:100%;font-size:14px}
caption{caption-side:bottom;text-align:left;color:var(--muted);font-size:12.5px;padding-top:6px}
th,td{padding:6px 8px;border-bottom:1px solid var(--border);text-align:left;vertical-align:top}
th.n{text-align:right}
thead th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
tbody th{font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.msg{color:var(--muted);min-width:14em;overflow-wrap:anywhere}
tr.row-fail>th,tr.row-fail>td{background:var(--fail-bg)}
tr:has(+tr.detail)>*{border-bottom:0}
tr.detail>td{padding-top:0;color:var(--fg)}
table.verdicts tbody th,table.drift tbody th{white-space:nowrap}

td.psi{white-space:nowrap}
td.psi svg.spark{display:inline-block;vertical-align:middle;margin:0 6px}
.psi-value{display:inline-block;min-width:3.2em;text-align:right;font-variant-numeric:tabular-nums}
.split{display:grid;grid-template-columns:minmax(0,540px) minmax(0,1fr);gap:8px 28px}
@media (max-width:900px){.split{grid-template-columns:minmax(0,1fr)}}
.split .h4{margin-top:6px}
details{margin-top:8px}
summary{cursor:pointer;color:var(--muted)}
.skips{list-style:none;padding:0;margin:4px 0}
.skips li{margin:4px 0;overflow-wrap:anywhere}
.skips .checks{display:block;margin-left:4px;color:var(--muted)}
.why{color:var(--muted);margin:4px 0}
.why-label{font-weight:700;color:var(--fg)}
.facts{display:grid;grid-template-columns:1fr;gap:0;margin:0}
.facts>div{display:grid;grid-template-columns:12em 1fr;gap:12px;padding:5px 0;
border-bottom:1px solid var(--border)}
.facts dt{color:var(--muted)}
.facts dd{margin:0;min-width:0;overflow-wrap:anywhere}
.hists{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,440px),1fr));gap:12px}
figure.hist{margin:0}
figcaption{font-size:12.5px;color:var(--muted)}
svg.histogram{width:100%;height:auto;display:block}
svg .axis{stroke:var(--muted);stroke-width:1}
svg .grid{stroke:var(--grid);stroke-width:1}
svg text{paint-order:stroke;stroke:var(--card);stroke-width:3px;stroke-linejoin:round}
svg .tick{fill:var(--muted);font:12px system-ui,sans-serif}
svg .bar{fill:var(--bar)}
svg .marker{stroke:var(--muted);stroke-width:1;stroke-dasharray:3 3}
svg .marker-label{fill:var(--muted);font:12px system-ui,sans-serif}
svg .budget-line{stroke:var(--fail);stroke-width:2.5}
svg .budget-label{fill:var(--fail);font:600 13px system-ui,sans-serif}
svg.spark{width:120px;height:auto;display:block}
svg .track{fill:var(--grid)}
svg .bar-pass{fill:var(--pass)}
svg .bar-fail{fill:var(--fail)}
svg .bar-base{fill:var(--base)}
svg .limit-line{stroke:var(--fg);stroke-width:2}
.sanity{margin:8px 0 0}
.stages{list-style:none;padding:0;margin:8px 0 0;display:grid;
grid-template-columns:repeat(auto-fit,minmax(190px,1fr));gap:10px}
.stage{border:1px solid var(--border);border-top:4px solid var(--skip);border-radius:8px;
padding:8px 10px}
.stage.pass{border-top-color:var(--pass)}.stage.fail{border-top-color:var(--fail)}
.stage.warn{border-top-color:var(--warn)}
.stage p{margin:2px 0}
.stage .msg{font-size:13px;overflow-wrap:anywhere}
.stage-share{font-size:1.3rem;font-weight:700}
footer{color:var(--muted);font-size:12.5px;margin-top:28px}
.phone{display:none}
@media (max-width:600px){main{padding:14px 10px 28px}.verdict{font-size:1.2rem}
.facts>div{grid-template-columns:1fr;gap:0}.card{padding:12px 10px}
th,td{padding:6px 5px}table{font-size:13.5px}
svg .tick,svg .marker-label{font-size:15px}svg .budget-label{font-size:16px}
table.stack,table.stack>tbody{display:block}
table.stack>thead{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);
white-space:nowrap}
table.stack>caption{display:block;padding:0 0 6px}
table.stack tr{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:4px 12px;
padding:8px 4px;border-bottom:1px solid var(--border)}
table.stack tr>*{border:0;padding:0;text-align:left;white-space:normal;background:none}
table.stack tr>th,table.stack tr>td[colspan],table.stack td.psi,table.stack td.msg{
grid-column:1/-1}
table.stack tr.row-fail>*{background:none}
table.stack tr.row-fail{background:var(--fail-bg)}
table.stack tr:has(+tr.detail){border-bottom:0;padding-bottom:2px}
table.stack tr.detail{padding-top:0}
table.stack td[data-label]::before{content:attr(data-label);display:block;font-size:11px;
text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
table.stack svg.spark{display:block;margin:2px 0}
table.verdicts tr{grid-template-columns:repeat(3,minmax(0,1fr))}
.phone{display:inline}}
"""
