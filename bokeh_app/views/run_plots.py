"""Run view, Bokeh side: the curve plots (WebGL, one shared x range), the goal line, the
stacked phase bar and the state timeline, and ``Curve``: one metric's source with its
downsampled overview, streamed points and zoomed-in detail."""

from __future__ import annotations

import bisect
import html
from dataclasses import dataclass, field

from bokeh.core.properties import value
from bokeh.models import (
    BasicTicker,
    BasicTickFormatter,
    ColumnDataSource,
    DataRange1d,
    DatetimeTicker,
    DatetimeTickFormatter,
    Div,
    FactorRange,
    HoverTool,
    Legend,
    LegendItem,
    Range1d,
    Span,
)
from bokeh.palettes import Category10_10
from bokeh.plotting import figure

from bokeh_app.views.run_data import TERMINAL
from mlbench_core.wire import PHASES

# A hard bound on a curve's source; the view reloads a downsampled overview long before.
ROLLOVER = 100_000
PLOT_TOOLS = "pan,xwheel_zoom,box_zoom,reset,save"
PHASE_COLORS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948")
STATE_COLORS = {
    "queued": "#9e9e9e",
    "starting": "#90caf9",
    "running": "#1e88e5",
    "stopping": "#ffb300",
    "succeeded": "#43a047",
    "failed": "#e53935",
    "stopped": "#6d4c41",
}
PLOT_TITLES = {
    "quality": "quality (validation)",
    "loss": "loss",
    "throughput": "throughput",
}


def to_plot(axis: str, x: float) -> float:
    """API x (Unix seconds for time) to plot x (Bokeh datetimes are ms since the epoch)."""
    return x * 1000.0 if axis == "time" else x


def from_plot(axis: str, x: float) -> float:
    return x / 1000.0 if axis == "time" else x


EMPTY_LINE = "empty-line"
"""Name of the hidden, empty renderer every curve plot starts with (not a curve)."""


@dataclass
class Curve:
    """One metric on one plot. ``overview`` is what the first read (downsampled) and the
    streamed points give; while zoomed, the source shows the overview outside the zoomed range
    and the full-resolution detail inside it."""

    name: str
    source: ColumnDataSource
    overview_x: list[float] = field(default_factory=list)
    overview_y: list[float] = field(default_factory=list)
    downsampled: bool = False
    streamed: int = 0
    zoomed: tuple[float, float] | None = None

    def set_series(self, x: list[float], y: list[float], downsampled: bool) -> None:
        self.overview_x, self.overview_y = list(x), list(y)
        self.downsampled = downsampled
        self.streamed = 0
        self.zoomed = None
        self.source.data = {"x": list(x), "y": list(y)}

    def stream(self, x: list[float], y: list[float]) -> int:
        """Append new points (only those after the last x: a mean step already shown is not
        repeated); returns how many were appended."""
        if self.overview_x:
            last = self.overview_x[-1]
            keep = [i for i, v in enumerate(x) if v > last]
            if len(keep) < len(x):
                x, y = [x[i] for i in keep], [y[i] for i in keep]
        if not x:
            return 0
        self.overview_x += x
        self.overview_y += y
        self.streamed += len(x)
        self.source.stream({"x": x, "y": y}, rollover=ROLLOVER)
        return len(x)

    def show_detail(self, x0: float, x1: float, x: list[float], y: list[float]) -> None:
        lo = bisect.bisect_left(self.overview_x, x0)
        hi = bisect.bisect_right(self.overview_x, x1)
        self.zoomed = (x0, x1)
        self.source.data = {
            "x": self.overview_x[:lo] + list(x) + self.overview_x[hi:],
            "y": self.overview_y[:lo] + list(y) + self.overview_y[hi:],
        }

    def reset_zoom(self) -> None:
        if self.zoomed is not None:
            self.zoomed = None
            self.source.data = {"x": list(self.overview_x), "y": list(self.overview_y)}

    def clear(self) -> None:
        self.set_series([], [], False)


