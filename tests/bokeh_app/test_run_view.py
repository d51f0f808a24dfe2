"""The Run view's document against a real master (HTTP, SQLite): curves downsampled by the
master, the goal line, phase bar, result, streaming of only new points, zoom at full
resolution, x axis and ranks, stop with confirmation, downloads, and a missing run."""

from __future__ import annotations

import math
from typing import Any

from bokeh.document import Document
from bokeh.events import ButtonClick, RangesUpdate
from bokeh.models import Button

from bokeh_app.common.api import DashboardApi
from bokeh_app.views.run import RunView, build_run
from bokeh_app.views.run_plots import EMPTY_LINE
from mlbench_core.wire import PHASES
from tests.bokeh_app.conftest import DashMaster

T0 = 1_767_000_000.0
PHASE_TIMES = {"data": 1.5, "forward": 4.0, "backward": 6.0, "communication": 2.5}


def click(button: Button) -> None:
    button._trigger_event(ButtonClick(button))


def pts(name: str, steps: range, value: Any, rank: int = 0) -> list[dict[str, Any]]:
    """Points of one series; time and epoch grow with the step. ``value(step)``."""
    return [
        {"name": name, "rank": rank, "step": s, "epoch": s / 100, "time": T0 + s, "value": value(s)}
        for s in steps
    ]


def loss(step: int) -> float:
    return 2.0 / (1 + step / 100) + (3.0 if step == 2500 else 0.0) + 0.01 * math.sin(step)


def view_of(api: DashboardApi, run_id: int | str, max_points: int = 400, **args: str) -> RunView:
    doc = Document()
    query = {"id": [str(run_id)], **{k: [v] for k, v in args.items()}}
    view = RunView(doc, api, query, refresh_ms=1000, max_points=max_points)
    doc.add_root(view.root)
    view.load()
    return view


def xs(view: RunView, name: str) -> list[float]:
    return list(view.curves.curves[name].source.data["x"])


def ys(view: RunView, name: str) -> list[float]:
    return list(view.curves.curves[name].source.data["y"])


def training_run(master: DashMaster) -> int:
    run_id = master.create(name="curves", workers=2)["id"]
    master.status(run_id, "running")
    master.metrics(run_id, pts("train/loss", range(5000), loss))
    master.metrics(run_id, pts("train/samples_per_s", range(0, 5000, 20), lambda s: 900.0 + s))
    master.metrics(run_id, pts("val/accuracy", range(0, 5000, 100), lambda s: 0.5 + s / 10_500))
    master.metrics(run_id, pts("progress", range(0, 5000, 100), lambda s: s / 5000))
    return run_id


def test_first_load_shows_downsampled_curves_goal_and_header(
    dash_master: DashMaster, dash_api: DashboardApi
) -> None:
    run_id = training_run(dash_master)
    view = view_of(dash_api, run_id)

    assert view.state.text == "running"
    assert "state: running" in view.header.text and "digits-mlp" in view.header.text
    assert view.result_div.text == "<i>no result yet</i>"
    # The master downsampled the loss (M4): first, last and the spike survive.
    x, y = xs(view, "train/loss"), ys(view, "train/loss")
    assert 100 < len(x) <= 400 and x == sorted(x)
    assert x[0] == 0 and x[-1] == 4999 and max(y) == loss(2500)
    assert view.curves.curves["train/loss"].downsampled
    assert view.points.text == f"points: {len(x)}"
    # Short series come whole; each metric sits on its plot; progress is not plotted.
    assert xs(view, "val/accuracy") == list(range(0, 5000, 100))
    assert ys(view, "train/samples_per_s") == [900.0 + s for s in range(0, 5000, 20)]
    plotted = {
        group: [r.name for r in plot.renderers if r.name != EMPTY_LINE]
        for group, plot in view.curves.plots.items()
    }
    assert plotted == {
        "quality": ["val/accuracy"],
        "loss": ["train/loss"],
        "throughput": ["train/samples_per_s"],
    }
    assert "progress" not in view.curves.curves
    # Goal: digits-mlp's full target on its metric, dashed.
    span = view.curves.goal_span
    assert span.visible and span.location == 0.96 and span.line_dash == [6]
    assert all(p.output_backend == "webgl" for p in view.curves.plots.values())
    # State timeline and events from the transitions.
    assert view.timeline.source.data["state"] == ["queued", "starting", "running"]
    assert "starting → running" in view.timeline.events.text
    assert not view.stop.button.disabled
    css = {c for model in view.root.references() for c in getattr(model, "css_classes", [])}
    for selector in (
        "mlb-run-header",
        "mlb-run-state",
        "mlb-quality-plot",
        "mlb-loss-plot",
        "mlb-throughput-plot",
        "mlb-phase-bar",
        "mlb-timeline",
        "mlb-result",
        "mlb-run-stop",
        "mlb-confirm",
        "mlb-download-csv",
        "mlb-download-json",
        "mlb-points",
        "mlb-banner",
        "mlb-nav",
    ):
        assert selector in css, selector


