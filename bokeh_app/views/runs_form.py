"""The Runs view's new-run form: builds a ``RunSpec``, validates it here, then submits it.

Validation runs locally first with the very model the master uses (``mlbench_core.spec``), so
most mistakes (bad override key, workers out of range, a name that is not a DNS label) show up
without a round trip; what only the master knows (a live run with that name, an executor it
lacks) comes back as the API's 4xx detail, shown in the same place.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bokeh.layouts import column, row
from bokeh.models import Button, Div, LayoutDOM, NumericInput, Select, TextInput
from pydantic import ValidationError

from bokeh_app.common.api import ApiError, DashboardApi, MasterUnreachable
from mlbench_core.spec import RunSpec, Scalar, parse_override

# (fn, on_done, on_error): the view runs it synchronously (tests) or in the pool (served).
Caller = Callable[[Callable[[], Any], Callable[[Any], None], Callable[[Exception], None]], None]

EXECUTOR_DEFAULT = "default"


class FormError(ValueError):
    """Input the form refuses before anything is sent; ``str()`` is shown as it is."""


def split_overrides(text: str) -> list[str]:
    """``"lr=0.1, aggregator=powersgd, aggregator_settings={"rank": 2, "x": 1}"`` → 3 items:
    commas inside braces, brackets or quotes do not separate."""
    items, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            items.append("".join(current))
            current = []
            continue
        current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def parse_overrides(text: str) -> dict[str, Scalar]:
    pairs: dict[str, Scalar] = {}
    for item in split_overrides(text):
        key, value = parse_override(item)  # ValueError names the bad item
        pairs[key] = value
    return pairs


def validation_message(exc: ValidationError) -> str:
    """Every problem as ``field: message``, the way the CLI words its first one."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def settings_help(entry: dict[str, Any]) -> str:
    """HTML: the benchmark's goal and every setting with its default, for writing overrides."""
    goal = entry.get("goal")
    head = f"<b>{html.escape(entry['id'])}</b>: {html.escape(entry.get('title', ''))}"
    if goal:
        head += (
            f" · goal {html.escape(goal['metric'])} {goal['full']:g} (full) /"
            f" {goal['light']:g} (light)"
        )
    rows = []
    for name, prop in (entry.get("settings", {}).get("properties") or {}).items():
        default = json.dumps(prop.get("default")) if "default" in prop else "—"
        rows.append(
            f"<tr><td><code>{html.escape(name)}</code></td><td>{html.escape(default)}</td>"
            f"<td>{html.escape(prop.get('description', ''))}</td></tr>"
        )
    table = (
        "<table style='font-size:12px'><tr><th>setting</th><th>default</th><th></th></tr>"
        + "".join(rows)
        + "</table>"
    )
    hint = "Overrides: <code>key=value, key=value</code>"
    if "aggregator" in (entry.get("settings", {}).get("properties") or {}):
        hint += (
            "; the optimizer is the <code>aggregator</code> setting "
            "(e.g. <code>aggregator=powersgd</code>)"
        )
    return (
        f"{head}<br><span style='font-size:12px'>{hint}.</span>"
        f"<details><summary>settings and defaults</summary>{table}</details>"
    )