class CurvePlots:
    """The quality, loss and throughput plots on one linked x range."""

    def __init__(self) -> None:
        self.x_range = DataRange1d(range_padding=0.02)
        self.plots = {
            group: figure(
                title=title,
                height=260,
                sizing_mode="stretch_width",
                x_range=self.x_range,
                tools=PLOT_TOOLS,
                active_scroll="xwheel_zoom",
                output_backend="webgl",
                css_classes=[f"mlb-{group}-plot"],
            )
            for group, title in PLOT_TITLES.items()
        }
        for plot in self.plots.values():
            # An empty, hidden renderer until the first curve: a plot without renderers makes
            # Bokeh's document validation warn in the server log (W-1000) for every session.
            # A segment, not a line: BokehJS copies the WebGL canvas into the plot's canvas
            # after every WebGL-capable renderer, hidden ones too, and that copy is a GPU
            # readback (tens of ms per paint and plot where WebGL runs in software).
            plot.segment(x0=[], y0=[], x1=[], y1=[], visible=False, name=EMPTY_LINE)
            plot.add_tools(HoverTool(tooltips=[("", "$name"), ("x", "@x{0,0.[000]}"), ("y", "@y")]))
        self.goal_span = Span(
            location=0,
            dimension="width",
            line_dash="dashed",
            line_color="#2e7d32",
            line_width=2,
            visible=False,
        )
        self.plots["quality"].add_layout(self.goal_span)
        self.curves: dict[str, Curve] = {}
        self._legends: dict[str, Legend] = {}
        self._colors = 0

    def curve(self, group: str, name: str) -> Curve:
        """The curve of ``name`` (created on the group's plot the first time)."""
        if name not in self.curves:
            source = ColumnDataSource(data={"x": [], "y": []}, name=name)
            color = Category10_10[self._colors % len(Category10_10)]
            self._colors += 1
            plot = self.plots[group]
            line = plot.line("x", "y", source=source, color=color, line_width=1.6, name=name)
            # The legend is kept at hand: ``legend_label=`` and ``plot.legend`` would each
            # search the whole plot's model graph for it.
            legend = self._legends.get(group)
            if legend is None:
                location = "top_left" if group != "loss" else "top_right"
                legend = self._legends[group] = Legend(location=location, click_policy="hide")
                plot.add_layout(legend)
            legend.items.append(LegendItem(label=value(name), renderers=[line]))
            self.curves[name] = Curve(name, source)
        return self.curves[name]

    def set_goal(self, value: float | None) -> None:
        self.goal_span.visible = value is not None
        if value is not None:
            self.goal_span.location = value

    def set_axis(self, axis: str) -> None:
        for plot in self.plots.values():
            xaxis = plot.xaxis[0]
            if axis == "time":
                xaxis.ticker, xaxis.formatter = DatetimeTicker(), DatetimeTickFormatter()
            else:
                xaxis.ticker, xaxis.formatter = BasicTicker(), BasicTickFormatter()
            xaxis.axis_label = {"step": "step", "time": "wall time", "epoch": "epoch"}[axis]


class PhaseBar:
    """Seconds per phase of a training step, summed over the run, as one stacked bar."""

    def __init__(self) -> None:
        self.source = ColumnDataSource(data={"label": ["rank 0"], **{p: [0.0] for p in PHASES}})
        self.plot = figure(
            title="time per phase (s, rank 0)",
            y_range=FactorRange(factors=["rank 0"]),
            x_range=Range1d(0, 1),
            height=150,
            sizing_mode="stretch_width",
            tools="save",
            toolbar_location=None,
            css_classes=["mlb-phase-bar"],
        )
        bars = self.plot.hbar_stack(
            list(PHASES),
            y="label",
            height=0.6,
            color=list(PHASE_COLORS),
            source=self.source,
            name=list(PHASES),
        )
        # One legend built at once (``legend_label=`` would search the plot for it per bar).
        items = [
            LegendItem(label=value(phase), renderers=[bar])
            for phase, bar in zip(PHASES, bars, strict=True)
        ]
        legend = Legend(items=items, orientation="horizontal", location="top_left")
        self.plot.add_layout(legend)
        self.plot.add_tools(HoverTool(tooltips=[("phase", "$name"), ("seconds", "@$name{0.000}")]))
        self.note = Div(text="", css_classes=["mlb-phase-note"])

    def set(self, values: dict[str, float], source_label: str) -> None:
        new = {"label": ["rank 0"], **{p: [values.get(p, 0.0)] for p in PHASES}}
        if dict(self.source.data) != new:
            self.source.data = new
            total = sum(values.values())
            self.plot.x_range.end = total * 1.05 if total > 0 else 1
        self.note.text = html.escape(source_label)


class Timeline:
    """The states the run went through, one bar each over time; recent events as a list
    (transitions and their reasons: the master keeps no worker log to show)."""

    def __init__(self) -> None:
        states = list(STATE_COLORS)
        self.source = ColumnDataSource(
            data={"state": [], "start": [], "end": [], "reason": [], "color": []}
        )
        self.plot = figure(
            title="state timeline",
            x_axis_type="datetime",
            y_range=FactorRange(factors=states[::-1]),
            height=200,
            sizing_mode="stretch_width",
            tools="pan,xwheel_zoom,reset",
            css_classes=["mlb-timeline"],
        )
        self.plot.hbar(
            y="state", left="start", right="end", height=0.6, color="color", source=self.source
        )
        self.plot.add_tools(HoverTool(tooltips=[("state", "@state"), ("reason", "@reason")]))
        self.events = Div(text="", css_classes=["mlb-events"], sizing_mode="stretch_width")

    def set(self, rows: dict[str, list], events: list[tuple[str, str, str]]) -> None:
        rows = {**rows, "color": [STATE_COLORS.get(s, "#000") for s in rows["state"]]}
        # A terminal state is a point in time: give its bar a visible width.
        for i, state in enumerate(rows["state"]):
            if state in TERMINAL and rows["end"][i] <= rows["start"][i]:
                rows["end"][i] = rows["start"][i] + 1000
        if dict(self.source.data) != rows:
            self.source.data = rows
        items = "".join(
            f"<tr><td>{html.escape(at)}</td><td>{html.escape(what)}</td>"
            f"<td>{html.escape(reason)}</td></tr>"
            for at, what, reason in events
        )
        self.events.text = (
            "<b>recent events</b> (state changes; worker logs stay on the executor's host)"
            f"<table style='font-size:90%'>{items}</table>"
        )
