"""Run view, data side: which metrics go on which plot, the goal, texts of the header and
result, and folding streamed points into curves. No Bokeh models here, no HTTP."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlbench_core.wire import PHASES

MEAN = "mean"  # rank mode: mean over the ranks at each step
AXES = ("step", "time", "epoch")
PHASE_PREFIX = "phase/"  # live phase totals, if a task logs them (``phase/forward`` ...)
TERMINAL = {"succeeded", "failed", "stopped"}


@dataclass(frozen=True)
class Goal:
    metric: str | None
    value: float | None
    higher_is_better: bool = True


def goal_of(run: dict[str, Any], entry: dict[str, Any] | None, result: dict | None) -> Goal:
    """The run's quality target: the result's when it has one, else the spec's goal kind
    (full/light: the benchmark's value, custom: the spec's value) on the catalog's metric."""
    catalog = (entry or {}).get("goal") or {}
    metric = (result or {}).get("goal_metric") or catalog.get("metric")
    higher = bool(catalog.get("higher_is_better", True))
    if result and result.get("goal_value") is not None:
        return Goal(metric, float(result["goal_value"]), higher)
    goal = run.get("spec", {}).get("goal") or {"kind": "full"}
    kind = goal.get("kind", "full")
    value = goal.get("value") if kind == "custom" else catalog.get(kind)
    return Goal(metric, None if value is None else float(value), higher)


def group_names(names: Iterable[str], goal: Goal) -> dict[str, list[str]]:
    """Metric names per plot: quality (the goal metric, else validation metrics other than
    losses), loss (``*loss``), throughput (``*_per_s``, ``*_gbps``)."""
    groups: dict[str, list[str]] = {"quality": [], "loss": [], "throughput": []}
    for name in sorted(names):
        if name.startswith(PHASE_PREFIX) or name == "progress":
            continue
        if name.endswith("loss"):
            groups["loss"].append(name)
        elif name.endswith(("_per_s", "_gbps")):
            groups["throughput"].append(name)
        elif name == goal.metric or (goal.metric is None and name.startswith("val/")):
            groups["quality"].append(name)
    return groups


def main_curve(groups: dict[str, list[str]]) -> str | None:
    """The curve whose length the view shows as ``points: N``: the training loss (logged
    most often), else the first curve."""
    if "train/loss" in groups["loss"]:
        return "train/loss"
    for names in groups.values():
        if names:
            return names[0]
    return None


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "—"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def durations(run: dict[str, Any], now: datetime | None = None) -> dict[str, float | None]:
    """Seconds queued (created → started), running (started → finished or now) and in all."""
    now = now or datetime.now(UTC)
    created, started = _ts(run.get("created_at")), _ts(run.get("started_at"))
    finished = _ts(run.get("finished_at"))
    end = finished or now
    return {
        "queued": ((started or end) - created).total_seconds() if created else None,
        "running": (end - started).total_seconds() if started else None,
        "total": (end - created).total_seconds() if created else None,
    }


def header_html(run: dict[str, Any], goal: Goal) -> str:
    spec = run.get("spec", {})
    resources = spec.get("resources") or {}
    overrides = spec.get("overrides") or {}
    took = durations(run)
    goal_text = "none" if goal.value is None else f"{goal.metric} {_arrow(goal)} {goal.value:g}"
    facts = [
        ("name", run["name"]),
        ("benchmark", run["benchmark"]),
        ("workers", spec.get("workers", "")),
        ("backend", spec.get("backend", "")),
        ("executor", spec.get("executor") or ""),
        ("resources", ", ".join(f"{k} {v}" for k, v in resources.items() if v)),
        ("goal", f"{(spec.get('goal') or {}).get('kind', 'full')}: {goal_text}"),
        ("overrides", ", ".join(f"{k}={v}" for k, v in overrides.items()) or "none"),
        ("seed", spec.get("seed", "")),
        ("created", (run.get("created_at") or "")[:19].replace("T", " ")),
        ("queued", duration(took["queued"])),
        ("running", duration(took["running"])),
    ]
    if run.get("reason"):
        facts.append(("reason", run["reason"]))
    cells = "".join(
        f"<span style='margin-right:14px'><b>{html.escape(k)}:</b> {html.escape(str(v))}</span>"
        for k, v in facts
    )
    return f"<div>{cells}</div>"


