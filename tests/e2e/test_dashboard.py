"""The dashboard end to end: ``mlbench serve`` with its dashboard, real workers, real Chromium.

The tests of this module share one master (fixture ``served``) and run in file order: the
Compare and Delete tests use the runs the two before them made.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.conftest import Ui
from tests.integration.conftest import long_run_spec
from tests.served import ServedMaster

if TYPE_CHECKING:
    from playwright.sync_api import Locator

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# digits-mlp (docs/tasks.md) at a small learning rate without momentum: 5-10 s of training
# on two CPU workers, a point per step, and the goal (val/accuracy 0.96) out of reach, so the
# curves grow for a while before the run ends by itself with "goal not reached".
SLOW_DIGITS = "epochs=60, lr=0.002, momentum=0, log_every=1"
FIRST = "e2e-digits"
SECOND = "e2e-stop-me"
RUN_TIMEOUT_S = 150.0


def points(ui: Ui) -> int:
    """The Run view's count of points in its main curve (Div ``mlb-points``: ``points: N``)."""
    found = re.search(r"points:\s*(\d+)", ui.text("mlb-points"))
    return int(found.group(1)) if found else 0


def run_named(served: ServedMaster, name: str) -> dict[str, Any] | None:
    response = served.http.get("/api/v1/runs", params={"limit": 100})
    assert response.status_code == 200, response.text
    return next((run for run in response.json()["items"] if run["name"] == name), None)


def run_link(ui: Ui, name: str) -> Locator:
    """The link to a run's page: inside the runs table or in the ``mlb-run-links`` Div."""
    return ui.page.locator(".mlb-runs-table a, .mlb-run-links a", has_text=name).first


def test_submit_from_runs_view_then_watch_the_run(ui: Ui, served: ServedMaster) -> None:
    ui.open("/runs")
    ui.wait("mlb-runs-table")
    ui.choose("mlb-new-benchmark", "digits-mlp")
    ui.fill("mlb-new-name", FIRST)
    ui.fill("mlb-new-workers", "2")
    ui.fill("mlb-new-overrides", SLOW_DIGITS)
    ui.press("mlb-new-submit")

    ui.until(
        lambda: any(FIRST in " ".join(row) for row in ui.table("mlb-runs-table")),
        "the new run in the runs table",
    )
    assert not ui.text("mlb-new-error").strip()
    run = run_named(served, FIRST)
    assert run is not None
    assert run["benchmark"] == "digits-mlp"
    assert run["spec"]["workers"] == 2
    assert run["spec"]["overrides"] == {
        "epochs": 60,
        "lr": 0.002,
        "momentum": 0,
        "log_every": 1,
    }
    ui.screenshot("runs.png")

    run_link(ui, FIRST).click()
    ui.page.wait_for_url(f"**/run?id={run['id']}")
    ui.wait_text("mlb-run-header", "digits-mlp")
    ui.until(lambda: FIRST in ui.page.title(), "the run's name in the page title")

    # Curves grow while it runs: two readings of the points count, both while the page says
    # "running", the second one larger.
    def running_points() -> int:
        return points(ui) if ui.text("mlb-run-state").strip() == "running" else 0

    first = ui.until(running_points, "points while the run is running", RUN_TIMEOUT_S)
    ui.until(lambda: running_points() > first, f"more than {first} points while running")
    ui.wait("mlb-quality-plot")

    ui.wait_text("mlb-result", re.compile(r"goal (not )?reached"), RUN_TIMEOUT_S)
    ui.wait_text("mlb-run-state", "succeeded")
    assert served.run(run["id"])["state"] == "succeeded"
    assert points(ui) > first
    assert ui.inked_pixels("mlb-quality-plot") > 0
    assert ui.inked_pixels("mlb-loss-plot") > 0
    ui.screenshot("run.png")

    # The download link serves every point as CSV (from the master, where reads are open).
    href = ui.page.locator(".mlb-download-csv a").first.get_attribute("href")
    assert href, "no CSV download link"
    download = ui.page.request.get(href)
    assert download.status == 200, download.text()[:500]
    lines = download.text().splitlines()
    assert lines[0] == "name,rank,step,epoch,time,value"
    assert any(line.startswith("train/loss,") for line in lines)
    ui.assert_no_page_errors()


def test_stop_a_run_from_the_run_view(ui: Ui, served: ServedMaster) -> None:
    response = served.http.post("/api/v1/runs", json=long_run_spec(SECOND))
    assert response.status_code == 201, response.text
    run_id = response.json()["id"]

    ui.open(f"/run?id={run_id}")
    ui.wait_text("mlb-run-state", "running", RUN_TIMEOUT_S)
    ui.press("mlb-run-stop")
    ui.wait("mlb-confirm")
    ui.press("mlb-confirm")

    ui.wait_text("mlb-run-state", "stopped", 60)
    assert served.run(run_id)["state"] == "stopped"
    ui.screenshot("run-stopped.png")
    ui.assert_no_page_errors()


def test_compare_the_two_runs(ui: Ui, served: ServedMaster) -> None:
    runs = [run_named(served, FIRST), run_named(served, SECOND)]
    assert all(runs), "needs the runs that the tests above made"
    ids = ",".join(str(run["id"]) for run in runs if run)

    ui.open(f"/compare?ids={ids}")
    ui.wait("mlb-ttg-bars")
    ui.wait("mlb-compare-curves")
    ui.until(lambda: ui.inked_pixels("mlb-ttg-bars"), "the time-to-goal bars drawn")
    ui.until(lambda: ui.inked_pixels("mlb-compare-curves"), "the overlaid curves drawn")
    for name in (FIRST, SECOND):
        ui.wait_text("mlb-compare-runs", name)
    ui.screenshot("compare.png")
    ui.assert_no_page_errors()


def test_delete_a_run_from_the_runs_view(ui: Ui, served: ServedMaster) -> None:
    run = run_named(served, SECOND)
    assert run is not None and run["state"] == "stopped", "needs the run stopped above"

    ui.open("/runs")
    ui.until(
        lambda: any(SECOND in " ".join(row) for row in ui.table("mlb-runs-table")),
        "the stopped run in the runs table",
    )
    ui.select_row("mlb-runs-table", SECOND)
    ui.press("mlb-delete")  # enabled once the selection reached the server
    ui.wait("mlb-confirm")
    ui.press("mlb-confirm")

    ui.until(
        lambda: not any(SECOND in " ".join(row) for row in ui.table("mlb-runs-table")),
        "the deleted run gone from the runs table",
    )
    assert served.http.get(f"/api/v1/runs/{run['id']}").status_code == 404
    assert any(FIRST in " ".join(row) for row in ui.table("mlb-runs-table"))
    ui.assert_no_page_errors()


def test_nodes_lists_this_host(ui: Ui) -> None:
    ui.open("/nodes")
    ui.wait("mlb-nodes-table")
    rows = ui.until(lambda: ui.table("mlb-nodes-table"), "a row in the nodes table")
    assert len(rows) >= 1
    ui.screenshot("nodes.png")
    ui.assert_no_page_errors()
