"""What the Compare view shows, computed from the master's answers (pure functions, no Bokeh).

Inputs are the JSON the REST API returns: ``RunPublic`` dicts (GET /runs, GET /runs/{id}) and
``ResultPublic`` dicts (GET /runs/{id}/result, None while a run has none).

Definitions:

- **Configuration**: everything in a run's spec that changes what is measured: benchmark,
  backend, goal, hyperparameter overrides, per-worker resources and executor. Left out: name,
  seed, group, image, max duration and the number of workers, which is the variable of the
  scaling plots.
- **Repeats**: ended runs of one configuration with the same number of workers (a ``group``
  of repeats is one such cell, and so are ungrouped runs with identical specs). Their
  time-to-goal is summarised like ``mlbench_core.summary`` (and GET /groups/{group}): the
  MLPerf olympic mean when at least 3 reached the goal, else the mean of those that did.
- **Speedup** of a configuration at ``n`` workers: ``T(base) / T(n)``, ``base`` being the
  smallest worker count of that configuration with a time (1 worker when there is one).
  **Scaling efficiency**: ``speedup / (n / base)``; the ideal is speedup ``n / base`` and
  efficiency 1. ``T`` is the time to goal. A configuration where no run reached a goal (a
  benchmark without one, or goals missed) falls back to training throughput instead:
  ``speedup = S(n) / S(base)`` with ``S`` the result's samples per second.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from mlbench_core.states import TERMINAL
from mlbench_core.summary import summarize_time_to_goal
from mlbench_core.wire import PHASES

Json = Mapping[str, Any]
XKind = Literal["step", "time", "epoch"]
X_KINDS: tuple[XKind, ...] = ("step", "time", "epoch")
X_LABELS: dict[str, str] = {
    "step": "step",
    "time": "wall time since start (s)",
    "epoch": "epoch",
}

# Status of a run in the time-to-goal chart.
REACHED = "reached"
MISSED = "missed"
NO_RESULT = "no result"

_CONFIG_FIELDS = ("benchmark", "backend", "goal", "overrides", "resources", "executor")
_DEFAULT_RESOURCES = {"cpu": 1.0, "memory": "2Gi", "gpu": 0}


# --------------------------------------------------------------------------------------------
# Runs


def workers_of(run: Json) -> int:
    return int((run.get("spec") or {}).get("workers") or 1)


def run_label(run: Json) -> str:
    """``#id name (benchmark, n workers)``: the label of a run in pickers and legends."""
    n = workers_of(run)
    noun = "worker" if n == 1 else "workers"
    return f"#{run['id']} {run['name']} ({run['benchmark']}, {n} {noun})"


def config_key(spec: Json) -> str:
    """A stable key of what a run measures, without the number of workers (see module doc)."""
    picked = {k: spec.get(k) for k in _CONFIG_FIELDS}
    picked["resources"] = {**_DEFAULT_RESOURCES, **(spec.get("resources") or {})}
    picked["goal"] = {"kind": "full", "value": None, **(spec.get("goal") or {})}
    picked["overrides"] = dict(sorted((spec.get("overrides") or {}).items()))
    picked["backend"] = spec.get("backend") or "gloo"
    return json.dumps(picked, sort_keys=True, default=str)


def config_label(spec: Json) -> str:
    """A short readable name of a configuration: the benchmark and what differs from defaults."""
    parts = [str(spec.get("benchmark", "?"))]
    backend = spec.get("backend") or "gloo"
    if backend != "gloo":
        parts.append(str(backend))
    goal = spec.get("goal") or {}
    kind = goal.get("kind", "full")
    if kind == "custom":
        parts.append(f"goal={goal.get('value')}")
    elif kind != "full":
        parts.append(f"goal={kind}")
    resources = {**_DEFAULT_RESOURCES, **(spec.get("resources") or {})}
    if resources["gpu"]:
        parts.append(f"gpu={resources['gpu']}")
    if float(resources["cpu"]) != 1.0:
        parts.append(f"cpu={resources['cpu']:g}")
    if resources["memory"] != "2Gi":
        parts.append(f"mem={resources['memory']}")
    if (spec.get("executor") or "local") != "local":
        parts.append(str(spec.get("executor")))
    parts.extend(f"{k}={v}" for k, v in sorted((spec.get("overrides") or {}).items()))
    return " ".join(parts)