def _arrow(goal: Goal) -> str:
    return "≥" if goal.higher_is_better else "≤"


def result_html(result: dict[str, Any] | None, state: str) -> str:
    """Empty while there is no result; otherwise starts with ``goal reached`` or ``goal not
    reached`` and lists the figures."""
    if not result:
        return "" if state in TERMINAL else "<i>no result yet</i>"
    reached = bool(result.get("goal_reached"))
    verdict = "goal reached" if reached else "goal not reached"
    figures = [verdict]
    if reached and result.get("time_to_goal_s") is not None:
        figures.append(f"time to goal {duration(result['time_to_goal_s'])}")
    if result.get("final_value") is not None:
        figures.append(f"final {result.get('goal_metric') or 'value'} {result['final_value']:.4g}")
    if result.get("best_value") is not None:
        figures.append(f"best {result['best_value']:.4g}")
    figures.append(f"{result.get('samples_per_s', 0):.1f} samples/s")
    figures.append(f"{result.get('steps', 0)} steps, {result.get('epochs', 0):.2f} epochs")
    figures.append(f"total {duration(result.get('total_time_s'))}")
    color = "#2e7d32" if reached else "#c62828"
    return f"<b style='color:{color}'>{html.escape(figures[0])}</b> · " + html.escape(
        " · ".join(figures[1:])
    )


def phase_values(result: dict[str, Any] | None, live: dict[str, float]) -> dict[str, float]:
    """Seconds per phase: the result's totals, else the newest ``phase/<name>`` metrics."""
    if result and result.get("phases"):
        return {p: float(result["phases"].get(p, 0.0)) for p in PHASES}
    return {p: float(live.get(p, 0.0)) for p in PHASES}


def events(run: dict[str, Any], limit: int = 12) -> list[tuple[str, str, str]]:
    """(time, transition, reason) of the newest transitions, newest first."""
    out = []
    for t in reversed(run.get("transitions") or []):
        at = (t.get("at") or "")[:19].replace("T", " ")
        out.append((at, f"{t.get('from_state') or '—'} → {t['to_state']}", t.get("reason", "")))
    return out[:limit]


def timeline_rows(run: dict[str, Any], now: datetime | None = None) -> dict[str, list]:
    """One bar per state the run was in: from its transition to the next (or now)."""
    now = now or datetime.now(UTC)
    transitions = run.get("transitions") or []
    rows: dict[str, list] = {"state": [], "start": [], "end": [], "reason": []}
    for i, t in enumerate(transitions):
        start = _ts(t["at"])
        if start is None:
            continue
        nxt = transitions[i + 1]["at"] if i + 1 < len(transitions) else None
        terminal = t["to_state"] in TERMINAL
        end = _ts(nxt) if nxt else (start if terminal else now)
        rows["state"].append(t["to_state"])
        rows["start"].append(start.timestamp() * 1000)  # Bokeh datetimes: ms since epoch
        rows["end"].append(max(end, start).timestamp() * 1000)  # type: ignore[type-var]
        rows["reason"].append(t.get("reason", ""))
    return rows


@dataclass
class MeanFolder:
    """Folds streamed points of several ranks into the mean per step: a step is emitted once
    every rank has reported it (or a later step is complete, for a rank that skipped it)."""

    ranks: set[int]
    pending: dict[int, dict[int, tuple[float, float]]] = field(default_factory=dict)

    def add(self, points: Iterable[dict[str, Any]], axis: str) -> tuple[list[float], list[float]]:
        for p in points:
            self.pending.setdefault(p["step"], {})[p["rank"]] = (float(p[axis]), p["value"])
        complete = [s for s, got in self.pending.items() if self.ranks <= set(got)]
        if not complete:
            return [], []
        upto = max(complete)
        xs: list[float] = []
        ys: list[float] = []
        for step in sorted(s for s in self.pending if s <= upto):
            got = self.pending.pop(step)
            xs.append(step if axis == "step" else math.fsum(v[0] for v in got.values()) / len(got))
            ys.append(math.fsum(v[1] for v in got.values()) / len(got))
        return xs, ys
