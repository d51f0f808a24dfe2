"""bench/dashboard_draw.py on a tiny run: both pages open in headless Chromium and draw."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.conftest import run_bench
from tests.e2e.conftest import chromium_path, unavailable

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

POINTS = 2000  # per metric: at most the view's 2,000-point overview, so ours draws them all


def test_dashboard_draw_opens_both_pages(tmp_path: Path) -> None:
    pytest.importorskip("playwright", reason="the test extra brings playwright")
    if chromium_path() is None:
        unavailable("no Chromium found (apt-get install chromium, or set MLBENCH_CHROMIUM)")
    payload = run_bench(
        "dashboard_draw.py", tmp_path, "--points", str(POINTS), "--repeats", "1", "--warmup", "0"
    )
    assert payload["figure"] == "dashboard_draw"
    rows = {row["role"]: row for row in payload["rows"]}
    for role in ("ours", "baseline"):
        row, extra = rows[role], rows[role]["extra"]
        assert row["unit"] == "ms"
        assert len(extra["drawn_ms"]) == 1
        # Every metric's points are on its plot, and the canvases show ink.
        assert extra["points_drawn"] == 3 * POINTS
        assert extra["inked_pixels"] > 0
        assert 0 < extra["html_ms"] <= extra["data_ms"] <= extra["painted_ms"] <= row["value"]
        assert extra["http_bytes"] > 100_000  # BokehJS itself
        assert extra["ws_bytes"] > 0
        assert extra["bytes_sent"] == extra["http_bytes"] + extra["ws_bytes"]
    # The dashboard leaves MathJax out and compresses: far fewer HTTP bytes than plain Bokeh.
    assert rows["ours"]["extra"]["http_bytes"] < rows["baseline"]["extra"]["http_bytes"] / 3
    summary = payload["summary"]
    assert summary["target"] == "drawn < 2 s"
    assert summary["met"] in (True, False)