def test_refresh_streams_only_the_new_points(
    dash_master: DashMaster, dash_api: DashboardApi
) -> None:
    run_id = training_run(dash_master)
    view = view_of(dash_api, run_id)
    before = {name: len(xs(view, name)) for name in view.curves.curves}

    dash_master.metrics(run_id, pts("train/loss", range(5000, 5037), lambda s: 0.1))
    dash_master.metrics(run_id, pts("val/accuracy", range(5000, 5300, 100), lambda s: 0.97))
    view.refresh()
    assert len(xs(view, "train/loss")) == before["train/loss"] + 37
    assert xs(view, "train/loss")[-37:] == list(range(5000, 5037))
    assert ys(view, "val/accuracy")[-3:] == [0.97] * 3
    assert len(xs(view, "train/samples_per_s")) == before["train/samples_per_s"]
    assert view.points.text == f"points: {before['train/loss'] + 37}"

    view.refresh()  # nothing new: nothing changes
    assert len(xs(view, "train/loss")) == before["train/loss"] + 37


def test_result_fills_the_phase_bar_and_the_verdict(
    dash_master: DashMaster, dash_api: DashboardApi
) -> None:
    run_id = training_run(dash_master)
    view = view_of(dash_api, run_id)
    assert [view.phases.source.data[p][0] for p in PHASES] == [0.0] * len(PHASES)
    assert "arrive with the result" in view.phases.note.text

    dash_master.result(
        run_id,
        goal_value=0.95,
        time_to_goal_s=42.0,
        final_value=0.971,
        total_time_s=50.0,
        phases=PHASE_TIMES,
    )
    dash_master.status(run_id, "succeeded")
    view.refresh()
    assert view.state.text == "succeeded"
    assert "goal reached" in view.result_div.text and "42.0 s" in view.result_div.text
    assert view.phases.source.data["backward"] == [6.0]
    assert [view.phases.source.data[p][0] for p in PHASES] == [
        PHASE_TIMES.get(p, 0.0) for p in PHASES
    ]
    assert view.curves.goal_span.location == 0.95  # the result's target wins
    assert view.stop.button.disabled


def test_live_phase_metrics_fill_the_bar_while_running(
    dash_master: DashMaster, dash_api: DashboardApi
) -> None:
    run_id = dash_master.create()["id"]
    dash_master.status(run_id, "running")
    dash_master.metrics(run_id, pts("phase/forward", range(3), lambda s: 1.0 + s))
    view = view_of(dash_api, run_id)
    assert view.phases.source.data["forward"] == [3.0]
    dash_master.metrics(run_id, pts("phase/forward", range(3, 4), lambda s: 7.5))
    view.refresh()
    assert view.phases.source.data["forward"] == [7.5]
    assert "live" in view.phases.note.text


def test_zoom_reads_the_range_at_full_resolution(
    dash_master: DashMaster, dash_api: DashboardApi
) -> None:
    run_id = training_run(dash_master)
    view = view_of(dash_api, run_id)
    overview = xs(view, "train/loss")

    # What a browser's zoom sends (RangesUpdate), handled synchronously before serving.
    view.curves.plots["loss"]._trigger_event(
        RangesUpdate(view.curves.plots["loss"], x0=1000, x1=1300, y0=0, y1=3)
    )
    x, y = xs(view, "train/loss"), ys(view, "train/loss")
    inside = [(a, b) for a, b in zip(x, y, strict=True) if 1000 <= a <= 1300]
    assert [a for a, _ in inside] == list(range(1000, 1301))  # every point in range
    assert [b for _, b in inside] == [loss(s) for s in range(1000, 1301)]
    assert x == sorted(x)
    assert [a for a in x if a < 1000] == [a for a in overview if a < 1000]  # overview around
    # Short curves (not downsampled) are left alone.
    assert xs(view, "val/accuracy") == list(range(0, 5000, 100))

    view.zoom(-100, 6000)  # everything in view: the overview again
    assert xs(view, "train/loss") == overview


def test_x_axis_time_and_epoch(dash_master: DashMaster, dash_api: DashboardApi) -> None:
    run_id = training_run(dash_master)
    view = view_of(dash_api, run_id, x="time")
    assert view.axis_choice.active == 1
    # Bokeh datetimes are milliseconds.
    assert xs(view, "val/accuracy")[:2] == [T0 * 1000, (T0 + 100) * 1000]
    assert view.curves.plots["loss"].xaxis[0].axis_label == "wall time"

    view.axis_choice.active = 2  # the widget, as a browser changes it
    assert view.axis == "epoch"
    assert xs(view, "val/accuracy")[:2] == [0.0, 1.0]
    dash_master.metrics(run_id, pts("val/accuracy", range(5000, 5100, 100), lambda s: 0.9))
    view.refresh()
    assert xs(view, "val/accuracy")[-1] == 50.0


