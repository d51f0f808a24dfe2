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
from collections.abc import Callable, Mapping, Sequence
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
from bokeh_app.views.compare_fetch import MAX_POINTS, CompareReader, Snapshot
from mlbench_core.wire import PHASES

REFRESH_MS = 5000
PHASE_COLORS = dict(zip(PHASES, Category10[10], strict=False))
PALETTE: tuple[str, ...] = tuple(Category10[10]) + tuple(Category20[20][1::2])


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
    """All configurations' points (as ``cd.scaling_columns`` orders them) with a colour each."""
    ordered = sorted(points, key=lambda p: (p.config_label, p.workers))
    colors = colors or {}
    return {
        **cd.scaling_columns(ordered),
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
