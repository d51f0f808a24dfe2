"""Run view (``/run?id=N``): header, result, live curves, phase bar, state timeline, events,
downloads and stop.

Data flow (every call through ``DashboardApi``, off Bokeh's loop once served):

- first load: the run, its result, its metric names, then one ``/metrics/series`` read per
  curve (downsampled by the master to ``max_points``), all as of one point id (``until_id``);
- every ``refresh_ms``: the run and only the points stored since, through cursor reads from
  that id, appended with ``ColumnDataSource.stream`` (``rollover`` as a hard bound); a new
  metric or rank, many streamed points or a changed x axis / rank choice reload instead;
- zoom (a ``RangesUpdate``, debounced): the visible range of every downsampled curve is read
  again, at full resolution once it holds at most ``max_points`` points.

Query arguments: ``id`` (required), ``x`` (step, time or epoch), ``rank`` (a rank number;
default: the mean over the ranks at each step).
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import Callable
from typing import Any

from bokeh.document import Document
from bokeh.events import RangesUpdate
from bokeh.layouts import column, row
from bokeh.models import DataRange1d, Div, RadioButtonGroup, Select

from bokeh_app.common.api import ApiError, DashboardApi
from bokeh_app.common.background import Background
from bokeh_app.common.layout import Banner, page
from bokeh_app.common.settings import DashboardSettings
from bokeh_app.views import Args, arg_int
from bokeh_app.views.run_controls import StopControl, download_links
from bokeh_app.views.run_data import (
    AXES,
    MEAN,
    PHASE_PREFIX,
    TERMINAL,
    Goal,
    MeanFolder,
    events,
    goal_of,
    header_html,
    main_curve,
    phase_values,
    result_html,
    timeline_rows,
)
from bokeh_app.views.run_fetch import RunReader, Snapshot, Update
from bokeh_app.views.run_plots import CurvePlots, PhaseBar, Timeline, from_plot, to_plot

MAX_POINTS = 2000  # per curve and read: about two points per horizontal pixel
ZOOM_DEBOUNCE_MS = 250


class RunView:
    """See the module docstring. Before ``start()`` every call is synchronous (``load()``,
    ``refresh()``, ``zoom()``, widget handlers), which is what tests use."""

    def __init__(
        self,
        doc: Document,
        api: DashboardApi,
        args: Args,
        refresh_ms: int = 1000,
        max_points: int = MAX_POINTS,
    ) -> None:
        self.doc, self.api, self.refresh_ms, self.max_points = doc, api, refresh_ms, max_points
        self.run_id = arg_int(args, "id")
        self.reader = None if self.run_id is None else RunReader(api, self.run_id, max_points)
        axis = (args.get("x") or ["step"])[0]
        self.axis = axis if axis in AXES else "step"
        rank = arg_int(args, "rank")
        self.rank_mode = MEAN if rank is None else str(rank)
        self.banner = Banner(api.base_url)
        self.bg = Background(doc, self.banner)
        self.served = False
        # Plain state that fetches (in worker threads) read; Bokeh models are touched only
        # when results are applied on the document's thread.
        self.generation = 0
        self.cursor = 0
        self.loaded = False
        self.missing = False
        self.needs_reload = False
        self.run: dict[str, Any] | None = None
        self.entry: dict[str, Any] | None = None
        self.result: dict[str, Any] | None = None
        self.names: dict[str, tuple[int, ...]] = {}
        self.groups: dict[str, list[str]] = {}
        self.folders: dict[str, MeanFolder] = {}
        self.live_phases: dict[str, float] = {}
        self.goal = Goal(None, None)
        self._zoom_timeout: Any = None
        self.zoomed: tuple[float, float] | None = None  # plot units; None: everything

        self.header = Div(text="", css_classes=["mlb-run-header"], sizing_mode="stretch_width")
        self.state = Div(text="", css_classes=["mlb-run-state"])
        self.result_div = Div(text="", css_classes=["mlb-result"], sizing_mode="stretch_width")
        self.message = Div(text="", render_as_text=True, css_classes=["mlb-run-message"])
        self.points = Div(text="points: 0", css_classes=["mlb-points"])
        self.axis_choice = RadioButtonGroup(
            labels=list(AXES), active=AXES.index(self.axis), css_classes=["mlb-x-axis"]
        )
        self.rank_choice = Select(
            title="ranks",
            value=self.rank_mode,
            options=[(MEAN, "mean over ranks")],
            css_classes=["mlb-rank"],
            width=160,
        )
        self.axis_choice.on_change("active", self._axis_changed)
        self.rank_choice.on_change("value", self._rank_changed)
        self.stop = StopControl(api, self.run_id, self.message, self._call, self._stopped)
        self.downloads = download_links(api, self.run_id)

        self.curves = CurvePlots()
        self.curves.set_axis(self.axis)
        for plot in self.curves.plots.values():
            plot.on_event(RangesUpdate, self._ranges_updated)
        self.phases = PhaseBar()
        self.timeline = Timeline()
        plots = self.curves.plots
        body = column(
            row(self.state, self.header, sizing_mode="stretch_width"),
            self.result_div,
            row(
                self.axis_choice,
                self.rank_choice,
                *self.stop.models,
                *self.downloads,
                self.points,
            ),
            self.message,
            plots["quality"],
            plots["loss"],
            plots["throughput"],
            self.phases.plot,
            self.phases.note,
            self.timeline.plot,
            self.timeline.events,
            sizing_mode="stretch_width",
        )
        title = f"Run {self.run_id}" if self.run_id is not None else "Run"
        self.root = page(title, body, self.banner, run_id=self.run_id)
        if self.run_id is None:
            self.message.text = "no run given: open /run?id=<run id>"

    # -- calls: synchronous until served -----------------------------------------------------

    def _call(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.bg.call(fn, on_done, on_error, served=self.served)

    def load(self) -> None:
        """Fetch everything and show it (tests; also the first render)."""
        if self.run_id is not None:
            self.generation += 1
            self.bg.run_now(self._fetch_all, self._apply, self._failed)

    def refresh(self) -> None:
        """One refresh tick, synchronously: only what is new since the last read."""
        if self.run_id is not None:
            self.bg.run_now(self._fetch_tick, self._apply, self._failed)

    def start(self) -> None:
        self.served = True
        if self.run_id is None:
            return
        self.generation += 1
        self.bg.submit(self._fetch_all, self._apply, self._failed)
        self.bg.every(self.refresh_ms, self._fetch_tick, self._apply, self._failed)

    def close(self) -> None:
        self.bg.close()

    def _reload(self) -> None:
        self.generation += 1
        self.loaded = False
        self._call(self._fetch_all, self._apply, self._failed)

    # -- fetching (worker threads: plain attributes only) ------------------------------------

    def _rank(self) -> int | None:
        return None if self.rank_mode == MEAN else int(self.rank_mode)

    def _fetch_all(self) -> Snapshot:
        assert self.reader is not None
        return self.reader.snapshot(self.generation, self.axis, self._rank(), self.entry)

    def _plotted(self) -> list[str]:
        names = [n for group in self.groups.values() for n in group]
        return names + [n for n in self.names if n.startswith(PHASE_PREFIX)]

    def _fetch_tick(self) -> Snapshot | Update:
        assert self.reader is not None
        if self.loaded and not self.needs_reload:
            found = self.reader.update(
                self.generation,
                self.cursor,
                self.names,
                self._plotted(),
                self._rank(),
                self.result,
            )
            if found is not None:
                return found
        self.generation += 1
        return self._fetch_all()

    # -- applying (document thread) ----------------------------------------------------------

    def _failed(self, exc: Exception) -> None:
        if isinstance(exc, ApiError) and exc.status == 404:
            self.missing = True
            self.bg.close()  # nothing left to refresh
            self.message.text = f"run {self.run_id} does not exist (it may have been deleted)"
            self.header.text = html.escape(self.message.text)
            self.state.text = ""
            self.stop.set_state("", "", ended=True)
        elif isinstance(exc, ApiError):
            self.message.text = f"cannot read run {self.run_id}: {exc.detail}"

    def _apply(self, got: Snapshot | Update) -> None:
        if isinstance(got, Snapshot):
            self._apply_snapshot(got)
        else:
            self._apply_update(got)

    def _apply_snapshot(self, snap: Snapshot) -> None:
        if snap.generation != self.generation:
            return  # the axis or rank changed meanwhile; a newer load is on its way
        self.entry, self.names, self.groups, self.goal = (
            snap.entry,
            snap.names,
            snap.groups,
            snap.goal,
        )
        self.live_phases = snap.live_phases
        self.rank_choice.options = [(MEAN, "mean over ranks")] + [
            (str(r), f"rank {r}") for r in snap.ranks
        ]
        self.curves.set_goal(snap.goal.value)
        # New curves first, with the document's model bookkeeping frozen: it walks the whole
        # model graph once at the end instead of after each renderer and legend item (most of
        # a first load's time). Their data is set after: a model the document does not know
        # yet sends no change to the browser.
        with self.doc.models.freeze():
            for group, names in snap.groups.items():
                for name in names:
                    self.curves.curve(group, name)
        shown = set()
        for group, names in snap.groups.items():
            for name in names:
                body = snap.series[name]
                xs = [to_plot(self.axis, x) for x in body["x"]]
                self.curves.curve(group, name).set_series(xs, body["y"], body["downsampled"])
                ranks = set(body["ranks"])
                if self.rank_mode == MEAN and len(ranks) > 1:
                    self.folders[name] = MeanFolder(ranks)
                else:
                    self.folders.pop(name, None)
                shown.add(name)
        for name, curve in self.curves.curves.items():
            if name not in shown:
                curve.clear()
        self.cursor = snap.cursor
        self.loaded, self.needs_reload, self.missing = True, False, False
        if self.message.text.startswith("cannot read"):
            self.message.text = ""
        self._show_run(snap.run, snap.result)
        if self.zoomed is not None:  # a reload keeps the zoomed-in detail
            self.zoom(*self.zoomed)

    def _apply_update(self, up: Update) -> None:
        if up.generation != self.generation or up.cursor_from != self.cursor:
            return  # a reload or another tick got there first
        by_name: dict[str, list[dict[str, Any]]] = {}
        for point in up.points:
            by_name.setdefault(point["name"], []).append(point)
        for name, points in by_name.items():
            if name.startswith(PHASE_PREFIX):
                self.live_phases[name.removeprefix(PHASE_PREFIX)] = points[-1]["value"]
                continue
            curve = self.curves.curves.get(name)
            if curve is None:
                continue
            folder = self.folders.get(name)
            if folder is not None:
                xs, ys = folder.add(points, self.axis)
            else:
                xs, ys = [float(p[self.axis]) for p in points], [p["value"] for p in points]
            curve.stream([to_plot(self.axis, x) for x in xs], ys)
            if curve.streamed > self.max_points:
                self.needs_reload = True  # compact: the next tick reads a downsampled overview
        self.cursor = up.cursor
        self._show_run(up.run, up.result)

    def _show_run(self, run: dict[str, Any], result: dict[str, Any] | None) -> None:
        self.run, self.result = run, result
        if result is not None and result.get("goal_value") is not None:
            self.goal = goal_of(run, self.entry, result)
            self.curves.set_goal(self.goal.value)
        state = run["state"]
        if self.state.text != state:
            self.state.text = state
        header = f"<span>state: {html.escape(state)}</span> · {header_html(run, self.goal)}"
        if self.header.text != header:
            self.header.text = header
        self.doc.title = f"mlbench · run {run['id']} {run['name']}"
        text = result_html(result, state)
        if self.result_div.text != text:
            self.result_div.text = text
        values = self._phase_values()
        label = (
            "from the result"
            if result and result.get("phases")
            else (
                "live phase metrics" if self.live_phases else "phase times arrive with the result"
            )
        )
        self.phases.set(values, label)
        self.timeline.set(timeline_rows(run), events(run))
        self.stop.set_state(run["name"], state, state in TERMINAL)
        self._count_points()

    def _stopped(self, run: dict[str, Any]) -> None:
        if self.run is not None:
            self._show_run(run, self.result)

    def _phase_values(self) -> dict[str, float]:
        return phase_values(self.result, self.live_phases)

    def _count_points(self) -> None:
        name = main_curve(self.groups)
        curve = self.curves.curves.get(name) if name else None
        text = f"points: {len(curve.source.data['x']) if curve else 0}"
        if self.points.text != text:
            self.points.text = text

    # -- axis, ranks, zoom ------------------------------------------------------------------

    def _axis_changed(self, _attr: str, _old: int, new: int) -> None:
        self.set_axis(AXES[new])

    def set_axis(self, axis: str) -> None:
        if axis == self.axis or axis not in AXES:
            return
        self.axis = axis
        self.curves.set_axis(axis)
        self._new_x_range()
        self._reload()

    def _rank_changed(self, _attr: str, _old: str, new: str) -> None:
        self.set_rank(new)

    def set_rank(self, mode: str) -> None:
        if mode == self.rank_mode:
            return
        self.rank_mode = mode
        self._reload()

    def _new_x_range(self) -> None:
        """A fresh auto range: the old one keeps the user's zoom in the old axis' units."""
        self.zoomed = None
        self.curves.x_range = DataRange1d(range_padding=0.02)
        for plot in self.curves.plots.values():
            plot.x_range = self.curves.x_range

    def _ranges_updated(self, event: RangesUpdate) -> None:
        if event.x0 is None or event.x1 is None:
            return
        x0, x1 = float(event.x0), float(event.x1)
        if not self.served:
            self.zoom(x0, x1)
            return
        if self._zoom_timeout is not None:
            with contextlib.suppress(ValueError):
                self.doc.remove_timeout_callback(self._zoom_timeout)
        self._zoom_timeout = self.doc.add_timeout_callback(
            lambda: self.zoom(x0, x1), ZOOM_DEBOUNCE_MS
        )

    def zoom(self, x0: float, x1: float) -> None:
        """Show [x0, x1] (plot units): downsampled curves are read again for that range;
        a range that covers every curve shows the overviews again."""
        self._zoom_timeout = None
        curves = self.curves.curves
        xs = [c.overview_x for c in curves.values() if c.overview_x]
        self.zoomed = (x0, x1)
        if not xs or (x0 <= min(x[0] for x in xs) and x1 >= max(x[-1] for x in xs)):
            self.zoomed = None
            for curve in curves.values():
                curve.reset_zoom()
            self._count_points()
            return
        names = [n for n, c in curves.items() if c.downsampled and c.overview_x]
        reader = self.reader
        if not names or reader is None:
            return
        generation, axis, cursor, rank = self.generation, self.axis, self.cursor, self._rank()
        lo, hi = from_plot(axis, x0), from_plot(axis, x1)

        def fetch() -> dict[str, dict[str, Any]]:
            return reader.zoomed(names, axis, rank, lo, hi, cursor)

        def apply(found: dict[str, dict[str, Any]]) -> None:
            if generation != self.generation:
                return
            for name, body in found.items():
                xs_ = [to_plot(axis, x) for x in body["x"]]
                curves[name].show_detail(x0, x1, xs_, body["y"])
            self._count_points()

        self._call(fetch, apply, self._failed)


def build_run(doc: Document, api: DashboardApi, args: Args) -> RunView:
    doc.title = "mlbench · run"
    return RunView(doc, api, args, DashboardSettings().run_refresh_ms)