def test_ranks_mean_or_one(dash_master: DashMaster, dash_api: DashboardApi) -> None:
    run_id = dash_master.create(workers=2)["id"]
    dash_master.status(run_id, "running")
    for rank in (0, 1):
        dash_master.metrics(
            run_id, pts("train/loss", range(10), lambda s, r=rank: s + 10.0 * r, rank)
        )
    view = view_of(dash_api, run_id)
    assert ys(view, "train/loss") == [s + 5.0 for s in range(10)]  # mean over ranks
    assert [value for value, _ in view.rank_choice.options] == ["mean", "0", "1"]

    # Streaming: a step is shown once both ranks reported it.
    dash_master.metrics(run_id, pts("train/loss", range(10, 12), lambda s: 100.0, 0))
    view.refresh()
    assert len(xs(view, "train/loss")) == 10
    dash_master.metrics(run_id, pts("train/loss", range(10, 12), lambda s: 200.0, 1))
    view.refresh()
    assert ys(view, "train/loss")[-2:] == [150.0, 150.0]

    view.rank_choice.value = "1"
    assert ys(view, "train/loss") == [s + 10.0 for s in range(10)] + [200.0, 200.0]
    dash_master.metrics(run_id, pts("train/loss", range(12, 13), lambda s: 7.0, 1))
    dash_master.metrics(run_id, pts("train/loss", range(12, 13), lambda s: 8.0, 0))
    view.refresh()
    assert ys(view, "train/loss")[-1] == 7.0


def test_new_metric_appears_on_refresh(dash_master: DashMaster, dash_api: DashboardApi) -> None:
    run_id = dash_master.create()["id"]
    dash_master.status(run_id, "running")
    view = view_of(dash_api, run_id)
    assert view.points.text == "points: 0" and view.curves.curves == {}
    dash_master.metrics(run_id, pts("train/loss", range(5), lambda s: 1.0))
    view.refresh()
    assert xs(view, "train/loss") == [0, 1, 2, 3, 4]
    assert view.points.text == "points: 5"


def test_stop_asks_for_confirmation(dash_master: DashMaster, dash_api: DashboardApi) -> None:
    run_id = dash_master.create(name="to-stop")["id"]
    dash_master.wait(run_id, {"starting"})
    view = view_of(dash_api, run_id)
    click(view.stop.button)
    assert view.stop.confirm.visible and "to-stop" in view.message.text
    assert dash_master.get(run_id)["state"] == "starting"  # nothing happens before confirming
    click(view.stop.cancel)
    assert not view.stop.confirm.visible
    click(view.stop.button)
    click(view.stop.confirm)
    assert dash_master.get(run_id)["state"] in {"stopping", "stopped"}
    assert view.stop.button.disabled
    run = dash_master.wait(run_id, {"stopped"})
    view.refresh()
    assert view.state.text == run["state"] == "stopped"
    assert "goal" not in view.result_div.text


def test_download_links_point_at_the_master_export(
    dash_master: DashMaster, dash_api: DashboardApi
) -> None:
    run_id = dash_master.create()["id"]
    view = view_of(dash_api, run_id)
    csv, json_ = view.downloads
    assert f'href="{dash_master.url}/api/v1/runs/{run_id}/metrics/export?format=csv"' in csv.text
    assert "format=json" in json_.text and "download" in json_.text


def test_missing_run_shows_a_clear_message(dash_master: DashMaster, dash_api: DashboardApi) -> None:
    view = view_of(dash_api, 9999)
    assert view.message.text == "run 9999 does not exist (it may have been deleted)"
    assert view.state.text == "" and view.curves.curves == {}
    view.refresh()  # still no stack trace, still the message
    assert "does not exist" in view.message.text

    no_id = RunView(Document(), dash_api, {})
    no_id.load()
    assert no_id.message.text == "no run given: open /run?id=<run id>"


def test_build_run_uses_the_default_resolution(
    dash_master: DashMaster, dash_api: DashboardApi
) -> None:
    run_id = training_run(dash_master)
    doc = Document()
    view = build_run(doc, dash_api, {"id": [str(run_id)]})
    doc.add_root(view.root)
    view.load()
    assert view.max_points == 2000
    assert 400 < len(xs(view, "train/loss")) <= 2000
    assert doc.title.startswith(f"mlbench · run {run_id}")


def test_master_down_shows_the_banner(dash_master: DashMaster) -> None:
    run_id = training_run(dash_master)
    api = dash_master.api(timeout_s=1.0)
    try:
        view = view_of(api, run_id)
        assert not view.banner.shown
        dash_master.stop()
        view.refresh()
        assert view.banner.shown and view.state.text == "running"  # last known state stays
        dash_master.start()
        view.refresh()
        assert not view.banner.shown
    finally:
        api.close()