@dataclass(frozen=True)
class RunInfo:
    """One run with what the charts need from its result."""

    id: int
    name: str
    label: str
    benchmark: str
    workers: int
    state: str
    ended: bool
    config: str
    config_label: str
    group: str | None
    has_result: bool
    goal_reached: bool
    time_to_goal_s: float | None
    """Only when the goal was reached."""
    total_time_s: float | None
    samples_per_s: float | None
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if not self.has_result:
            return NO_RESULT
        return REACHED if self.goal_reached and self.time_to_goal_s is not None else MISSED


def run_info(run: Json, result: Json | None) -> RunInfo:
    spec = run.get("spec") or {}
    reached = bool(result and result.get("goal_reached"))
    ttg = result.get("time_to_goal_s") if result and reached else None
    return RunInfo(
        id=int(run["id"]),
        name=str(run["name"]),
        label=run_label(run),
        benchmark=str(run["benchmark"]),
        workers=workers_of(run),
        state=str(run["state"]),
        ended=run["state"] in TERMINAL,
        config=config_key({**spec, "benchmark": run["benchmark"]}),
        config_label=config_label({**spec, "benchmark": run["benchmark"]}),
        group=run.get("group"),
        has_result=result is not None,
        goal_reached=reached,
        time_to_goal_s=None if ttg is None else float(ttg),
        total_time_s=None if result is None else float(result.get("total_time_s") or 0.0),
        samples_per_s=None if result is None else float(result.get("samples_per_s") or 0.0),
        phases={}
        if result is None
        else {p: float((result.get("phases") or {}).get(p) or 0.0) for p in PHASES},
    )


def run_infos(runs: Iterable[Json], results: Mapping[int, Json | None]) -> list[RunInfo]:
    return [run_info(run, results.get(int(run["id"]))) for run in runs]


# --------------------------------------------------------------------------------------------
# Time to goal


STATUS_COLORS = {REACHED: "#1f77b4", MISSED: "#c8c8c8", NO_RESULT: "#eeeeee"}
STATUS_HATCH = {REACHED: " ", MISSED: "/", NO_RESULT: " "}


def time_to_goal_columns(infos: Sequence[RunInfo]) -> dict[str, list[Any]]:
    """Columns of the time-to-goal bars, one bar per run in the given order.

    ``height`` is the time to goal of a run that reached it; a run that missed it gets its
    whole training time (``total_time_s``) drawn hatched and grey, labelled ``missed``; a run
    without a result yet has height 0 and ``no result``.
    """
    names = ("x", "id", "name", "workers", "height", "time_to_goal_s", "total_time_s")
    cols: dict[str, list[Any]] = {k: [] for k in (*names, "status", "color", "hatch", "text")}
    for info in infos:
        status = info.status
        if status == REACHED:
            height = info.time_to_goal_s
            text = f"{height:.3g} s"
        elif status == MISSED:
            height = info.total_time_s or 0.0
            text = "missed"
        else:
            height = 0.0
            text = info.state if not info.ended else "no result"
        cols["x"].append(info.label)
        cols["id"].append(info.id)
        cols["name"].append(info.name)
        cols["workers"].append(info.workers)
        cols["height"].append(float(height or 0.0))
        cols["time_to_goal_s"].append(_nan(info.time_to_goal_s))
        cols["total_time_s"].append(_nan(info.total_time_s))
        cols["status"].append(status)
        cols["color"].append(STATUS_COLORS[status])
        cols["hatch"].append(STATUS_HATCH[status])
        cols["text"].append(text)
    return cols


# --------------------------------------------------------------------------------------------
# Scaling


