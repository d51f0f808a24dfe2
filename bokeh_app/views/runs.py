"""Runs view (``/runs``): every run in a table that refreshes itself, filters, stop and delete
with a confirmation step, and the new-run form (``runs_form.py``).

Progress is the run's newest stored metric point, which ``GET /runs`` lists with each run:
``epoch e / E`` when the benchmark trains for a planned number of epochs E (the ``epochs``
override, else the benchmark's default), ``step s / S`` when a ``max_steps`` override caps it,
``step s`` otherwise (e.g. the allreduce micro-benchmark).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bokeh.document import Document
from bokeh.layouts import column, row
from bokeh.models import (
    Button,
    ColumnDataSource,
    DataTable,
    Div,
    HTMLTemplateFormatter,
    Select,
    TableColumn,
)

from bokeh_app.common.api import ApiError, DashboardApi, MasterUnreachable
from bokeh_app.common.background import Background
from bokeh_app.common.layout import Banner, page, redraw_table
from bokeh_app.common.settings import DashboardSettings
from bokeh_app.views import Args
from bokeh_app.views.runs_form import NewRunForm
from mlbench_core.states import RunState

ALL = "all"
PAGE_SIZE = 200  # newest runs shown; older ones are a filter away
COLUMNS = (
    "id",
    "name",
    "benchmark",
    "executor",
    "workers",
    "state",
    "progress",
    "time_to_goal",
    "created",
)
TERMINAL = {s.value for s in RunState if s.terminal}


def planned_epochs(item: dict[str, Any], entries: dict[str, dict[str, Any]]) -> int | None:
    """Epochs the run trains at most: its ``epochs`` override, else the catalog default."""
    overrides = item["spec"].get("overrides") or {}
    if isinstance(overrides.get("epochs"), int | float):
        return int(overrides["epochs"])
    props = (entries.get(item["benchmark"], {}).get("settings") or {}).get("properties") or {}
    default = (props.get("epochs") or {}).get("default")
    return int(default) if isinstance(default, int | float) else None


def progress_text(item: dict[str, Any], entries: dict[str, dict[str, Any]]) -> str:
    point = item.get("progress")
    if not point:
        return ""
    max_steps = (item["spec"].get("overrides") or {}).get("max_steps")
    if isinstance(max_steps, int) and max_steps > 0:
        return f"step {point['step']} / {max_steps}"
    epochs = planned_epochs(item, entries)
    if epochs is not None:
        return f"epoch {point['epoch']:.2f} / {epochs}"
    return f"step {point['step']}"


def time_to_goal_text(item: dict[str, Any]) -> str:
    result = item.get("result")
    if not result:
        return ""
    if result["goal_reached"] and result.get("time_to_goal_s") is not None:
        return f"{result['time_to_goal_s']:.1f} s"
    return "not reached"


def table_rows(items: list[dict[str, Any]], entries: dict[str, dict[str, Any]]) -> dict[str, list]:
    """The table's columns for one page of ``GET /runs`` items."""
    rows: dict[str, list] = {name: [] for name in COLUMNS}
    for item in items:
        spec = item["spec"]
        rows["id"].append(item["id"])
        rows["name"].append(item["name"])
        rows["benchmark"].append(item["benchmark"])
        rows["executor"].append(spec.get("executor") or "")
        rows["workers"].append(spec.get("workers", 0))
        rows["state"].append(item["state"])
        rows["progress"].append(progress_text(item, entries))
        rows["time_to_goal"].append(time_to_goal_text(item))
        rows["created"].append(item["created_at"][:19].replace("T", " "))
    return rows


_WIDTHS = {"id": 50, "workers": 60, "state": 90, "created": 150}


def _column(name: str) -> TableColumn:
    column_ = TableColumn(field=name, title=name.replace("_", " "), width=_WIDTHS.get(name, 120))
    if name == "name":  # a link to the run's own view
        column_.formatter = HTMLTemplateFormatter(
            template='<a href="/run?id=<%= id %>"><%- value %></a>'
        )
    return column_


