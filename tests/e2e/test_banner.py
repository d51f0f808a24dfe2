"""With the master down every view shows the banner, not a stack trace, and recovers by itself."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import free_port
from tests.e2e.conftest import FAST_REFRESH, TIMEOUT_S, Ui
from tests.served import TOKEN, ServedMaster

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.e2e

VIEWS = {"runs": "/runs", "run": "/run?id=1", "compare": "/compare?ids=1,2", "nodes": "/nodes"}


def test_banner_while_master_is_down_then_recovers(
    page: Page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bokeh_app.server import DashboardServer

    for name, value in FAST_REFRESH.items():  # read by each view's session, in this process
        monkeypatch.setenv(name, value)

    master_port = free_port()  # closed: nothing listens there until the master starts below
    master_url = f"http://127.0.0.1:{master_port}"
    with DashboardServer(master_url, TOKEN, port=0, api_timeout_s=2.0) as dashboard:
        base = f"http://127.0.0.1:{dashboard.port}"
        pages: dict[str, Ui] = {}
        for view, path in VIEWS.items():
            ui = Ui(page if not pages else page.context.new_page(), base)
            ui.open(path)
            banner = ui.wait("mlb-banner")
            assert "unreachable" in ui.text("mlb-banner"), view
            assert master_url in ui.text("mlb-banner"), view
            text = ui.page_text()
            assert "Traceback" not in text and 'File "' not in text, (view, text[:2000])
            pages[view] = ui
            assert banner.is_visible()
        page.bring_to_front()
        pages["runs"].screenshot("banner.png")

        with ServedMaster(tmp_path / "data", master_port):
            for view, ui in pages.items():
                ui.el("mlb-banner").wait_for(state="hidden", timeout=TIMEOUT_S * 1000)
                assert ui.is_visible("mlb-nav"), view
            pages["runs"].wait("mlb-runs-table")
            page.bring_to_front()
            pages["runs"].screenshot("banner-recovered.png")

        for ui in pages.values():
            ui.assert_no_page_errors()