@dataclass(frozen=True)
class Cell:
    """The repeats of one configuration at one worker count."""

    config: str
    config_label: str
    workers: int
    run_ids: tuple[int, ...]
    ended: int
    reached: int
    time_s: float | None
    """Olympic mean of the times to goal (>= 3 reached), else their mean; None if none."""
    time_stat: str
    """How ``time_s`` was computed: ``olympic mean``, ``mean`` or ``single``, or ``""``."""
    std_s: float | None
    samples_per_s: float | None
    """Mean training throughput of the ended runs with a result."""
    phases: dict[str, float]
    """Mean seconds per phase over the runs with a result (empty when none has one)."""


def cells(infos: Iterable[RunInfo]) -> list[Cell]:
    """Repeats grouped per (configuration, workers), sorted by configuration then workers."""
    grouped: dict[tuple[str, int], list[RunInfo]] = defaultdict(list)
    for info in infos:
        grouped[(info.config, info.workers)].append(info)
    out = []
    for (config, workers), members in sorted(grouped.items(), key=lambda kv: kv[0]):
        ended = [m for m in members if m.ended]
        summary = summarize_time_to_goal([m.time_to_goal_s for m in ended])
        if summary.olympic_mean_s is not None:
            time_s, stat = summary.olympic_mean_s, "olympic mean"
        elif summary.mean_s is not None:
            time_s, stat = summary.mean_s, "mean" if summary.reached > 1 else "single"
        else:
            time_s, stat = None, ""
        with_result = [m for m in members if m.has_result]
        throughputs = [m.samples_per_s for m in with_result if m.ended and m.samples_per_s]
        phases = (
            {p: statistics.fmean(m.phases.get(p, 0.0) for m in with_result) for p in PHASES}
            if with_result
            else {}
        )
        out.append(
            Cell(
                config=config,
                config_label=members[0].config_label,
                workers=workers,
                run_ids=tuple(m.id for m in members),
                ended=len(ended),
                reached=summary.reached,
                time_s=time_s,
                time_stat=stat,
                std_s=summary.std_s,
                samples_per_s=statistics.fmean(throughputs) if throughputs else None,
                phases=phases,
            )
        )
    return out


@dataclass(frozen=True)
class ScalingPoint:
    config: str
    config_label: str
    workers: int
    base_workers: int
    basis: str
    """``time to goal`` or ``throughput``."""
    value: float
    """The time to goal (s) or the throughput (samples/s) the speedup was computed from."""
    speedup: float
    efficiency: float
    ideal_speedup: float
    runs: int


def scaling(all_cells: Sequence[Cell]) -> list[ScalingPoint]:
    """Speedup and scaling efficiency per configuration and worker count (see module doc).

    A configuration gets points only when at least one worker count has a time to goal
    (or, failing that, a throughput); its base is the smallest such worker count.
    """
    by_config: dict[str, list[Cell]] = defaultdict(list)
    for cell in all_cells:
        by_config[cell.config].append(cell)
    points: list[ScalingPoint] = []
    for config, members in by_config.items():
        members = sorted(members, key=lambda c: c.workers)
        by_time = any(c.time_s for c in members)
        measured = [
            (c, c.time_s if by_time else c.samples_per_s)
            for c in members
            if (c.time_s if by_time else c.samples_per_s)
        ]
        if not measured:
            continue
        base, base_value = measured[0]
        for cell, value in measured:
            assert value is not None and base_value is not None
            speedup = base_value / value if by_time else value / base_value
            ideal = cell.workers / base.workers
            points.append(
                ScalingPoint(
                    config=config,
                    config_label=cell.config_label,
                    workers=cell.workers,
                    base_workers=base.workers,
                    basis="time to goal" if by_time else "throughput",
                    value=value,
                    speedup=speedup,
                    efficiency=speedup / ideal,
                    ideal_speedup=ideal,
                    runs=len(cell.run_ids),
                )
            )
    return points


