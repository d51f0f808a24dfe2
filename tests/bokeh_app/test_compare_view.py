"""The Compare view's document against a real master: runs reported over HTTP as workers do."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
from bokeh.document import Document
from bokeh.models import Div, MultiChoice, Select

from bokeh_app.common.api import DashboardApi
from bokeh_app.views.compare import CompareView, build_compare
from mlbench_core.wire import PHASES
from tests.bokeh_app.conftest import DashMaster


def finished_run(
    master: DashMaster,
    workers: int,
    *,
    ttg: float | None,
    total: float = 100.0,
    points: int = 50,
    phases: dict[str, float] | None = None,
    end: bool = True,
    **spec: Any,
) -> dict[str, Any]:
    """A run with ``points`` val/accuracy points (rank 0) and train/loss on every rank."""
    run = master.create(workers=workers, **spec)
    master.status(run["id"], "running")
    t0 = time.time()
    curve = [
        {"name": "val/accuracy", "step": s, "epoch": s / 10, "time": t0 + s, "value": s / points}
        for s in range(points)
    ]
    loss = [
        {
            "name": "train/loss",
            "rank": r,
            "step": s,
            "epoch": s / 5,
            "time": t0 + s,
            "value": 1 / (s + 1),
        }
        for r in range(workers)
        for s in range(10)
    ]
    master.metrics(run["id"], curve + loss)
    if end:
        master.result(
            run["id"],
            goal_reached=ttg is not None,
            time_to_goal_s=ttg,
            total_time_s=total,
            samples_per_s=100.0 * workers,
            phases=phases or {},
        )
        master.status(run["id"], "succeeded")
    return master.get(run["id"])


def view_of(api: DashboardApi, ids: list[int]) -> CompareView:
    view = build_compare(Document(), api, {"ids": [",".join(str(i) for i in ids)]})
    view.load()
    return view


def by_css(view: CompareView, css: str) -> Any:
    found = [m for m in view.root.references() if css in getattr(m, "css_classes", [])]
    assert len(found) == 1, (css, found)
    return found[0]


def test_compare_shows_time_to_goal_speedup_efficiency_and_phases(
    dash_master: DashMaster, dash_api: DashboardApi
) -> None:
    one = finished_run(dash_master, 1, ttg=80.0, phases={"forward": 30.0, "backward": 40.0})
    two = finished_run(dash_master, 2, ttg=50.0, phases={"forward": 15.0, "communication": 5.0})
    four = finished_run(dash_master, 4, ttg=None, total=120.0, phases={"forward": 8.0})
    ids = [one["id"], two["id"], four["id"]]
    view = view_of(dash_api, ids)

    picker = by_css(view, "mlb-compare-runs")
    assert isinstance(picker, MultiChoice)
    assert picker.value == [str(i) for i in ids]
    labels = dict(picker.options)
    assert labels[str(two["id"])] == f"#{two['id']} {two['name']} (digits-mlp, 2 workers)"

    # Time to goal: the bar of a run that reached the goal is its time to goal; the one that
    # missed it is drawn at its training time, marked missed.
    ttg = view.ttg_source.data
    assert by_css(view, "mlb-ttg-bars") is view.ttg
    assert ttg["id"] == ids
    assert ttg["height"] == [80.0, 50.0, 120.0]
    assert ttg["status"] == ["reached", "reached", "missed"]
    assert ttg["color"][2] != ttg["color"][0]
    assert list(view.ttg.x_range.factors) == ttg["x"]

    # Speedup from time to goal, base 1 worker; the 4-worker run has no time, so no point.
    scaling = view.speedup_source.data
    assert by_css(view, "mlb-speedup") is view.speedup
    assert by_css(view, "mlb-efficiency") is view.efficiency
    assert scaling["workers"] == [1, 2]
    assert scaling["speedup"] == pytest.approx([1.0, 80 / 50])
    assert scaling["efficiency"] == pytest.approx([1.0, 80 / 50 / 2])
    assert set(scaling["basis"]) == {"time to goal"}
    assert view.ideal_source.data["speedup"] == [1.0, 2.0]
    assert view.speedup_lines.data["xs"] == [[1, 2]]

    phases = view.phase_source.data
    assert by_css(view, "mlb-phase-vs-workers") is view.phases
    assert phases["x"] == ["1w", "2w", "4w"]
    assert phases["forward"] == [30.0, 15.0, 8.0]
    assert phases["communication"] == [0.0, 5.0, 0.0]
    assert set(PHASES) <= set(phases)

    # Curves: the benchmark's quality metric by default, one source per run, on steps.
    metric = by_css(view, "mlb-compare-metric")
    assert isinstance(metric, Select)
    assert metric.value == "val/accuracy"
    assert set(metric.options) == {"val/accuracy", "train/loss"}
    assert by_css(view, "mlb-compare-curves") is view.curves
    assert view.curves.output_backend == "webgl"
    assert set(view.curve_sources) == set(ids)
    for run_id in ids:
        data = view.curve_sources[run_id].data
        assert data["x"] == [float(s) for s in range(50)]
        assert data["y"][-1] == pytest.approx(49 / 50)
    assert len(view.legend.items) == 3
    colors = {view.curve_renderers[i].glyph.line_color for i in ids}
    assert len(colors) == 3


def test_curves_switch_metric_and_x_axis(dash_master: DashMaster, dash_api: DashboardApi) -> None:
    a = finished_run(dash_master, 1, ttg=10.0)
    b = finished_run(dash_master, 2, ttg=8.0)
    view = view_of(dash_api, [a["id"], b["id"]])

    view.x_select.value = "time"
    view.load()
    data = view.curve_sources[a["id"]].data
    started = a["started_at"]
    assert started is not None
    # seconds since the run started: small, increasing, one second apart
    assert data["x"][1] - data["x"][0] == pytest.approx(1.0)
    assert 0 <= data["x"][0] < 60
    assert "since start" in view.curves.xaxis[0].axis_label

    view.x_select.value = "epoch"
    view.metric_select.value = "train/loss"
    view.load()
    assert view.curve_sources[b["id"]].data["x"] == [s / 5 for s in range(10)]
    assert view.curve_sources[b["id"]].data["y"][0] == 1.0


@pytest.mark.parametrize("series_endpoint", [True, False], ids=["series", "paged-fallback"])
def test_downsampled_reads_stay_under_the_point_budget(
    dash_master: DashMaster, dash_api: DashboardApi, series_endpoint: bool
) -> None:
    run = finished_run(dash_master, 1, ttg=5.0, points=5000)
    view = build_compare(Document(), dash_api, {"ids": [str(run["id"])]})
    view.reader.max_points = 400
    if not series_endpoint:  # the paged GET /metrics read, for a master without /series
        view.reader.series_endpoint = False
    view.load()
    assert view.reader.series_endpoint is series_endpoint
    data = view.curve_sources[run["id"]].data
    assert 4 <= len(data["x"]) <= 400
    assert data["x"][0] == 0.0 and data["x"][-1] == 4999.0
    assert max(data["y"]) == pytest.approx(4999 / 5000)
    if series_endpoint:  # the paged read cannot tell whether the master thinned a page
        assert view.snapshot is not None and view.snapshot.downsampled[run["id"]]


def test_selection_changes_and_unknown_or_live_runs(
    dash_master: DashMaster, dash_api: DashboardApi
) -> None:
    done = finished_run(dash_master, 1, ttg=10.0)
    live = finished_run(dash_master, 2, ttg=None, end=False)
    view = view_of(dash_api, [done["id"], live["id"], 999])

    picker = by_css(view, "mlb-compare-runs")
    options = dict(picker.options)
    assert str(done["id"]) in options and str(live["id"]) in options
    assert "999" in options  # still shown as selected, marked unknown
    status = by_css(view, "mlb-compare-status")
    assert isinstance(status, Div)
    assert "run 999" in status.text
    ttg = view.ttg_source.data
    assert ttg["status"] == ["reached", "no result"]
    assert ttg["text"][1] == "running"
    assert math.isnan(ttg["time_to_goal_s"][1])
    assert set(view.curve_sources) == {done["id"], live["id"]}

    # The live run gets more points: the next refresh reads them (no cache for live runs).
    dash_master.metrics(
        live["id"], [{"name": "val/accuracy", "step": 50 + s, "value": 0.9} for s in range(5)]
    )
    view.load()
    assert len(view.curve_sources[live["id"]].data["x"]) == 55

    # Deselecting drops the run's curve and bar.
    view.select([done["id"]])
    view.load()
    assert set(view.curve_sources) == {done["id"]}
    assert view.ttg_source.data["id"] == [done["id"]]
    assert len(view.legend.items) == 1


def test_nothing_selected_shows_a_hint_and_empty_charts(
    dash_master: DashMaster, dash_api: DashboardApi
) -> None:
    finished_run(dash_master, 1, ttg=10.0)
    view = view_of(dash_api, [])
    assert view.ttg_source.data["x"] == []
    assert view.curve_sources == {}
    assert "Pick runs" in by_css(view, "mlb-compare-status").text
    assert len(by_css(view, "mlb-compare-runs").options) == 1


def test_master_down_shows_the_banner(dash_master: DashMaster) -> None:
    run = finished_run(dash_master, 1, ttg=10.0)
    api = dash_master.api(timeout_s=1.0)
    view = view_of(api, [run["id"]])
    banner = by_css(view, "mlb-banner")
    assert not banner.visible
    dash_master.stop()
    view.load()
    assert banner.visible
    assert view.ttg_source.data["id"] == [run["id"]]  # the last data stays
    dash_master.start()
    view.load()
    assert not banner.visible
    api.close()