class NewRunForm:
    """Widgets with stable ``mlb-new-*`` classes (the E2E tests drive them)."""

    def __init__(
        self, api: DashboardApi, call: Caller, on_created: Callable[[dict[str, Any]], None]
    ) -> None:
        self.api = api
        self.call = call
        self.on_created = on_created
        self.entries: dict[str, dict[str, Any]] = {}

        def css(name: str) -> list[str]:
            return [f"mlb-new-{name}"]

        self.benchmark = Select(title="benchmark", options=[], css_classes=css("benchmark"))
        self.workers = NumericInput(
            title="workers", value=2, mode="int", low=1, high=256, css_classes=css("workers")
        )
        self.backend = Select(
            title="backend", value="gloo", options=["gloo", "nccl"], css_classes=css("backend")
        )
        self.cpu = NumericInput(
            title="cpu / worker", value=1.0, mode="float", low=0.1, css_classes=css("cpu")
        )
        self.memory = TextInput(title="memory / worker", value="2Gi", css_classes=css("memory"))
        self.gpu = NumericInput(
            title="gpu / worker", value=0, mode="int", low=0, high=16, css_classes=css("gpu")
        )
        self.goal = Select(
            title="goal", value="full", options=["full", "light"], css_classes=css("goal")
        )
        self.seed = NumericInput(title="seed", value=0, mode="int", low=0, css_classes=css("seed"))
        self.executor = Select(
            title="executor",
            value=EXECUTOR_DEFAULT,
            options=[(EXECUTOR_DEFAULT, "master's default"), ("local", "local"), ("argo", "argo")],
            css_classes=css("executor"),
        )
        self.name = TextInput(
            title="name (optional)", placeholder="<benchmark>-<time>", css_classes=css("name")
        )
        self.overrides = TextInput(
            title="overrides (key=value, key=value)",
            placeholder="lr=0.2, aggregator=ddp",
            css_classes=css("overrides"),
            sizing_mode="stretch_width",
        )
        self.submit_button = Button(
            label="Start run", button_type="primary", css_classes=css("submit")
        )
        # Messages quote user input and the master's words: shown as text, never as HTML.
        self.error = Div(
            text="", render_as_text=True, css_classes=css("error"), styles={"color": "#b71c1c"}
        )
        self.status = Div(text="", render_as_text=True, css_classes=css("status"))
        self.help = Div(text="", css_classes=css("help"), sizing_mode="stretch_width")

        self.benchmark.on_change("value", lambda _a, _o, _n: self._show_help())
        self.submit_button.on_click(self.submit)
        self.root: LayoutDOM = column(
            Div(text="<h3 style='margin:8px 0 0 0'>New run</h3>"),
            row(self.benchmark, self.workers, self.backend, self.goal, self.executor),
            row(self.cpu, self.memory, self.gpu, self.seed, self.name),
            self.overrides,
            self.help,
            row(self.submit_button, self.status),
            self.error,
            sizing_mode="stretch_width",
        )

    # -- catalog ---------------------------------------------------------------------------

    def set_benchmarks(self, entries: list[dict[str, Any]]) -> None:
        self.entries = {e["id"]: e for e in entries}
        self.benchmark.options = [(e["id"], f"{e['id']} — {e.get('title', '')}") for e in entries]
        if self.benchmark.value not in self.entries and entries:
            first = "digits-mlp" if "digits-mlp" in self.entries else entries[0]["id"]
            self.benchmark.value = first
        self._show_help()

    def _show_help(self) -> None:
        entry = self.entries.get(self.benchmark.value)
        self.help.text = settings_help(entry) if entry else ""

    # -- submit ----------------------------------------------------------------------------

    def build_spec(self, now: datetime | None = None) -> RunSpec:
        """The spec the inputs describe; ``FormError`` says what is wrong with them."""
        benchmark = self.benchmark.value
        if not benchmark:
            raise FormError("benchmark: pick one (the catalog has not loaded yet?)")
        for label, widget in (("workers", self.workers), ("cpu", self.cpu), ("gpu", self.gpu)):
            if widget.value is None:
                raise FormError(f"{label}: a number is required")
        try:
            overrides = parse_overrides(self.overrides.value or "")
        except ValueError as exc:
            raise FormError(f"overrides: {exc}") from None
        stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
        name = (self.name.value or "").strip() or f"{benchmark[:22]}-{stamp}"
        executor = None if self.executor.value == EXECUTOR_DEFAULT else self.executor.value
        try:
            return RunSpec(
                name=name,
                benchmark=benchmark,
                workers=self.workers.value,
                backend=self.backend.value,
                resources={
                    "cpu": self.cpu.value,
                    "memory": (self.memory.value or "").strip(),
                    "gpu": self.gpu.value,
                },
                goal={"kind": self.goal.value},
                overrides=overrides,
                seed=self.seed.value if self.seed.value is not None else 0,
                executor=executor,
            )
        except ValidationError as exc:
            raise FormError(validation_message(exc)) from None
        except ValueError as exc:
            raise FormError(str(exc)) from None

    def submit(self, _event: object = None) -> None:
        self.status.text = ""
        try:
            spec = self.build_spec()
        except FormError as exc:
            self.error.text = str(exc)
            return
        self.error.text = ""
        self.submit_button.disabled = True  # one submission at a time
        body = spec.model_dump(mode="json")
        self.call(lambda: self.api.create_run(body), self._created, self._failed)

    def _created(self, run: dict[str, Any]) -> None:
        self.submit_button.disabled = False
        self.error.text = ""
        self.status.text = f"run {run['id']} '{run['name']}' submitted: {run['state']}"
        self.name.value = ""  # the next submission gets a fresh default name
        self.on_created(run)

    def _failed(self, exc: Exception) -> None:
        self.submit_button.disabled = False
        if isinstance(exc, ApiError):
            refused = f"the master refused the run ({exc.status}): {exc.detail}"
            self.error.text = refused
        elif isinstance(exc, MasterUnreachable):
            self.error.text = f"not submitted: {exc}"
        else:
            self.error.text = f"not submitted: {type(exc).__name__}: {exc}"
