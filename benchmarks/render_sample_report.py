"""Render the sample blocked report, screenshot it in headless Chromium, and time the renderer.

    python benchmarks/render_sample_report.py                # docs/report.png + timings
    python benchmarks/render_sample_report.py --out /tmp/r   # also 390 px and dark shots there

The README's screenshot (docs/report.png, 1280 px wide) comes from here; the page is the one the
browser test opens (tests/test_html.py's blocked_report), driven by the same DevTools-pipe client
as tests/test_html_browser.py. Timings compare render_html with the terminal checklist
(GateReport.lines) and the Markdown step summary on the same report, median of repeats.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_html import add, blocked_report, latency_items  # noqa: E402
from test_html_browser import Chromium, find_chromium  # noqa: E402

from deploy_gate.html import render_html, write_html  # noqa: E402
from deploy_gate.report import GateReport  # noqa: E402


def big_report() -> GateReport:
    """Four artifacts, 60 drift features on three of them, all with latency plots: a large page."""
    report = blocked_report()
    for n in range(3):
        artifact = f"models/challenger_{n}.joblib"
        for check in ("smoke[load]", "version[version-id]", "output[shape]", "errors[nan-input]"):
            add(report, check, artifact=artifact)
        latency_items(report, p99_32=3.0 + n, budget_32=25.0, artifact=artifact)
        for f in range(60):
            add(
                report,
                f"drift[feature_{f}]",
                artifact=artifact,
                feature=f"feature_{f}",
                kind="numeric",
                psi=f / 200,
                psi_threshold=0.2,
                test="ks",
                statistic=0.05,
                pvalue=0.2,
                pvalue_threshold=0.01,
                effect=0.05,
                effect_floor=0.1,
                passed=True,
            )
    return report


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def timings() -> None:
    print("renderer timings (median ms; ratio to the terminal checklist on the same report)")
    for name, report in (("sample", blocked_report()), ("large", big_report())):
        lines = median_ms(report.lines, 50)
        markdown = median_ms(report.markdown, 50)
        page = median_ms(lambda r=report: render_html(r), 50)  # type: ignore[misc]
        size = len(render_html(report).encode()) / 1024
        print(
            f"  {name:<7} {len(report.outcomes):>4} outcomes  terminal {lines:7.3f}  "
            f"markdown {markdown:7.3f}  html {page:7.3f} ms ({page / lines:5.1f}x terminal, "
            f"{size:.0f} kB)"
        )


def screenshots(out: Path, readme_png: Path) -> None:
    binary = find_chromium()
    if binary is None:
        print("no Chromium found: install it (apt-get install chromium) for the screenshots")
        return
    page = write_html(blocked_report(), out / "report.html", title="Deploy gate: churn model")
    with tempfile.TemporaryDirectory() as profile:
        browser = Chromium(binary, Path(profile))
        try:
            browser.start()
            for width, dark, target in (
                (1280, False, readme_png),
                (390, False, out / "report-390.png"),
                (390, True, out / "report-390-dark.png"),
                (1280, True, out / "report-1280-dark.png"),
            ):
                browser.open(page.as_uri(), width=width, dark=dark)
                problems = browser.problems(page.as_uri())
                if problems:
                    raise SystemExit(f"the page logged problems: {problems}")
                w, h = browser.screenshot(target, width)
                print(f"  {target} ({w}x{h})")
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for the other screenshots")
    parser.add_argument("--no-screenshots", action="store_true")
    args = parser.parse_args()
    timings()
    if not args.no_screenshots:
        readme_png = ROOT / "docs" / "report.png"
        readme_png.parent.mkdir(exist_ok=True)
        out = args.out or Path(tempfile.mkdtemp(prefix="deploy-gate-report-"))
        out.mkdir(parents=True, exist_ok=True)
        print("screenshots")
        screenshots(out, readme_png)


if __name__ == "__main__":
    main()
