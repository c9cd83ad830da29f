"""The HTML report, read back through a small DOM built with the standard library's parser."""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from deploy_gate.html import render_html, write_html
from deploy_gate.report import PROJECT, GateReport, Outcome

ARTIFACT = "models/candidate.joblib"
EVIL = "<script>alert(1)</script>"

# -- sample reports (also used by the browser test and benchmarks/render_sample_report.py) ----


def add(
    report: GateReport,
    check: str,
    outcome: str = "passed",
    message: str = "",
    artifact: str = ARTIFACT,
    **props: Any,
) -> Outcome:
    """Put one gate outcome into ``report`` as the reporter would after ``GateReport.add``."""
    category = check.split("[", 1)[0]
    nodeid = f"{artifact}::{check}"
    o = Outcome(nodeid, category, artifact, outcome, message, list(props.items()))
    report.outcomes[nodeid] = o
    return o


def histogram(median_ms: float, calls: int, seed: int) -> str:
    """A skewed histogram of call times like the latency check records, as its JSON string."""
    rng = random.Random(seed)
    times = sorted(median_ms * rng.lognormvariate(0, 0.18) for _ in range(calls))
    lo, hi, bins = times[0], times[-1], 28
    edges = [lo + (hi - lo) * i / bins for i in range(bins + 1)]
    counts = [0] * bins
    for t in times:
        counts[min(int((t - lo) / (hi - lo) * bins), bins - 1)] += 1
    return json.dumps({"edges_ms": [round(e, 4) for e in edges], "counts": counts})


def _common(report: GateReport) -> None:
    add(report, "smoke[load]", loader="joblib", model_type="Pipeline", task="classifier")
    for case in ("inference-single", "output-valid", "batch", "batch-consistency"):
        add(report, f"smoke[{case}]")
    add(report, "smoke[deterministic]")
    add(report, "smoke[latency-sanity]", mean_ms=0.412, budget_ms=100.0, threads=1)
    for case in ("shape", "numeric-dtype", "no-nan", "no-inf", "edge-rows"):
        add(report, f"output[{case}]", rows_checked=500)
    add(report, "output[probabilities-range]")
    add(report, "output[probabilities-sum]")
    add(report, "output[known-labels]")
    add(
        report,
        "output[regression-range]",
        "skipped",
        "classifier: outputs are labels, the range check is for regressors",
    )
    for case in ("missing-artifact", "unknown-feature", "missing-feature", "nan-input"):
        add(report, f"errors[{case}]")
    for case in ("wrong-dtype", "empty-batch", "reordered-columns", "not-loaded"):
        add(report, f"errors[{case}]")
    add(
        report,
        "version[version-id]",
        version_id="v_20261126T091502Z_4a00e660",
        sha256="4a00e660" + "9c3f1b7e" * 7,
        size=48213,
        path=ARTIFACT,
        loader="joblib",
        model_type="Pipeline",
        task="classifier",
        **{"version.scikit-learn": "1.9.0", "version.numpy": "2.4.1", "version.python": "3.11.9"},
    )


def latency_items(
    report: GateReport, *, p99_32: float, budget_32: float, artifact: str = ARTIFACT
) -> None:
    """Items as checks.py records them: one per percentile and batch size, each with the
    figures of its batch size; the failed one without the histogram (recorded after judging)."""
    for batch, p50, budget, hist in (
        (1, 0.31, 1.0, histogram(0.31, 2000, seed=1)),
        (32, p99_32 * 0.8, budget_32, histogram(p99_32 * 0.8, 600, seed=32)),
    ):
        figures = {
            "p50_ms": p50,
            "p95_ms": p50 * 1.16,
            "p99_ms": p99_32 if batch == 32 else 0.45,
            "max_ms": p50 * 1.5,
            "mean_ms": p50 * 1.03,
            "calls": 2000 if batch == 1 else 600,
            "rounds": 5,
            "calls_per_round": 400 if batch == 1 else 120,
            "batch_size": batch,
            "threads": 1,
        }
        for pct in ("p50", "p95", "p99"):
            value = float(figures[f"{pct}_ms"])
            judged = pct == "p99"
            failed = judged and value > budget
            props: dict[str, Any] = {"percentile": pct, "batch": batch, "value_ms": value}
            props |= figures
            if judged:
                props["budget_ms"] = budget
            props["status"] = ("failed" if failed else "passed") if judged else "measured"
            if not failed:
                props["histogram"] = hist
            message = (
                f"{pct} latency {value:.1f} ms exceeds budget {budget:.1f} ms (batch={batch}, "
                "5 rounds x 120 calls, round p99 range 58.3-66.0 ms, threads=1)"
                if failed
                else ""
            )
            add(
                report,
                f"latency[{pct}-batch={batch}]",
                "failed" if failed else "passed",
                message,
                **props,
            )
    add(
        report,
        "latency[p99-vs-baseline-batch=1]",
        percentile="p99-vs-baseline",
        batch=1,
        ratio=1.04,
        candidate_p99_ms=0.45,
        baseline_p99_ms=0.433,
        diff_ms=0.017,
        max_ratio=1.5,
        noise_floor_ms=0.5,
        calls=2000,
        rounds=5,
        batch_size=1,
        threads=1,
        status="passed",
    )


