"""Compare view: several runs side by side.

- curves of one metric (default: the benchmark's quality metric) overlaid on a shared x axis
  (step, wall time since each run started, or epoch), one colour per run, WebGL, each run's
  series read downsampled by the master (at most ``MAX_POINTS`` points per run);
- time to goal per run (runs that missed the goal hatched and grey, at their full training
  time);
- speedup and scaling efficiency against the number of workers, with the ideal line, and the
  phase breakdown per worker count (definitions in ``compare_data``).

All HTTP runs off the event loop (``Background``); ``load()`` does the same synchronously for
tests and the first render. The selection is kept in the page URL (``?ids=1,2,3``).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bokeh.document import Document
from bokeh.layouts import column, row
from bokeh.models import (
    ColumnDataSource,
    CustomJS,
    Div,
    FactorRange,
    FixedTicker,
    GlyphRenderer,
    HoverTool,
    Legend,
    LegendItem,
    MultiChoice,
    Select,
)
from bokeh.palettes import Category10, Category20
from bokeh.plotting import figure

from bokeh_app.common.api import ApiError, DashboardApi
from bokeh_app.common.background import Background
from bokeh_app.common.layout import Banner, page
from bokeh_app.views import Args, arg_ints
from bokeh_app.views import compare_data as cd
from mlbench_core.states import TERMINAL
from mlbench_core.wire import PHASES

MAX_POINTS = 1000
"""Points per run and curve: 20 runs stay responsive in the browser."""
LISTED_RUNS = 500
"""Newest runs offered in the picker (the API's page limit)."""
REFRESH_MS = 5000
PHASE_COLORS = dict(zip(PHASES, Category10[10], strict=False))
PALETTE: tuple[str, ...] = tuple(Category10[10]) + tuple(Category20[20][1::2])
PICKABLE_STATES = frozenset({"starting", "running", "stopping", *TERMINAL})
"""The picker offers ended and live runs (a queued run has nothing to show yet)."""

_fanout = ThreadPoolExecutor(8, thread_name_prefix="mlb-compare-fanout")
"""Per-run reads of one refresh run in parallel, in their own pool: they are submitted from
``Background``'s pool and must not wait for a slot in it."""


# --------------------------------------------------------------------------------------------
# Reading (worker threads; touches no Bokeh model)


@dataclass
class Snapshot:
    """Everything one refresh read from the master."""

    ids: tuple[int, ...]
    x_kind: str
    options: list[tuple[str, str]] | None
    """Picker options ``(id, label)``; None when the listing was not read."""
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    missing: dict[int, str] = field(default_factory=dict)
    """Selected ids the master does not know (or refused), with why."""
    results: dict[int, dict[str, Any] | None] = field(default_factory=dict)
    metric_names: list[str] = field(default_factory=list)
    metric: str | None = None
    series: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    downsampled: dict[int, bool] = field(default_factory=dict)


class CompareReader:
    """The reads of the Compare view; what cannot change any more (results, names and series
    of ended runs, the catalog) is read once per view."""

    def __init__(self, api: DashboardApi, max_points: int = MAX_POINTS) -> None:
        self.api = api
        self.max_points = max_points
        self._goals: dict[str, str] | None = None
        self._ended: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()
        self.series_endpoint: bool | None = None
        """Whether the master has GET /metrics/series (None: not tried yet)."""

    # -- one value per run, cached once the run ended --------------------------------------

    def _cached(self, key: tuple[Any, ...], ended: bool, read: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._ended:
                return self._ended[key]
        value = read()
        if ended:
            with self._lock:
                self._ended[key] = value
        return value

    def goal_metrics(self) -> dict[str, str]:
        """Benchmark id → its quality metric (the catalog does not change while we run)."""
        if self._goals is None:
            self._goals = {
                b["id"]: b["goal"]["metric"] for b in self.api.benchmarks() if b.get("goal")
            }
        return self._goals

    def metric_names(self, run: Mapping[str, Any]) -> list[dict[str, Any]]:
        run_id = int(run["id"])
        return self._cached(
            ("names", run_id),
            run["state"] in TERMINAL,
            lambda: self.api.metric_names(run_id),
        )

    def result(self, run: Mapping[str, Any]) -> dict[str, Any] | None:
        run_id = int(run["id"])
        return self._cached(
            ("result", run_id), run["state"] in TERMINAL, lambda: self.api.result(run_id)
        )

    def series(
        self, run: Mapping[str, Any], name: str, rank: int, x_kind: str
    ) -> tuple[dict[str, list[float]], bool]:
        """One run's curve as plot columns, at most about ``max_points`` points."""
        run_id = int(run["id"])

        def read() -> tuple[dict[str, list[float]], bool]:
            xs, ys, downsampled = self._read_series(run_id, name, rank, x_kind)
            t0 = cd.parse_time(run.get("started_at"))
            return cd.curve_columns(xs, ys, x_kind, t0), downsampled

        return self._cached(("series", run_id, name, rank, x_kind), run["state"] in TERMINAL, read)

    def _read_series(
        self, run_id: int, name: str, rank: int, x_kind: str
    ) -> tuple[list[float], list[float], bool]:
        if self.series_endpoint is not False:
            params = {"name": name, "rank": rank, "x": x_kind, "max_points": self.max_points}
            try:
                page = self.api.series(run_id, **params)
            except ApiError as exc:
                # A master without the route answers FastAPI's plain "Not Found" (405 if a
                # differently-methoded route shares the path); fall back to the paged read.
                if exc.status not in (404, 405) or exc.detail != (
                    "Not Found" if exc.status == 404 else "Method Not Allowed"
                ):
                    raise
                self.series_endpoint = False
            else:
                self.series_endpoint = True
                return list(page["x"]), list(page["y"]), bool(page.get("downsampled"))
        return self._read_series_paged(run_id, name, rank, x_kind)

    def _read_series_paged(
        self, run_id: int, name: str, rank: int, x_kind: str
    ) -> tuple[list[float], list[float], bool]:
        """Fallback: GET /metrics pages with ``max_points`` (each page downsampled by the
        master), joined and thinned again here."""
        points: list[dict[str, Any]] = []
        cursor = 0
        pages = 0
        while True:
            page = self.api.metrics(
                run_id, name=name, rank=rank, cursor=cursor, max_points=self.max_points
            )
            points.extend(page["points"])
            cursor = page["next_cursor"]
            pages += 1
            if not page.get("has_more") or not page["points"]:
                break
        xs, ys = cd.points_to_series(points, name, rank, x_kind)
        thinned_x, thinned_y = cd.thin(xs, ys, self.max_points)
        return thinned_x, thinned_y, pages > 1 or len(thinned_x) < len(xs)

    # -- one refresh -----------------------------------------------------------------------

    def read(
        self,
        ids: Sequence[int],
        metric: str | None,
        x_kind: str,
        *,
        listing: bool = True,
    ) -> Snapshot:
        snap = Snapshot(ids=tuple(ids), x_kind=x_kind, options=None)
        listed: dict[int, dict[str, Any]] = {}
        if listing:
            items = self.api.runs_page(limit=LISTED_RUNS)["items"]
            listed = {int(r["id"]): r for r in items}
            snap.options = [
                (str(r["id"]), cd.run_label(r)) for r in items if r["state"] in PICKABLE_STATES
            ]
        for run_id, run in zip(ids, _parallel(self._run_or_error, ids), strict=True):
            if isinstance(run, ApiError):
                snap.missing[run_id] = run.detail
            else:
                snap.runs[run_id] = listed.get(run_id) or run
        # A listed run is as fresh as GET /runs/{id}; only unlisted ones were read one by one.
        runs = [snap.runs[i] for i in ids if i in snap.runs]
        snap.results = dict(
            zip((int(r["id"]) for r in runs), _parallel(self.result, runs), strict=True)
        )
        names_per_run = dict(
            zip((int(r["id"]) for r in runs), _parallel(self.metric_names, runs), strict=True)
        )
        snap.metric_names = sorted({n["name"] for names in names_per_run.values() for n in names})
        snap.metric = self._pick_metric(metric, runs, snap.metric_names)
        if snap.metric is None:
            return snap
        wanted = []
        for run in runs:
            rank = _rank_of(names_per_run[int(run["id"])], snap.metric)
            if rank is not None:
                wanted.append((run, rank))

        def one(item: tuple[dict[str, Any], int]) -> tuple[dict[str, list[float]], bool]:
            run, rank = item
            assert snap.metric is not None
            return self.series(run, snap.metric, rank, x_kind)

        for (run, _), (cols, downsampled) in zip(wanted, _parallel(one, wanted), strict=True):
            snap.series[int(run["id"])] = cols
            snap.downsampled[int(run["id"])] = downsampled
        return snap

    def _run_or_error(self, run_id: int) -> dict[str, Any] | ApiError:
        try:
            return self.api.run(run_id)
        except ApiError as exc:
            return exc

    def _pick_metric(
        self, wanted: str | None, runs: Sequence[Mapping[str, Any]], names: Sequence[str]
    ) -> str | None:
        """The chosen metric if some run has it, else the first run's quality metric, else a
        validation metric, else the first name."""
        if wanted in names:
            return wanted
        goals = self.goal_metrics() if runs else {}
        for run in runs:
            goal = goals.get(str(run["benchmark"]))
            if goal in names:
                return goal
        return next((n for n in names if n.startswith("val/")), names[0] if names else None)


def _rank_of(names: Iterable[Mapping[str, Any]], metric: str) -> int | None:
    """Rank 0 if it logged the metric, else the lowest rank that did."""
    for entry in names:
        if entry["name"] == metric:
            ranks = sorted(int(r) for r in entry.get("ranks") or [0])
            return ranks[0]
    return None


def _parallel(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    if len(items) <= 1:
        return [fn(item) for item in items]
    return list(_fanout.map(fn, items))


# --------------------------------------------------------------------------------------------
# The view (document thread)


class CompareView:
    def __init__(
        self,
        doc: Document,
        api: DashboardApi,
        args: Args,
        *,
        refresh_ms: int = REFRESH_MS,
        max_points: int = MAX_POINTS,
    ) -> None:
        self.doc = doc
        self.api = api
        self.refresh_ms = refresh_ms
        self.reader = CompareReader(api, max_points)
        self.banner = Banner(api.base_url)
        self.background = Background(doc, self.banner)
        self.ids: list[int] = arg_ints(args, "ids")
        self.snapshot: Snapshot | None = None
        self._generation = 0
        self._applying = False
        self._colors: dict[int, str] = {}
        self._color_cycle = itertools.cycle(PALETTE)

        self.picker = MultiChoice(
            title="Runs",
            options=[(str(i), f"#{i}") for i in self.ids],
            value=[str(i) for i in self.ids],
            placeholder="pick runs to compare",
            css_classes=["mlb-compare-runs"],
            sizing_mode="stretch_width",
        )
        self.picker.on_change("value", self._on_pick)
        # Keep the selection in the address bar, so that reloading or sharing shows it again.
        self.picker.js_on_change(
            "value",
            CustomJS(
                code="""
const params = new URLSearchParams(window.location.search)
params.delete('ids')
let query = params.toString()
if (cb_obj.value.length) query = (query ? query + '&' : '') + 'ids=' + cb_obj.value.join(',')
window.history.replaceState(null, '', window.location.pathname + (query ? '?' + query : ''))
"""
            ),
        )
        self.metric_select = Select(
            title="Metric", options=[], value="", css_classes=["mlb-compare-metric"], width=260
        )
        self.metric_select.on_change("value", self._on_option)
        self.x_select = Select(
            title="x axis",
            options=[(k, cd.X_LABELS[k]) for k in cd.X_KINDS],
            value="step",
            css_classes=["mlb-compare-x"],
            width=200,
        )
        self.x_select.on_change("value", self._on_option)
        self.status = Div(text="", css_classes=["mlb-compare-status"], sizing_mode="stretch_width")

        self.curves = figure(
            title="Curves",
            height=380,
            sizing_mode="stretch_width",
            output_backend="webgl",
            x_axis_label=cd.X_LABELS["step"],
            tools="pan,wheel_zoom,box_zoom,reset,save",
            css_classes=["mlb-compare-curves"],
        )
        self.curves.add_tools(
            HoverTool(tooltips=[("run", "$name"), ("x", "$x{0.[00]}"), ("y", "$y{0.[0000]}")])
        )
        self.legend = Legend(items=[], click_policy="hide", location="top_left")
        self.curves.add_layout(self.legend, "right")
        # An empty glyph until runs are picked (Bokeh warns about a plot without renderers).
        self.curves.scatter(x=[], y=[], size=0)
        self.curve_sources: dict[int, ColumnDataSource] = {}
        self.curve_renderers: dict[int, GlyphRenderer] = {}

        self.ttg_source = ColumnDataSource(cd.time_to_goal_columns([]))
        self.ttg = figure(
            title="Time to goal (hatched: goal missed, bar = whole training time)",
            x_range=FactorRange(),
            height=320,
            sizing_mode="stretch_width",
            y_axis_label="seconds",
            tools="save",
            css_classes=["mlb-ttg-bars"],
        )
        self.ttg.vbar(
            x="x",
            top="height",
            width=0.8,
            source=self.ttg_source,
            fill_color="color",
            line_color="#555555",
            hatch_pattern="hatch",
            hatch_color="#777777",
        )
        self.ttg.text(
            x="x",
            y="height",
            text="text",
            source=self.ttg_source,
            text_align="center",
            text_baseline="bottom",
            text_font_size="9pt",
        )
        self.ttg.add_tools(
            HoverTool(
                tooltips=[
                    ("run", "@x"),
                    ("status", "@status"),
                    ("time to goal", "@time_to_goal_s{0.[00]} s"),
                    ("training time", "@total_time_s{0.[00]} s"),
                ]
            )
        )
        self.ttg.xaxis.major_label_orientation = 0.6
        self.ttg.y_range.start = 0

        self.speedup_source = ColumnDataSource(_scaling_cols([]))
        self.speedup_lines = ColumnDataSource({"xs": [], "ys": [], "color": [], "config": []})
        self.efficiency_lines = ColumnDataSource({"xs": [], "ys": [], "color": [], "config": []})
        self.ideal_source = ColumnDataSource(cd.ideal_columns([]))
        self.speedup = self._scaling_figure(
            "Speedup vs workers (dashed: ideal)", "speedup", self.speedup_lines, "mlb-speedup"
        )
        self.efficiency = self._scaling_figure(
            "Scaling efficiency vs workers (dashed: ideal)",
            "efficiency",
            self.efficiency_lines,
            "mlb-efficiency",
        )
        self.efficiency.y_range.start = 0
        self.efficiency.y_range.range_padding = 0.15
        self.efficiency.legend.location = "bottom_left"  # the ideal line runs along the top

        self.phase_source = ColumnDataSource(cd.phase_columns([]))
        self.phases = figure(
            title="Phase breakdown vs workers (mean seconds per run, rank 0)",
            x_range=FactorRange(),
            height=320,
            sizing_mode="stretch_width",
            y_axis_label="seconds",
            tools="save",
            css_classes=["mlb-phase-vs-workers"],
        )
        self.phases.vbar_stack(
            list(PHASES),
            x="x",
            width=0.7,
            source=self.phase_source,
            color=[PHASE_COLORS[p] for p in PHASES],
            legend_label=list(PHASES),
        )
        self.phases.add_tools(
            HoverTool(
                tooltips=[("", "@x"), ("runs", "@runs")]
                + [(p, f"@{{{p}}}{{0.[000]}} s") for p in PHASES]
            )
        )
        self.phases.add_layout(self.phases.legend[0], "right")
        self.phases.y_range.start = 0

        body = column(
            self.picker,
            row(self.metric_select, self.x_select),
            self.status,
            self.curves,
            self.ttg,
            row(self.speedup, self.efficiency, sizing_mode="stretch_width"),
            self.phases,
            sizing_mode="stretch_width",
        )
        self.root = page("Compare runs", body, self.banner, compare_ids=self.ids)

    def _scaling_figure(self, title: str, y: str, lines: ColumnDataSource, css: str) -> figure:
        fig = figure(
            title=title,
            height=320,
            sizing_mode="stretch_width",
            x_axis_label="workers",
            y_axis_label=y,
            tools="pan,wheel_zoom,reset,save",
            css_classes=[css],
        )
        fig.line(
            x="workers",
            y=y,
            source=self.ideal_source,
            line_dash="dashed",
            color="#888888",
            legend_label="ideal",
        )
        fig.multi_line(xs="xs", ys="ys", source=lines, line_color="color", line_width=2)
        fig.scatter(
            x="workers",
            y=y,
            source=self.speedup_source,
            size=9,
            color="color",
            legend_field="config",
        )
        fig.add_tools(
            HoverTool(
                tooltips=[
                    ("configuration", "@config"),
                    ("workers", "@workers (base @base_workers)"),
                    (y, f"@{y}{{0.[000]}}"),
                    ("from", "@basis @value{0.[00]}"),
                    ("runs", "@runs"),
                ]
            )
        )
        fig.legend.location = "top_left"
        fig.xaxis.ticker = FixedTicker(ticks=[])  # the worker counts present, set on apply
        fig.x_range.range_padding = 0.1
        return fig

    # -- reading ---------------------------------------------------------------------------

    def _request(self) -> tuple[int, Callable[[], Snapshot]]:
        self._generation += 1
        ids = list(self.ids)
        metric = self.metric_select.value or None
        x_kind = self.x_select.value
        return self._generation, lambda: self.reader.read(ids, metric, x_kind)

    def load(self) -> None:
        """Read and apply now, on this thread (tests, first render)."""
        generation, read = self._request()
        self.background.run_now(read, lambda snap: self._apply(generation, snap), self._failed)

    def refresh(self) -> None:
        """Read in the background and apply on the document's next tick."""
        generation, read = self._request()
        self.background.submit(read, lambda snap: self._apply(generation, snap), self._failed)

    def start(self) -> None:
        """First read, then one every ``refresh_ms`` (skipped while one is still running)."""
        self.refresh()

        def tick() -> tuple[int, Snapshot]:
            generation, read = self._request_from_thread()
            return generation, read()

        self.background.every(self.refresh_ms, tick, lambda out: self._apply(*out), self._failed)

    def _request_from_thread(self) -> tuple[int, Callable[[], Snapshot]]:
        # Reading a few model properties from a worker thread is safe (no document change).
        generation = self._generation
        ids = list(self.ids)
        metric = self.metric_select.value or None
        x_kind = self.x_select.value
        return generation, lambda: self.reader.read(ids, metric, x_kind)

    def close(self) -> None:
        """Stop refreshing (the session ended)."""
        self.background.close()

    def _failed(self, exc: Exception) -> None:
        if isinstance(exc, ApiError):
            self.status.text = f"<span style='color:#b71c1c'>{_escape(str(exc))}</span>"

    # -- user actions ----------------------------------------------------------------------

    def select(self, ids: Sequence[int]) -> None:
        """Set the selection (as the picker does) without reading; call ``load()``/``refresh()``."""
        self.picker.value = [str(i) for i in ids]
        self.ids = list(ids)

    def _on_pick(self, _attr: str, _old: list[str], new: list[str]) -> None:
        if self._applying:
            return
        self.ids = list(dict.fromkeys(int(v) for v in new if v.isdigit()))
        self.refresh()

    def _on_option(self, _attr: str, old: str, new: str) -> None:
        if self._applying or old == new:
            return
        self.refresh()

    # -- applying (document thread) --------------------------------------------------------

    def _apply(self, generation: int, snap: Snapshot) -> None:
        if generation != self._generation:
            return  # the selection or an option changed since this read started
        self.snapshot = snap
        self._applying = True
        try:
            self._apply_controls(snap)
            # Charts list runs by id, whatever order the chips were picked in.
            ordered = sorted(i for i in snap.ids if i in snap.runs)
            infos = cd.run_infos((snap.runs[i] for i in ordered), snap.results)
            self._apply_curves(snap, infos)
            self._apply_ttg(infos)
            self._apply_scaling(infos)
        finally:
            self._applying = False

    def _apply_controls(self, snap: Snapshot) -> None:
        if snap.options is not None:
            options = list(snap.options)
            known = {value for value, _ in options}
            # Selected runs stay selectable even when not (or no longer) listed.
            for run_id in snap.ids:
                if str(run_id) not in known:
                    run = snap.runs.get(run_id)
                    label = cd.run_label(run) if run else f"#{run_id} (not found)"
                    options.append((str(run_id), label))
            if options != self.picker.options:
                self.picker.options = options
        value = [str(i) for i in snap.ids]
        if self.picker.value != value:
            self.picker.value = value
        names = snap.metric_names
        if self.metric_select.options != names:
            self.metric_select.options = names
        if snap.metric is not None and self.metric_select.value != snap.metric:
            self.metric_select.value = snap.metric
        messages = [f"run {i}: {why}" for i, why in snap.missing.items()]
        if snap.metric is not None:
            lacking = [i for i in snap.runs if i not in snap.series]
            if lacking:
                messages.append(
                    f"no {snap.metric} points in run(s) " + ", ".join(f"#{i}" for i in lacking)
                )
        if not snap.ids:
            messages.append("Pick runs to compare.")
        text = "<br>".join(_escape(m) for m in messages)
        if self.status.text != text:
            self.status.text = text

    def _color(self, run_id: int) -> str:
        if run_id not in self._colors:
            used = {self._colors[i] for i in self.ids if i in self._colors}
            free = [c for c in PALETTE if c not in used]
            self._colors[run_id] = free[0] if free else next(self._color_cycle)
        return self._colors[run_id]

    def _apply_curves(self, snap: Snapshot, infos: Sequence[cd.RunInfo]) -> None:
        labels = {info.id: info.label for info in infos}
        wanted = sorted(i for i in snap.ids if i in snap.series)
        for run_id in list(self.curve_renderers):
            if run_id not in wanted:
                renderer = self.curve_renderers.pop(run_id)
                self.curve_sources.pop(run_id)
                self._colors.pop(run_id, None)
                self.curves.renderers = [r for r in self.curves.renderers if r is not renderer]
        for run_id in wanted:
            cols = snap.series[run_id]
            source = self.curve_sources.get(run_id)
            if source is None:
                source = ColumnDataSource(cols)
                self.curve_sources[run_id] = source
                self.curve_renderers[run_id] = self.curves.line(
                    x="x",
                    y="y",
                    source=source,
                    line_width=2,
                    color=self._color(run_id),
                    name=labels.get(run_id, f"#{run_id}"),
                )
            elif source.data["x"] != cols["x"] or source.data["y"] != cols["y"]:
                source.data = cols
        items = [
            LegendItem(label=labels.get(i, f"#{i}"), renderers=[self.curve_renderers[i]])
            for i in wanted
        ]
        if [(it.label, it.renderers) for it in items] != [
            (it.label, it.renderers) for it in self.legend.items
        ]:
            self.legend.items = items
        self.curves.title.text = f"{snap.metric or 'no metric'} (≤ {self.reader.max_points} "
        self.curves.title.text += "points per run, downsampled by the master)"
        self.curves.xaxis.axis_label = cd.X_LABELS.get(snap.x_kind, snap.x_kind)

    def _apply_ttg(self, infos: Sequence[cd.RunInfo]) -> None:
        cols = cd.time_to_goal_columns(infos)
        if list(self.ttg.x_range.factors) != cols["x"]:
            self.ttg.x_range.factors = cols["x"]
        if dict(self.ttg_source.data) != cols:
            self.ttg_source.data = cols
        # A fixed top with room for the labels above the bars (auto-ranging ignores text).
        top = max(cols["height"], default=0.0) * 1.15 or 1.0
        if self.ttg.y_range.end != top:
            self.ttg.y_range.end = top

    def _apply_scaling(self, infos: Sequence[cd.RunInfo]) -> None:
        cells = cd.cells(infos)
        points = cd.scaling(cells)
        configs = list(dict.fromkeys(p.config for p in points))
        colors = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(configs)}
        cols = _scaling_cols(points, colors)
        self.speedup_source.data = cols
        lines: dict[str, dict[str, list[Any]]] = {
            "speedup": {"xs": [], "ys": [], "color": [], "config": []},
            "efficiency": {"xs": [], "ys": [], "color": [], "config": []},
        }
        for config in configs:
            one = cd.scaling_columns(points, config)
            for y, target in lines.items():
                target["xs"].append(one["workers"])
                target["ys"].append(one[y])
                target["color"].append(colors[config])
                target["config"].append(one["config"][0])
        self.speedup_lines.data = lines["speedup"]
        self.efficiency_lines.data = lines["efficiency"]
        self.ideal_source.data = cd.ideal_columns(points)
        ticks = sorted({p.workers for p in points} | {p.base_workers for p in points})
        for fig in (self.speedup, self.efficiency):
            if list(fig.xaxis[0].ticker.ticks) != ticks:
                fig.xaxis[0].ticker.ticks = ticks
        phase_cols = cd.phase_columns(cells)
        if list(self.phases.x_range.factors) != phase_cols["x"]:
            self.phases.x_range.factors = phase_cols["x"]
        self.phase_source.data = phase_cols


def _scaling_cols(
    points: Sequence[cd.ScalingPoint], colors: Mapping[str, str] | None = None
) -> dict[str, list[Any]]:
    ordered = sorted(points, key=lambda p: (p.config_label, p.workers))
    colors = colors or {}
    return {
        "workers": [p.workers for p in ordered],
        "speedup": [p.speedup for p in ordered],
        "efficiency": [p.efficiency for p in ordered],
        "ideal": [p.ideal_speedup for p in ordered],
        "base_workers": [p.base_workers for p in ordered],
        "basis": [p.basis for p in ordered],
        "value": [p.value for p in ordered],
        "runs": [p.runs for p in ordered],
        "config": [p.config_label for p in ordered],
        "color": [colors.get(p.config, PALETTE[0]) for p in ordered],
    }


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def build_compare(doc: Document, api: DashboardApi, args: Args) -> CompareView:
    """The Compare page for ``?ids=1,2,3``; call ``.load()`` or ``.start()``."""
    from bokeh_app.common.settings import DashboardSettings

    try:
        refresh_ms = DashboardSettings().compare_refresh_ms
    except Exception:  # unreadable settings must not cost the page: use the default period
        refresh_ms = REFRESH_MS
    return CompareView(doc, api, args, refresh_ms=refresh_ms)