class RunsView:
    """See the module docstring. Before ``start()`` every call is synchronous (``load()``,
    button handlers), which is what tests use; after it, calls go through ``Background``."""

    def __init__(
        self, doc: Document, api: DashboardApi, args: Args, refresh_ms: int = 2000
    ) -> None:
        self.doc, self.api, self.refresh_ms = doc, api, refresh_ms
        self.banner = Banner(api.base_url)
        self.bg = Background(doc, self.banner)
        self.served = False
        self.entries: dict[str, dict[str, Any]] = {}
        self.items: dict[int, dict[str, Any]] = {}
        self.selected_id: int | None = None
        self.pending: tuple[str, int] | None = None  # (action, run id) awaiting confirmation
        self.state_filter_value = (args.get("state") or [ALL])[0]
        self.benchmark_filter_value = (args.get("benchmark") or [ALL])[0]

        self.state_filter = Select(
            title="state",
            value=self.state_filter_value,
            options=[ALL, *(s.value for s in RunState)],
            css_classes=["mlb-filter-state"],
        )
        self.benchmark_filter = Select(
            title="benchmark",
            value=self.benchmark_filter_value,
            options=sorted({ALL, self.benchmark_filter_value}, key=lambda v: v != ALL),
            css_classes=["mlb-filter-benchmark"],
        )
        self.state_filter.on_change("value", self._filter_changed)
        self.benchmark_filter.on_change("value", self._filter_changed)

        self.source = ColumnDataSource(data={name: [] for name in COLUMNS})
        self.source.selected.on_change("indices", self._selection_changed)
        self.table = DataTable(
            source=self.source,
            columns=[_column(name) for name in COLUMNS],
            index_position=None,
            selectable=True,
            height=320,
            sizing_mode="stretch_width",
            css_classes=["mlb-runs-table"],
        )

        self.stop_button = Button(label="Stop", disabled=True, css_classes=["mlb-stop"])
        self.delete_button = Button(label="Delete", disabled=True, css_classes=["mlb-delete"])
        # Messages quote run names and the master's words: shown as text, never as HTML.
        self.confirm_text = Div(
            text="", render_as_text=True, visible=False, css_classes=["mlb-confirm-text"]
        )
        self.confirm_button = Button(
            label="Confirm", button_type="danger", visible=False, css_classes=["mlb-confirm"]
        )
        self.cancel_button = Button(label="Cancel", visible=False, css_classes=["mlb-cancel"])
        self.message = Div(text="", render_as_text=True, css_classes=["mlb-runs-message"])
        self.stop_button.on_click(lambda: self._ask("stop"))
        self.delete_button.on_click(lambda: self._ask("delete"))
        self.confirm_button.on_click(self._confirmed)
        self.cancel_button.on_click(self._cancel)

        self.form = NewRunForm(api, self._call, self._created)
        body = column(
            row(self.state_filter, self.benchmark_filter),
            self.table,
            row(
                self.stop_button,
                self.delete_button,
                self.confirm_text,
                self.confirm_button,
                self.cancel_button,
            ),
            self.message,
            self.form.root,
            sizing_mode="stretch_width",
        )
        self.root = page("Runs", body, self.banner)

    # -- calls: synchronous until served ---------------------------------------------------

    def _call(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.bg.call(fn, on_done, on_error, served=self.served)

    def _fetch(self) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
        """Runs off the loop: reads only plain attributes, never Bokeh models."""
        state, benchmark = self.state_filter_value, self.benchmark_filter_value
        catalog = None if self.entries else self.api.benchmarks()
        runs = self.api.runs_page(
            state=[state] if state != ALL else None,
            limit=PAGE_SIZE,
            benchmark=benchmark if benchmark != ALL else None,
        )
        return runs, catalog

    def load(self) -> None:
        """Fetch and apply now (tests, and the first render before serving)."""
        self.bg.run_now(self._fetch, self._apply, self._fetch_failed)

    refresh = load

    def start(self) -> None:
        self.served = True
        self.bg.submit(self._fetch, self._apply, self._fetch_failed)
        self.bg.every(self.refresh_ms, self._fetch, self._apply, self._fetch_failed)

    def close(self) -> None:
        self.bg.close()

    def _refresh_soon(self) -> None:
        self._call(self._fetch, self._apply, self._fetch_failed)

    # -- applying data ---------------------------------------------------------------------

    def _fetch_failed(self, exc: Exception) -> None:
        if isinstance(exc, ApiError):  # e.g. reads need a token: say so instead of going blank
            self.message.text = f"cannot list runs: {exc}"

    def _apply(self, fetched: tuple[dict[str, Any], list[dict[str, Any]] | None]) -> None:
        runs, catalog = fetched
        if catalog is not None:
            self.entries = {e["id"]: e for e in catalog}
            self.form.set_benchmarks(catalog)
            self.benchmark_filter.options = [ALL, *self.entries]
        items = runs["items"]
        if self.benchmark_filter_value != ALL:  # a master without the benchmark filter
            items = [i for i in items if i["benchmark"] == self.benchmark_filter_value]
        self.items = {item["id"]: item for item in items}
        self._replace_rows(table_rows(items, self.entries))
        self._update_buttons()

    def _replace_rows(self, new: dict[str, list]) -> None:
        """Swap the data only when something changed, then select the same run again (a
        table of at most PAGE_SIZE short rows is cheap to send whole; patches would not redraw
        either, see ``redraw_table``)."""
        old = self.source.data
        if all(list(old[name]) == new[name] for name in COLUMNS):
            return  # nothing sent: the browser keeps scroll position, selection and focus
        keep = self.selected_id
        self.source.data = new
        redraw_table(self.table)
        indices = [new["id"].index(keep)] if keep in new["id"] else []
        if list(self.source.selected.indices) != indices:
            self.source.selected.indices = indices
        self.selected_id = keep if indices else None

    def _selection_changed(self, _attr: str, _old: list[int], new: list[int]) -> None:
        ids = self.source.data["id"]
        self.selected_id = ids[new[0]] if new and new[0] < len(ids) else None
        self._cancel()
        self._update_buttons()

    def _update_buttons(self) -> None:
        item = self.items.get(self.selected_id) if self.selected_id is not None else None
        ended = item is not None and item["state"] in TERMINAL
        self.stop_button.disabled = item is None or ended or item["state"] == "stopping"
        self.delete_button.disabled = item is None or not ended

    def _filter_changed(self, _attr: str, _old: str, _new: str) -> None:
        self.state_filter_value = self.state_filter.value
        self.benchmark_filter_value = self.benchmark_filter.value
        self._refresh_soon()

    # -- stop / delete ---------------------------------------------------------------------

    def _ask(self, action: str) -> None:
        if self.selected_id is None or self.selected_id not in self.items:
            self.message.text = "select a run first"
            return
        name = self.items[self.selected_id]["name"]
        self.pending = (action, self.selected_id)
        what = "with its metrics and result" if action == "delete" else "(its workers end)"
        question = f"{action.capitalize()} run {self.selected_id} '{name}' {what}?"
        self.confirm_text.text = question
        self.confirm_button.label = action.capitalize()
        for model in (self.confirm_text, self.confirm_button, self.cancel_button):
            model.visible = True

    def _cancel(self) -> None:
        self.pending = None
        for model in (self.confirm_text, self.confirm_button, self.cancel_button):
            model.visible = False

    def _confirmed(self) -> None:
        if self.pending is None:
            return
        action, run_id = self.pending
        self._cancel()
        call = self.api.stop if action == "stop" else self.api.delete
        verb = "stopping" if action == "stop" else "deleted"

        def done(_result: Any) -> None:
            self.message.text = f"run {run_id} {verb}"
            self._refresh_soon()

        def failed(exc: Exception) -> None:
            if isinstance(exc, ApiError):
                self.message.text = f"could not {action} run {run_id}: {exc.detail}"
            elif isinstance(exc, MasterUnreachable):
                self.message.text = f"could not {action} run {run_id}: {exc}"

        self._call(lambda: call(run_id), done, failed)

    def _created(self, run: dict[str, Any]) -> None:
        self.selected_id = run["id"]  # the next refresh lists and selects it
        self._refresh_soon()


def build_runs(doc: Document, api: DashboardApi, args: Args) -> RunsView:
    doc.title = "mlbench · runs"
    return RunsView(doc, api, args, DashboardSettings().runs_refresh_ms)