def approved_report() -> GateReport:
    """A green gate without a baseline or production data (those sections must say why)."""
    report = GateReport()
    _common(report)
    latency_items(report, p99_32=3.1, budget_32=25.0)
    project = "tests/test_business_rules.py::test_long_tenure_customers_are_not_flagged"
    nodeid = f"{project}[{ARTIFACT}]"
    report.outcomes[nodeid] = Outcome(nodeid, PROJECT, None)
    return report


def blocked_report() -> GateReport:
    """A gate blocked by latency, a metric, the rollout and drift, with everything measured."""
    report = GateReport()
    _common(report)
    latency_items(report, p99_32=61.2, budget_32=50.0)
    base = {"baseline_version": "v_20261002T140311Z_9be41c07", "baseline_sha256": "9be41c07" * 8}
    add(
        report,
        "baseline[roc_auc]",
        metric="roc_auc",
        candidate=0.8813,
        baseline=0.8702,
        ratio=1.0128,
        threshold=0.8267,
        n=1200,
        **base,
    )
    add(
        report,
        "baseline[accuracy]",
        metric="accuracy",
        candidate=0.8142,
        baseline=0.8233,
        ratio=0.9889,
        threshold=0.7821,
        n=1200,
        **base,
    )
    add(
        report,
        "baseline[recall]",
        "failed",
        "recall 0.5120 is below the floor 0.5866 (95% of the baseline's 0.6175, n=1200)",
        metric="recall",
        candidate=0.512,
        baseline=0.6175,
        ratio=0.8291,
        threshold=0.5866,
        n=1200,
        **base,
    )
    add(
        report,
        "baseline[error-rate]",
        candidate_error_rate=0.0,
        baseline_error_rate=0.0,
        limit=0.01,
        **base,
    )
    add(report, "baseline[prediction-shift]", psi=0.043, label_flips=0.061, **base)
    add(report, "rollout[5%]", stage="5%", status="advanced", rows=60, candidate_requests=3, **base)
    add(
        report,
        "rollout[25%]",
        "failed",
        "rolled back at 25%: candidate error rate 21.4% vs baseline 17.6% (one-sided test "
        "p=0.003 < 0.01, n=312 candidate requests)",
        stage="25%",
        status="rolled_back",
        rows=300,
        candidate_requests=312,
        **base,
    )
    add(
        report,
        "rollout[50%]",
        "skipped",
        "not reached: the rollout rolled back at 25%",
        stage="50%",
        status="not_reached",
        rows=0,
        candidate_requests=0,
    )
    add(
        report,
        "rollout[100%]",
        "skipped",
        "not reached: the rollout rolled back at 25%",
        stage="100%",
        status="not_reached",
        rows=0,
        candidate_requests=0,
    )
    drift = {"psi_threshold": 0.2, "pvalue_threshold": 0.01}
    add(
        report,
        "drift[tenure_months]",
        feature="tenure_months",
        kind="numeric",
        psi=0.031,
        test="ks",
        statistic=0.041,
        pvalue=0.21,
        effect=0.041,
        effect_floor=0.1,
        passed=True,
        **drift,
    )
    add(
        report,
        "drift[monthly_charges]",
        "failed",
        "monthly_charges drifted: PSI 0.412 > 0.2, KS D 0.231 (p=1.2e-19 < 0.01); the share "
        "above 90.0 rose from 9.8% to 27.5%",
        feature="monthly_charges",
        kind="numeric",
        psi=0.412,
        test="ks",
        statistic=0.231,
        pvalue=1.2e-19,
        effect=0.231,
        effect_floor=0.1,
        passed=False,
        **drift,
    )
    add(
        report,
        "drift[contract]",
        feature="contract",
        kind="categorical",
        psi=0.012,
        test="chi2",
        statistic=3.1,
        pvalue=0.21,
        effect=0.03,
        effect_floor=0.1,
        passed=True,
        **drift,
    )
    add(
        report,
        "drift[prediction]",
        feature="prediction",
        kind="numeric",
        psi=0.088,
        test="ks",
        statistic=0.07,
        pvalue=0.02,
        effect=0.07,
        effect_floor=0.1,
        passed=True,
        **drift,
    )
    project = "tests/test_business_rules.py::test_long_tenure_customers_are_not_flagged"
    nodeid = f"{project}[{ARTIFACT}]"
    report.outcomes[nodeid] = Outcome(nodeid, PROJECT, None)
    return report


