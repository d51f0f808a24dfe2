"""End-to-end tests of the dashboard in a real headless Chromium, driven by Playwright.

The browser is the system's Chromium (Debian's ``chromium`` package; ``.ci/run`` installs it),
never one downloaded by ``playwright install``. A missing Chromium or Playwright follows the
rule of ``tests/pg.py``: skip on a developer's machine, fail in CI (``CI`` set).

How Bokeh 3 pages look to Playwright (checked against a small ``bokeh serve`` app):

- ``css_classes=["mlb-x"]`` lands on the model's host element; what it shows (text, ``<input>``,
  ``<select>``, ``<button>``, the SlickGrid of a DataTable, the canvases of a figure) lives in the
  host's open shadow root, and the host itself sits in its parent layout's shadow root. So
  ``document.querySelector(".mlb-x")`` finds nothing, while Playwright's CSS engine pierces open
  shadow roots: ``page.locator(".mlb-x")`` and ``page.locator(".mlb-x input")`` both work.
- Text: ``inner_text()``/``text_content()`` of a host are ``""`` (shadow content is left out).
  ``expect(...).to_contain_text()`` and ``get_by_text()`` do pierce; to read a value,
  :data:`DEEP_TEXT` walks the shadow roots (skipping ``<style>``, which Bokeh puts in each one).
- A model with ``visible=False`` is still in the DOM (host ``display: none``), text included:
  check the banner with ``is_visible()``, never by searching the page's text.
- TextInput and Spinner: ``.mlb-x input``; Bokeh updates ``value`` on ``change`` (Enter or
  blur; only ``value_input`` follows each key), so :meth:`Ui.fill` presses Tab after typing.
  Select: ``.mlb-x select`` with ``select_option``. Button: ``.mlb-x button``.
- DataTable: rows are ``.mlb-x .slick-row`` (positioned by ``style.top``, so sort by it), cells
  ``.slick-cell``, the first one being the index column ``#`` unless ``index_position=None``;
  clicking a cell selects the row (``source.selected.indices``); HTMLTemplateFormatter links
  are plain ``<a>`` inside cells.
- Figure: ``.mlb-x canvas``; the canvases exist before anything is drawn, and WebGL output is
  composited into the first 2D layer, so :data:`INKED_PIXELS` counts non-blank pixels there.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest

from tests.conftest import free_port
from tests.e2e.browser import CHROMIUM_FLAGS, INKED_PIXELS, chromium_path
from tests.requires import missing
from tests.served import ServedMaster

try:
    from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
except ImportError:  # the `test` extra brings it; the rule below reports its absence
    sync_playwright = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
LOGS = ROOT / "test-output" / "e2e-logs"
TIMEOUT_S = 30.0
# Shorter refresh periods than the defaults (bokeh_app/common/settings.py): the tests see
# live curves grow and the banner go sooner, with the same code paths.
FAST_REFRESH = {
    "MLBENCH_RUNS_REFRESH_MS": "1000",
    "MLBENCH_RUN_REFRESH_MS": "500",
    "MLBENCH_COMPARE_REFRESH_MS": "1000",
    "MLBENCH_NODES_REFRESH_MS": "1000",
}

T = TypeVar("T")

# Text of an element and of every open shadow root below it, <style>/<script> left out.
DEEP_TEXT = """(root) => {
  const out = [];
  const walk = (node) => {
    if (node.nodeType === Node.TEXT_NODE) { out.push(node.textContent); return; }
    if (node.nodeType === Node.ELEMENT_NODE && ['STYLE', 'SCRIPT'].includes(node.tagName)) return;
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.childNodes) walk(child);
  };
  walk(root);
  return out.join(' ').replace(/\\s+/g, ' ').trim();
}"""


# Rows of a SlickGrid in display order, each as the texts of its cells.
TABLE_ROWS = """(rows) => rows
  .map((r) => [parseFloat(r.style.top) || 0,
               Array.from(r.querySelectorAll('.slick-cell')).map((c) => c.innerText.trim())])
  .sort((a, b) => a[0] - b[0])
  .map((r) => r[1])"""


def unavailable(message: str) -> NoReturn:
    """Chromium or Playwright is missing: skip here, fail in CI (tests/requires.py)."""
    missing(message)


@pytest.fixture(scope="session", autouse=True)
def _fresh_failure_screenshots() -> None:
    """Failure screenshots of an earlier session would pass for this one's: remove them."""
    for stale in SCREENSHOTS.glob("failed-*.png"):
        stale.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test module, always closed."""
    if sync_playwright is None:
        unavailable("the playwright package is not installed (pip install -e '.[test]')")
    executable = chromium_path()
    if executable is None:
        unavailable("no Chromium found (apt-get install chromium, or set MLBENCH_CHROMIUM)")
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item, so a fixture can see that its test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context and page; a failing test leaves ``failed-<test>.png`` behind."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_S * 1000)
    page = context.new_page()
    try:
        yield page
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
            try:
                save_screenshot(page, f"failed-{name}.png")
            except Exception as exc:  # the page may be gone: the failure itself matters more
                print(f"no failure screenshot: {exc}")
        context.close()


def save_screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


class Ui:
    """A dashboard page addressed by the stable ``mlb-*`` css classes of its models."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.errors: list[str] = []  # uncaught exceptions in BokehJS or in the views' JS
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    # navigation and lookup
    def open(self, path: str, ready: str = "mlb-nav") -> None:
        response = self.page.goto(self.base_url + path)
        status = response.status if response is not None else None
        assert status == 200, f"GET {path} answered {status}"
        self.wait(ready)

    def el(self, mlb: str) -> Locator:
        return self.page.locator(f".{mlb}").first

    def wait(self, mlb: str, timeout_s: float = TIMEOUT_S) -> Locator:
        """The model with css class ``mlb``, once it is rendered and visible."""
        locator = self.el(mlb)
        locator.wait_for(state="visible", timeout=timeout_s * 1000)
        return locator

    def is_visible(self, mlb: str) -> bool:
        return self.page.locator(f".{mlb}").count() > 0 and self.el(mlb).is_visible()

    # reading
    def text(self, mlb: str) -> str:
        return self.el(mlb).evaluate(DEEP_TEXT)

    def page_text(self) -> str:
        return self.page.evaluate(f"() => ({DEEP_TEXT})(document.body)")

    def wait_text(
        self, mlb: str, expected: str | re.Pattern[str], timeout_s: float = TIMEOUT_S
    ) -> str:
        """Wait until the model's text contains ``expected``; return that text."""
        expect(self.el(mlb)).to_contain_text(expected, timeout=timeout_s * 1000)
        return self.text(mlb)

    def table(self, mlb: str) -> list[list[str]]:
        """Rows of a DataTable (cell texts, index column first unless hidden)."""
        return self.page.locator(f".{mlb} .slick-row").evaluate_all(TABLE_ROWS)

    def inked_pixels(self, mlb: str) -> int:
        """Most non-blank pixels over the canvases of a figure (0: nothing drawn yet)."""
        canvases = self.page.locator(f".{mlb} canvas")
        return max([canvases.nth(i).evaluate(INKED_PIXELS) for i in range(canvases.count())] or [0])

    def until(self, probe: Callable[[], T | None], what: str, timeout_s: float = TIMEOUT_S) -> T:
        """Poll ``probe`` until it returns something truthy; fail with ``what`` after the timeout.

        The short waits between tries only pace the polling: no assertion rests on them.
        """
        end = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < end:
            last = probe()
            if last:
                return last
            self.page.wait_for_timeout(250)
        raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")

    # acting
    def fill(self, mlb: str, value: str) -> None:
        """Type into a TextInput/Spinner/NumericInput/TextAreaInput and commit it (blur)."""
        field = self.page.locator(f".{mlb} input, .{mlb} textarea").first
        field.fill(value)
        field.press("Tab")

    def choose(self, mlb: str, value: str, timeout_s: float = TIMEOUT_S) -> None:
        """Pick the option of a Select whose model value is ``value``, once it is offered.

        BokehJS renders ``options=[(value, label)]`` as ``<option value="label">``, so the
        option is found by its label: equal to ``value`` or starting with ``value`` and a
        space (``"digits-mlp — Digits MLP"``).
        """
        select = self.page.locator(f".{mlb} select").first

        def label() -> str | None:
            labels = select.locator("option").evaluate_all("os => os.map((o) => o.label)")
            return next((t for t in labels if t == value or t.startswith(f"{value} ")), None)

        select.select_option(label=self.until(label, f"option {value!r} in {mlb}", timeout_s))

    def press(self, mlb: str) -> None:
        """Click a Button (or anything clickable with that class)."""
        button = self.page.locator(f".{mlb} button")
        (button.first if button.count() else self.el(mlb)).click()

    def select_row(self, mlb: str, containing: str) -> None:
        """Select the DataTable row whose text contains ``containing`` (clicks a non-link cell)."""
        row = self.page.locator(f".{mlb} .slick-row", has_text=containing).first
        row.locator(".slick-cell:not(:has(a))").last.click()

    def screenshot(self, name: str) -> Path:
        return save_screenshot(self.page, name)

    def assert_no_page_errors(self) -> None:
        assert not self.errors, f"uncaught errors in the page: {self.errors}"


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[ServedMaster]:
    """``mlbench serve`` with its dashboard, as a user starts it: one per test module."""
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{request.module.__name__.rsplit('.', 1)[-1]}.log"
    log.unlink(missing_ok=True)
    try:
        master = ServedMaster(
            tmp_path_factory.mktemp("e2e") / "data",
            free_port(),
            env=FAST_REFRESH,
            dashboard_port=free_port(),
            log_path=log,
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; its output ({log}):\n{log_tail(log)}") from None
    with master:
        yield master


def log_tail(path: Path, lines: int = 40) -> str:
    return (
        "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
    )


@pytest.fixture
def ui(page: Page, served: ServedMaster) -> Ui:
    assert served.dashboard_url is not None
    return Ui(page, served.dashboard_url)
