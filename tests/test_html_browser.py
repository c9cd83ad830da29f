"""The HTML report in a real browser: headless Chromium opens the page at laptop and phone
widths, in light and dark mode, and nothing errs, nothing is requested, nothing overflows.

Chromium is driven through the DevTools protocol over ``--remote-debugging-pipe`` (JSON
messages on file descriptors 3 and 4), which needs no websocket client and no extra package.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import queue
import shutil
import signal
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy_gate.html import write_html

TIMEOUT = 15.0  # seconds for any one protocol answer; the whole test takes a few seconds
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    # Any request that slipped through would fail to resolve (and be seen by the test).
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--remote-debugging-pipe",
)


def find_chromium() -> str | None:
    """Debian's ``chromium`` (what .ci/run installs), else another Chromium on PATH."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def _high(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class Chromium:
    """A headless Chromium and one page of it, spoken to over the DevTools pipe."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        # The browser reads commands on fd 3 and answers on fd 4. posix_spawn's dup2 puts the
        # pipe there (no shell, no preexec_fn); the sources sit at 10 and above, so no dup2
        # overwrites a source another one still needs.
        sources = [_high(fd) for fd in (to_browser_r, from_browser_w, stderr_w)]
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            self.pid = os.posix_spawn(
                binary,
                [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"],
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, devnull, 0),
                    (os.POSIX_SPAWN_DUP2, devnull, 1),
                    (os.POSIX_SPAWN_DUP2, sources[2], 2),
                    (os.POSIX_SPAWN_DUP2, sources[0], 3),
                    (os.POSIX_SPAWN_DUP2, sources[1], 4),
                ],
            )
        finally:
            for fd in (*sources, devnull):
                os.close(fd)
        self._stderr_fd = stderr_r
        self._answers: queue.Queue[dict[str, Any]] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self._next_id = 0
        self._stderr: list[bytes] = []
        self._threads = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._drain_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self.session = ""

    def start(self) -> None:
        """Open a page and attach to it, with the domains whose events the test reads."""
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}, False
        )
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")

    def _read(self) -> None:
        buffer = b""
        while True:
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                return
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                if "id" in message:
                    self._answers.put(message)
                else:
                    self.events.append(message)

    def _drain_stderr(self) -> None:
        while chunk := os.read(self._stderr_fd, 1 << 16):
            self._stderr.append(chunk)

    @property
    def stderr(self) -> str:
        return b"".join(self._stderr).decode("utf-8", "replace")

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: bool = True
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            try:
                answer = self._answers.get(timeout=TIMEOUT)
            except queue.Empty:
                raise AssertionError(
                    f"Chromium did not answer {method} in {TIMEOUT:.0f} s\n{self.stderr[-2000:]}"
                ) from None
            if answer["id"] == self._next_id:
                break
        if "error" in answer:
            raise AssertionError(f"{method} failed: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    def wait_for(self, method: str, after: int) -> dict[str, Any]:
        """The first event ``method`` among those received after index ``after``."""
        tick = threading.Event()
        for _ in range(int(TIMEOUT / 0.02)):
            for event in self.events[after:]:
                if event.get("method") == method:
                    return event
            tick.wait(0.02)
        raise AssertionError(f"no {method} within {TIMEOUT:.0f} s")

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str, *, width: int, dark: bool = False) -> None:
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600},
        )
        scheme = "dark" if dark else "light"
        self.send(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
        )
        self.events.clear()  # problems() judges the page opened last
        self.send("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired", 0)

    def screenshot(self, path: Path, width: int) -> tuple[int, int]:
        """A full-page PNG of ``width`` CSS pixels; returns its size read from the PNG header."""
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
        )
        shot = self.send("Page.captureScreenshot", {"format": "png"})
        data = base64.b64decode(shot["data"])
        path.write_bytes(data)
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        w, h = struct.unpack(">II", data[16:24])
        return w, h

    def problems(self, page_url: str) -> list[str]:
        """Console errors and warnings, uncaught exceptions, and every request but the page's."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails']}")
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "warning"):
                found.append(f"console.{params['type']}: {params['args']}")
            elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
                found.append(f"log {params['entry']['level']}: {params['entry']['text']}")
            elif method == "Network.requestWillBeSent":
                url = params["request"]["url"]
                if url != page_url:
                    found.append(f"request: {url}")
            elif method == "Network.loadingFailed":
                found.append(f"failed load: {params}")
        return found

    def close(self) -> None:
        with contextlib.suppress(AssertionError, OSError):
            self.send("Browser.close", session=False)
        tick = threading.Event()
        for _ in range(500):  # up to 10 s for a clean exit, then kill
            if os.waitpid(self.pid, os.WNOHANG) != (0, 0):
                break
            tick.wait(0.02)
        else:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self._to_browser)
        for thread in self._threads:
            thread.join(timeout=5)
        os.close(self._from_browser)
        os.close(self._stderr_fd)


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    """One browser for the module (each test opens its own page in it): starting takes ~1 s."""
    binary = find_chromium()
    if binary is None:
        pytest.skip(
            "Chromium not found (looked for chromium, chromium-browser, google-chrome on PATH "
            "and /usr/bin/chromium): install it with `apt-get install chromium` to run the "
            "browser test of the HTML report"
        )
    browser = Chromium(binary, tmp_path_factory.mktemp("chromium-profile"))
    try:
        browser.start()
        yield browser
    finally:
        browser.close()