def scaling_columns(
    points: Sequence[ScalingPoint], config: str | None = None
) -> dict[str, list[Any]]:
    """Columns of one configuration's speedup/efficiency line (all configurations when
    ``config`` is None), sorted by configuration, then workers."""
    mine = sorted(
        (p for p in points if config is None or p.config == config),
        key=lambda p: (p.config_label, p.workers),
    )
    return {
        "workers": [p.workers for p in mine],
        "speedup": [p.speedup for p in mine],
        "efficiency": [p.efficiency for p in mine],
        "ideal": [p.ideal_speedup for p in mine],
        "value": [p.value for p in mine],
        "basis": [p.basis for p in mine],
        "base_workers": [p.base_workers for p in mine],
        "runs": [p.runs for p in mine],
        "config": [p.config_label for p in mine],
    }


def ideal_columns(points: Sequence[ScalingPoint]) -> dict[str, list[float]]:
    """The ideal line over the plotted range: speedup = n / base (drawn for base 1 and each
    other base in use), efficiency 1."""
    if not points:
        return {"workers": [], "speedup": [], "efficiency": []}
    lo = min(p.base_workers for p in points)
    hi = max(p.workers for p in points)
    hi = max(hi, lo + 1)
    return {
        "workers": [float(lo), float(hi)],
        "speedup": [1.0, hi / lo],
        "efficiency": [1.0, 1.0],
    }


# --------------------------------------------------------------------------------------------
# Phases


def phase_columns(all_cells: Sequence[Cell]) -> dict[str, list[Any]]:
    """Stacked phase seconds (mean over repeats) per configuration and worker count.

    ``x`` is ``"<n>w"`` when all cells share one configuration, else ``"<config> · <n>w"``.
    """
    shown = [c for c in all_cells if c.phases]
    one_config = len({c.config for c in shown}) <= 1
    cols: dict[str, list[Any]] = {"x": [], "workers": [], "config": [], "runs": []}
    for p in PHASES:
        cols[p] = []
    for cell in sorted(shown, key=lambda c: (c.config_label, c.workers)):
        cols["x"].append(
            f"{cell.workers}w" if one_config else f"{cell.config_label} · {cell.workers}w"
        )
        cols["workers"].append(cell.workers)
        cols["config"].append(cell.config_label)
        cols["runs"].append(len(cell.run_ids))
        for p in PHASES:
            cols[p].append(cell.phases.get(p, 0.0))
    return cols


# --------------------------------------------------------------------------------------------
# Curves


def parse_time(value: str | None) -> float | None:
    """An ISO timestamp of the API as Unix seconds."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def curve_columns(
    xs: Sequence[float],
    ys: Sequence[float],
    x_kind: str,
    t0: float | None = None,
) -> dict[str, list[float]]:
    """A series as plot columns; for ``time`` x becomes seconds since ``t0`` (the run's start,
    else its first point) so that runs started at different moments overlay."""
    x = [float(v) for v in xs]
    if x_kind == "time" and x:
        origin = t0 if t0 is not None else min(x)
        x = [v - origin for v in x]
    return {"x": x, "y": [float(v) for v in ys]}


def points_to_series(
    points: Iterable[Json], name: str, rank: int, x_kind: str
) -> tuple[list[float], list[float]]:
    """x and y of one (name, rank) series out of GET /metrics points, ordered by x."""
    pairs = sorted(
        (
            (float(p[x_kind]), float(p["value"]))
            for p in points
            if p["name"] == name and int(p["rank"]) == rank
        ),
        key=lambda xy: xy[0],  # stable: points of equal x keep the master's (id) order
    )
    return [x for x, _ in pairs], [y for _, y in pairs]


def thin(xs: Sequence[float], ys: Sequence[float], max_points: int) -> tuple[list, list]:
    """Keep at most about ``max_points`` points: per bucket its first, min, max and last (M4),
    as a last resort when the master returned more (e.g. several pages of the fallback read)."""
    n = len(xs)
    if n <= max_points or max_points < 4:
        return list(xs), list(ys)
    buckets = max(1, max_points // 4)
    size = math.ceil(n / buckets)
    keep: set[int] = set()
    for start in range(0, n, size):
        idx = range(start, min(n, start + size))
        keep.update((idx[0], idx[-1], min(idx, key=lambda i: ys[i]), max(idx, key=lambda i: ys[i])))
    order = sorted(keep)
    return [xs[i] for i in order], [ys[i] for i in order]


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)