# -- a small DOM ------------------------------------------------------------------------------

VOID = {"meta", "link", "br", "hr", "img", "input", "source", "wbr", "col", "area", "base"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def iter(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None) -> list[Node]:
        return [
            n
            for n in self.iter()
            if (tag is None or n.tag == tag) and (cls is None or cls in n.classes)
        ]

    def by_id(self, ident: str) -> Node:
        found = [n for n in self.iter() if n.attrs.get("id") == ident]
        assert len(found) == 1, f"{len(found)} elements with id {ident!r}"
        return found[0]

    @property
    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text for c in self.children]
        return re.sub(r"\s+", " ", "".join(parts))


class DOM(HTMLParser):
    """Builds a Node tree and fails on mismatched tags, so a broken page cannot pass."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.current = self.root
        self.feed(text)
        self.close()
        assert self.current is self.root, f"unclosed <{self.current.tag}>"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.current.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.current))

    def handle_endtag(self, tag: str) -> None:
        assert self.current.tag == tag, f"</{tag}> closes <{self.current.tag}>"
        assert self.current.parent is not None
        self.current = self.current.parent

    def handle_data(self, data: str) -> None:
        self.current.children.append(data)


def parse(page: str) -> Node:
    return DOM(page).root


def section(root: Node, title: str, artifact: int = 1) -> Node:
    """The card whose h3 is ``title`` inside the ``artifact``-th artifact section."""
    art = root.by_id(f"a{artifact}")
    for node in art.find_all("section", "card"):
        h3 = node.find_all("h3")
        if h3 and h3[0].text.strip() == title:
            return node
    raise AssertionError(f"no section {title!r}")


# -- tests ----------------------------------------------------------------------------------


def test_an_approved_run_says_approved_at_the_top_with_its_version_id() -> None:
    root = parse(render_html(approved_report()))
    verdict = root.by_id("verdict")
    assert verdict.text.strip().endswith("APPROVED FOR DEPLOYMENT")
    assert "pass" in verdict.classes
    header = root.find_all("header")[0]
    assert "v_20261126T091502Z_4a00e660" in header.text
    assert not root.find_all(cls="fail-card")
    assert "APPROVED FOR DEPLOYMENT" in root.find_all("title")[0].text


def test_a_blocked_run_lists_every_failed_check_with_its_message() -> None:
    report = blocked_report()
    root = parse(render_html(report))
    failed = report.failures()
    assert len(failed) == 4
    assert root.by_id("verdict").text.strip().endswith("DEPLOYMENT BLOCKED (4 failed)")
    assert "fail" in root.by_id("verdict").classes
    failures = root.by_id("failures")
    items = failures.find_all("li")
    assert len(items) == len(failed)
    for o, item in zip(failed, items, strict=True):
        assert o.nodeid in item.text
        assert o.message in item.text
        assert "FAIL" in item.text  # the word, not only the red colour


def test_the_checklist_counts_each_category_and_explains_skips() -> None:
    root = parse(render_html(blocked_report()))
    checklist = section(root, "Checklist")
    rows = {
        r.find_all("th")[0].text.strip(): [c.text.strip() for c in r.find_all("td")]
        for r in checklist.find_all("table", "checklist")[0].find_all("tbody")[0].find_all("tr")
    }
    assert rows["smoke"] == ["✓ PASS", "7", "0", "0"]
    assert rows["output"] == ["✓ PASS", "8", "0", "1"]
    assert rows["latency"] == ["✗ FAIL", "6", "1", "0"]
    assert rows["rollout"] == ["✗ FAIL", "1", "1", "2"]
    skips = checklist.find_all("ul", "skips")[0].text
    assert "classifier: outputs are labels, the range check is for regressors" in skips
    assert "output[regression-range]" in skips
    # Stages skipped for the same reason read as one line naming both.
    assert skips.count("not reached: the rollout rolled back at 25%") == 1


def test_the_latency_histogram_draws_the_budget_as_a_line_in_the_svg() -> None:
    root = parse(render_html(blocked_report()))
    latency = section(root, "Latency")
    svgs = latency.find_all("svg", "histogram")
    assert len(svgs) == 2  # batch sizes 1 and 32
    batch32 = svgs[1]
    lines = batch32.find_all("line", "budget-line")
    assert len(lines) == 1
    assert "p99 budget 50.0 ms" in batch32.text
    bars = batch32.find_all("rect", "bar")
    assert bars
    # The budget line sits right of most calls at 49 ms and left of the slowest ones.
    budget_x = float(lines[0].attrs["x1"])
    xs = [float(b.attrs["x"]) for b in bars]
    assert min(xs) < budget_x < max(xs)
    assert len(svgs[0].find_all("line", "budget-line")) == 1
    assert "p99 budget 1.0 ms" in svgs[0].text


def test_the_latency_tables_give_figures_per_batch_size_and_each_verdict() -> None:
    latency = section(parse(render_html(blocked_report())), "Latency")
    figures = latency.find_all("table", "latency")[0].find_all("tbody")[0].find_all("tr")
    assert [r.find_all("th")[0].text for r in figures] == ["batch size 1", "batch size 32"]
    assert "61.2 ms" in figures[1].text
    assert "600 in 5 rounds" in figures[1].text
    verdicts = latency.find_all("table", "verdicts")[0]
    rows = {
        r.find_all("th")[0].text: r.text
        for r in verdicts.find_all("tbody")[0].find_all("tr")
        if "detail" not in r.classes
    }
    assert "FAIL" in rows["latency[p99-batch=32]"]
    assert "50.0 ms" in rows["latency[p99-batch=32]"]
    assert "MEASURED" in rows["latency[p50-batch=32]"]
    assert rows["latency[p50-batch=32]"].endswith("none")
    relative = rows["latency[p99-vs-baseline-batch=1]"]
    times = "\N{MULTIPLICATION SIGN}"
    assert f"1.04{times} the baseline (0.450 ms vs 0.433 ms)" in relative
    assert f"at most 1.5{times}" in relative
    detail = verdicts.find_all("tr", "detail")
    assert len(detail) == 1
    assert "p99 latency 61.2 ms exceeds budget 50.0 ms" in detail[0].text


def test_latency_without_histogram_or_budget_says_so_instead_of_drawing() -> None:
    report = GateReport()
    add(report, "latency[p99-batch=8]", p50_ms=1.0, p99_ms=2.0, batch=8, status="measured")
    add(report, "latency[p99-batch=16]", p99_ms=2.0, batch=16, histogram="{not json")
    add(report, "latency[p99-batch=64]", p99_ms=2.0, batch=64, histogram=histogram(2, 50, 1))
    latency = section(parse(render_html(report)), "Latency")
    assert not latency.find_all(cls="budget-line")
    assert latency.text.count("No histogram of call times was recorded") == 2
    assert len(latency.find_all("svg", "histogram")) == 1
    assert "no absolute budget is configured" in latency.text
    assert "MEASURED" in latency.text


def test_a_budget_far_from_the_calls_switches_the_axis_to_log_scale() -> None:
    report = GateReport()
    add(
        report,
        "latency[p99-batch=1]",
        p99_ms=0.4,
        batch=1,
        budget_ms=100.0,
        histogram=histogram(0.3, 200, 3),
    )
    svg = section(parse(render_html(report)), "Latency").find_all("svg", "histogram")[0]
    assert "log scale" in svg.text
    bars = [float(b.attrs["x"]) for b in svg.find_all("rect", "bar")]
    line = float(svg.find_all("line", "budget-line")[0].attrs["x1"])
    assert max(bars) < line
    # On a linear axis the bars would share a few pixels; on a log axis they spread out.
    assert max(bars) - min(bars) > 40


def test_every_model_derived_string_is_escaped() -> None:
    report = GateReport()
    evil_artifact = f"models/{EVIL}.joblib"
    add(
        report,
        "smoke[load]",
        "failed",
        f"UnsafeArtifactError: imports {EVIL}",
        artifact=evil_artifact,
        model_type=EVIL,
    )
    add(
        report,
        "version[version-id]",
        artifact=evil_artifact,
        version_id=EVIL,
        sha256=EVIL,
        model_type=EVIL,
        **{f"version.{EVIL}": EVIL},
    )
    add(
        report,
        f"drift[{EVIL}]",
        "failed",
        EVIL,
        artifact=evil_artifact,
        feature=EVIL,
        psi=1.0,
        psi_threshold=0.2,
        kind=EVIL,
        test=EVIL,
    )
    add(
        report,
        "baseline[x]",
        "failed",
        EVIL,
        artifact=evil_artifact,
        metric=EVIL,
        candidate=1,
        baseline=2,
        threshold=1.5,
        baseline_version=EVIL,
    )
    add(
        report,
        "rollout[5%]",
        "failed",
        EVIL,
        artifact=evil_artifact,
        stage=EVIL,
        status="rolled_back",
    )
    add(report, "latency[p99-batch=1]", "skipped", EVIL, artifact=evil_artifact)
    page = render_html(report, title=EVIL, artifacts={evil_artifact: {EVIL: EVIL}})
    root = parse(page)
    assert not root.find_all("script")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert EVIL in root.by_id("failures").text
    assert root.find_all("h1")[0].text == EVIL
    # Quotes cannot break out of an attribute either.
    quoted = GateReport()
    add(quoted, "smoke[load]", "failed", '" onmouseover="alert(1)', artifact='a".joblib')
    assert "onmouseover" not in {a for n in parse(render_html(quoted)).iter() for a in n.attrs}


def test_the_page_references_nothing_outside_itself() -> None:
    for report in (approved_report(), blocked_report()):
        page = render_html(report)
        root = parse(page)
        assert not root.find_all("script")
        assert not root.find_all("img")
        assert not root.find_all("iframe")
        for node in root.iter():
            for name, value in node.attrs.items():
                if name in ("src", "href", "xlink:href", "action", "poster", "srcset", "data"):
                    assert value.startswith(("#", "data:")), f"<{node.tag} {name}={value!r}>"
        assert "http://" not in page
        assert "https://" not in page
        style = "".join(n.text for n in root.find_all("style"))
        assert "url(" not in style
        assert "@import" not in style
        csp = [m for m in root.find_all("meta") if m.attrs.get("http-equiv")]
        assert "default-src 'none'" in csp[0].attrs["content"]


def test_sections_whose_checks_did_not_run_say_why() -> None:
    root = parse(render_html(approved_report()))
    baseline = section(root, "Compared with the baseline")
    assert "No baseline was given: pass --deploy-gate-baseline" in baseline.text
    assert "--deploy-gate-baseline" in section(root, "Rollout").text
    drift = section(root, "Drift")
    assert "No production data was given: pass --deploy-gate-current" in drift.text
    assert not drift.find_all("table")


def test_a_section_whose_checks_were_all_skipped_gives_their_reasons() -> None:
    report = GateReport()
    add(report, "smoke[load]")
    reason = "the rollout is judged on labels: pass --deploy-gate-target"
    for stage in ("5%", "25%", "50%", "100%"):
        add(report, f"rollout[{stage}]", "skipped", reason)
    add(report, "drift[age]", "skipped", "column 'age' is missing from the current data")
    root = parse(render_html(report))
    rollout = section(root, "Rollout")
    assert "Every rollout check was skipped" in rollout.text
    assert reason in rollout.text
    assert not rollout.find_all("ol", "stages")
    assert "column 'age' is missing from the current data" in section(root, "Drift").text
    assert "No latency checks ran" in section(root, "Latency").text


def test_rollout_stages_appear_in_order_with_the_decision_at_each() -> None:
    root = parse(render_html(blocked_report()))
    stages = section(root, "Rollout").find_all("li", "stage")
    shares = [s.find_all("p", "stage-share")[0].text for s in stages]
    assert shares == ["5%", "25%", "50%", "100%"]
    texts = [s.text for s in stages]
    assert "ADVANCED" in texts[0]
    assert "ROLLED BACK" in texts[1]
    assert "one-sided test p=0.003" in texts[1]
    assert "312 to the candidate" in texts[1]
    assert "NOT REACHED" in texts[2]
    assert "NOT REACHED" in texts[3]


def test_the_baseline_table_shows_both_models_and_the_limit() -> None:
    baseline = section(parse(render_html(blocked_report())), "Compared with the baseline")
    assert "v_20261002T140311Z_9be41c07" in baseline.text
    rows = {
        tr.find_all("th")[0].text.strip(): tr.text
        for tr in baseline.find_all("tr")
        if tr.find_all("td")
    }
    assert "0.512" in rows["recall"]
    assert "0.6175" in rows["recall"]
    assert "0.5866" in rows["recall"]
    assert "82.9%" in rows["recall"]
    assert "FAIL" in rows["recall"]
    assert "PASS" in rows["roc_auc"]
    assert "at most 1.0%" in rows["error rate"]
    assert "PSI 0.043" in rows["prediction shift"]
    assert "6.1% of labels changed" in rows["prediction shift"]


def test_the_drift_table_has_a_bar_per_feature_against_its_threshold() -> None:
    drift = section(parse(render_html(blocked_report())), "Drift")
    rows = [r for r in drift.find_all("tbody")[0].find_all("tr") if "detail" not in r.classes]
    assert [r.find_all("th")[0].text for r in rows] == [
        "tenure_months",
        "monthly_charges",
        "contract",
        "prediction",
    ]
    for row in rows:
        svg = row.find_all("svg")[0]
        assert svg.find_all("line", "limit-line")
    bad = rows[1]
    assert "FAIL" in bad.text
    assert bad.find_all("rect", "bar-fail")
    assert "PSI 0.412, threshold 0.2" in bad.find_all("svg")[0].attrs["aria-label"]
    # The drifted feature's bar is longer than its threshold mark; a calm feature's is shorter.
    bar = float(bad.find_all("rect", "bar-fail")[0].attrs["width"])
    assert bar > float(bad.find_all("line", "limit-line")[0].attrs["x1"])
    calm = rows[0]
    assert float(calm.find_all("rect", "bar-pass")[0].attrs["width"]) < float(
        calm.find_all("line", "limit-line")[0].attrs["x1"]
    )


def test_drift_figures_with_the_drift_prefix_are_read_too() -> None:
    report = GateReport()
    add(
        report,
        "drift[age]",
        **{
            "drift_feature": "age",
            "drift_psi": 0.3,
            "drift_psi_threshold": 0.2,
            "drift_passed": False,
        },
    )
    drift = section(parse(render_html(report)), "Drift")
    assert "PSI 0.3, threshold 0.2" in drift.find_all("svg")[0].attrs["aria-label"]
    assert drift.find_all("rect", "bar-fail")


def test_the_artifact_facts_show_hash_size_loader_libraries_and_the_allowlist_scan() -> None:
    facts = section(parse(render_html(blocked_report())), "Artifact")
    text = facts.text
    assert "4a00e660" + "9c3f1b7e" * 7 in text
    assert "48.2 kB (48,213 bytes)" in text
    assert "joblib" in text
    assert "scikit-learn 1.9.0" in text
    assert "every import the file makes is on the allowlist" in text
    extra = section(
        parse(render_html(blocked_report(), artifacts={ARTIFACT: {"trusted modules": "churn"}})),
        "Artifact",
    )
    assert "trusted modules" in extra.text
    warned = GateReport()
    warning = "InconsistentVersionWarning: Trying to unpickle estimator from version 1.8.0"
    add(warned, "smoke[load]", loader="joblib", load_warnings=warning)
    assert warning in section(parse(render_html(warned)), "Artifact").text


def test_a_refused_artifact_shows_the_scan_failure_and_why_facts_are_missing() -> None:
    report = GateReport()
    message = "UnsafeArtifactError: models/candidate.joblib imports os.system (not allowed)"
    add(report, "smoke[load]", "failed", message)
    add(report, "version[version-id]", "skipped", "the artifact did not load")
    facts = section(parse(render_html(report)), "Artifact")
    assert message in facts.text
    assert "version[version-id] skipped: the artifact did not load" in facts.text


def test_the_page_is_accessible_one_h1_ordered_headings_scoped_table_headers() -> None:
    for report in (approved_report(), blocked_report(), GateReport()):
        root = parse(render_html(report))
        assert root.find_all("html")[0].attrs["lang"] == "en"
        assert len(root.find_all("h1")) == 1
        levels = [int(n.tag[1]) for n in root.iter() if re.fullmatch(r"h[1-6]", n.tag)]
        assert levels[0] == 1
        assert all(b <= a + 1 for a, b in itertools.pairwise(levels)), levels
        for table in root.find_all("table"):
            for th in table.find_all("th"):
                assert th.attrs.get("scope") in ("col", "row"), th.text
        for svg in root.find_all("svg"):
            assert svg.attrs.get("role") == "img"
            assert svg.attrs.get("aria-label") or svg.attrs.get("aria-labelledby")
        # Colour is never the only signal: every coloured badge carries its word.
        for badge in root.find_all("span", "badge"):
            assert re.search(r"[A-Z]{4,}", badge.text), badge.text


def test_a_run_without_reports_renders_and_says_so() -> None:
    root = parse(render_html(GateReport()))
    assert "DEPLOYMENT BLOCKED (no check passed)" in root.by_id("verdict").text
    assert "No test reports reached the reporter" in root.text


def test_reports_from_pytest_render_through_gate_report_add() -> None:
    report = GateReport()
    keywords = {"deploy_gate": 1, "latency": 1}
    for nodeid, outcome, longrepr in (
        (f"{ARTIFACT}::latency[p99-batch=1]", "failed", "p99 latency 9.0 ms exceeds budget"),
        (f"{ARTIFACT}::latency[p50-batch=1]", "skipped", ("x.py", 1, "Skipped: no rows")),
    ):
        report.add(
            pytest.TestReport(
                nodeid,
                ("x.py", 1, nodeid),
                keywords,
                outcome,
                longrepr,
                "call",
                user_properties=[("p99_ms", 9.0), ("budget_ms", 5.0), ("batch", 1)],
            )
        )
    root = parse(render_html(report))
    assert "p99 latency 9.0 ms exceeds budget" in root.by_id("failures").text
    latency = section(root, "Latency")
    assert "no rows" in latency.text
    assert latency.find_all("line", "budget-line") == []  # no histogram recorded
    assert "No histogram of call times was recorded for batch size 1" in latency.text


def test_write_html_replaces_the_file_atomically_and_creates_its_folder(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "gate.html"
    assert write_html(blocked_report(), target) == target
    first = target.read_text(encoding="utf-8")
    write_html(approved_report(), target, title="Churn model")
    second = target.read_text(encoding="utf-8")
    assert "DEPLOYMENT BLOCKED" in first
    assert "APPROVED FOR DEPLOYMENT" in second
    assert "<h1>Churn model</h1>" in second
    assert [p.name for p in target.parent.iterdir()] == ["gate.html"]


def test_write_html_leaves_no_temporary_file_when_writing_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("deploy_gate.html.os.replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_html(blocked_report(), tmp_path / "gate.html")
    assert list(tmp_path.iterdir()) == []


def test_figures_given_as_strings_render_as_numbers() -> None:
    # A JUnit round trip or another serialiser may hand the figures over as text.
    report = GateReport()
    add(
        report,
        "drift[age]",
        "failed",
        "age drifted",
        feature="age",
        psi="0.412",
        psi_threshold="0.2",
        passed="False",
    )
    add(
        report,
        "latency[p99-batch=1]",
        p99_ms="0.45",
        budget_ms="1",
        batch="1",
        histogram=histogram(0.3, 100, 5),
    )
    root = parse(render_html(report))
    drift = section(root, "Drift")
    assert "PSI 0.412, threshold 0.2" in drift.find_all("svg")[0].attrs["aria-label"]
    assert drift.find_all("rect", "bar-fail")
    assert "age drifted" in drift.find_all("tr", "detail")[0].text
    latency = section(root, "Latency")
    assert "0.450 ms" in latency.text
    assert latency.find_all("line", "budget-line")


def test_on_a_phone_every_stacked_cell_still_names_its_column() -> None:
    root = parse(render_html(blocked_report()))
    stacked = root.find_all("table", "stack")
    assert len(stacked) >= 5
    for table in stacked:
        head = [th.text for th in table.find_all("thead")[0].find_all("th")]
        for row in table.find_all("tbody")[0].find_all("tr"):
            cells = [c for c in row.children if isinstance(c, Node)]
            for index, cell in enumerate(cells):
                if cell.tag == "td" and "colspan" not in cell.attrs:
                    assert cell.attrs["data-label"] == head[index]