def test_the_report_renders_in_chromium_at_laptop_and_phone_width_without_errors_or_requests(
    chromium: Chromium, tmp_path: Path
) -> None:
    from test_html import approved_report, blocked_report

    for name, report, verdict in (
        ("blocked", blocked_report(), "DEPLOYMENT BLOCKED (4 failed)"),
        ("approved", approved_report(), "APPROVED FOR DEPLOYMENT"),
    ):
        page = write_html(report, tmp_path / f"{name}.html")
        url = page.as_uri()
        for width, dark in ((1280, False), (390, False), (390, True)):
            chromium.open(url, width=width, dark=dark)
            assert chromium.evaluate("document.readyState") == "complete"
            assert verdict in chromium.evaluate("document.getElementById('verdict').innerText")
            # Laid out, not just parsed: the histograms have a size on screen.
            hist_width = chromium.evaluate(
                "Math.min(...[...document.querySelectorAll('svg.histogram')]"
                ".map(s => s.getBoundingClientRect().width))"
            )
            assert 200 < hist_width <= width
            assert chromium.evaluate("document.querySelectorAll('.budget-line').length") >= 1
            # Nothing is wider than the screen: wide tables scroll inside their own box.
            assert chromium.evaluate("document.documentElement.scrollWidth") <= width
            background = chromium.evaluate("getComputedStyle(document.body).backgroundColor")
            shade = sum(int(v) for v in background[background.index("(") + 1 : -1].split(","))
            assert (shade < 150) if dark else (shade > 600), background
            shot = tmp_path / f"{name}-{width}{'-dark' if dark else ''}.png"
            w, h = chromium.screenshot(shot, width)
            assert w == width
            assert h > 900
            assert chromium.problems(url) == []


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        ('<img src="http://deploy-gate.invalid/pixel.png" alt="">', "deploy-gate.invalid"),
        ("<script>console.error('broken chart')</script>", "broken chart"),
        ("<script>undefinedFunction()</script>", "undefinedFunction"),
    ],
    ids=["external-request", "console-error", "uncaught-exception"],
)
def test_the_browser_check_catches_requests_console_errors_and_exceptions(
    chromium: Chromium, tmp_path: Path, markup: str, expected: str
) -> None:
    # Guards the test above: a page that requests something or errs must be caught.
    page = tmp_path / "faulty.html"
    page.write_text(
        f'<!DOCTYPE html><html lang="en"><title>x</title><h1 id="verdict">x</h1>{markup}</html>',
        encoding="utf-8",
    )
    chromium.open(page.as_uri(), width=390)
    problems = chromium.problems(page.as_uri())
    assert any(expected in p for p in problems), problems
