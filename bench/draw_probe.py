"""Opening a dashboard page in headless Chromium and timing it until its curves are drawn.

"Drawn" is read from BokehJS itself: a script installed before the page's own hooks every
Figure view's ``repainted`` signal (emitted at the end of ``PlotView.paint``, after the glyphs,
WebGL ones included, are on the canvas) and notes the first repaint at which every line of the
wanted metrics has its points; once all wanted metrics are painted it waits for one more
``requestAnimationFrame`` tick (the painted frame reaching the screen). Times are the page's own
``performance.now()``: milliseconds since the navigation started, so the polling of Playwright
adds nothing. Bytes sent to the browser are the HTTP responses (headers and body as received)
plus the payloads of the websocket frames received.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import common  # noqa: F401  (puts the repository root on sys.path, for tests.e2e)
from playwright.sync_api import Browser, Response, WebSocket

from tests.e2e.browser import INKED_PIXELS

VIEWPORT = {"width": 1400, "height": 1000}
GROUP_CLASSES = (".mlb-quality-plot", ".mlb-loss-plot", ".mlb-throughput-plot")

# (names) => installs window.__mlbDraw = {data, painted, drawn: ms or null, plots: {name: ms},
# points: {name: points painted}}.
# Views are looked up (a walk over all of them) only while a wanted source has no hooked plot.
PROBE = """(names) => {
  const st = window.__mlbDraw = {data: null, painted: null, drawn: null, plots: {}, points: {}};
  const covered = new Set();
  const wanted = (pv) => pv.model.renderers
    .map((r) => r.data_source)
    .filter((s) => s != null && names.includes(s.name));
  const filled = (s) => s.data.x != null && s.data.x.length > 0;
  const check = (pv) => {
    const sources = wanted(pv);
    if (sources.length > 0 && sources.every(filled)) {
      for (const s of sources) {
        if (!(s.name in st.plots)) {
          st.plots[s.name] = performance.now();
          st.points[s.name] = s.data.x.length;
        }
      }
    }
  };
  const hook = (B) => {
    for (const pv of B.index.query((v) => v.repainted !== undefined && v.model.renderers)) {
      if (!pv.__mlbHooked) {
        pv.__mlbHooked = true;
        pv.repainted.connect(() => check(pv));
        if (pv._render_count > 0 && !pv._needs_paint) check(pv);  // painted before we looked
      }
      for (const s of wanted(pv)) covered.add(s.name);
    }
  };
  const tick = () => {
    const B = window.Bokeh;
    const doc = B != null && B.documents != null ? B.documents[0] : null;
    if (doc != null) {
      const sources = [...doc._all_models.values()].filter((m) => names.includes(m.name)
        && m.data !== undefined);
      if (sources.some((s) => !covered.has(s.name))) hook(B);
      if (st.data === null && names.every((n) => sources.some((s) => s.name === n && filled(s)))) {
        st.data = performance.now();
      }
    }
    if (names.every((n) => n in st.plots)) {
      st.painted = Math.max(...names.map((n) => st.plots[n]));
      requestAnimationFrame(() => { st.drawn = performance.now(); });
      return;
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""


@dataclass
class Opened:
    """One page open: milliseconds since navigation start, and bytes received."""

    drawn_ms: float
    painted_ms: float
    data_ms: float
    html_ms: float
    http_bytes: int
    ws_bytes: int
    ws_frames: int
    points: int
    inked_pixels: int

    @property
    def total_bytes(self) -> int:
        return self.http_bytes + self.ws_bytes


def open_page(browser: Browser, url: str, names: list[str], timeout_s: float) -> Opened:
    """Open ``url`` in a fresh context (empty cache) and wait until ``names`` are drawn."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        responses: list[Response] = []
        frames = {"bytes": 0, "count": 0}

        def on_frame(payload: str | bytes) -> None:
            frames["bytes"] += len(payload.encode() if isinstance(payload, str) else payload)
            frames["count"] += 1

        def on_websocket(ws: WebSocket) -> None:
            ws.on("framereceived", on_frame)

        def on_response(response: Response) -> None:
            responses.append(response)

        page.on("response", on_response)
        page.on("websocket", on_websocket)
        page.add_init_script(script=f"({PROBE})({json.dumps(names)})")
        page.goto(url, wait_until="commit", timeout=timeout_s * 1000)
        page.wait_for_function(
            "() => window.__mlbDraw && window.__mlbDraw.drawn !== null",
            timeout=timeout_s * 1000,
            polling=100,
        )
        state: dict[str, Any] = page.evaluate(
            "() => ({...window.__mlbDraw,"
            " html: performance.getEntriesByType('navigation')[0].responseEnd})"
        )
        inked = sum(
            max([0, *canvases.evaluate_all(f"cs => cs.map({INKED_PIXELS})")])
            for canvases in (page.locator(f"{cls} canvas") for cls in GROUP_CLASSES)
        )
        http_bytes = 0
        for response in responses:
            sizes = response.request.sizes()
            http_bytes += max(sizes["responseBodySize"], 0) + max(sizes["responseHeadersSize"], 0)
        return Opened(
            drawn_ms=state["drawn"],
            painted_ms=state["painted"],
            # The rAF tick that sees the data may come after the paint that drew it.
            data_ms=min(state["data"] or state["painted"], state["painted"]),
            html_ms=state["html"],
            http_bytes=http_bytes,
            ws_bytes=frames["bytes"],
            ws_frames=frames["count"],
            points=sum(state["points"].values()),
            inked_pixels=inked,
        )
    finally:
        context.close()
