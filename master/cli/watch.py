"""Follow a run live (progress bar) and print its result table."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from master.cli.client import Client
from mlbench_core.states import RunState
from mlbench_core.wire import PHASES


class Follower:
    """Incremental reader of one metric: each poll fetches only points after the cursor."""

    def __init__(self, client: Client, run_id: int, name: str) -> None:
        self.client, self.run_id, self.name = client, run_id, name
        self.cursor = 0
        self.latest: float | None = None

    def poll(self, limit: int = 5000) -> float | None:
        while True:
            page = self.client.metrics(
                self.run_id, name=self.name, rank=0, cursor=self.cursor, limit=limit
            )
            if page["points"]:
                self.latest = page["points"][-1]["value"]
                self.cursor = page["next_cursor"]
            if len(page["points"]) < limit:
                return self.latest


def _describe(
    run: dict[str, Any], goal_metric: str | None, value: float | None, target: float | None
) -> str:
    text = f"run {run['id']} [bold]{run['state']}[/]"
    if goal_metric and value is not None:
        text += f"  {goal_metric}={value:.4g}"
        if target is not None:
            text += f" (goal {target:g})"
    return text


def follow(
    client: Client,
    run_id: int,
    console: Console,
    *,
    goal_metric: str | None,
    target: float | None,
    poll_s: float = 0.5,
) -> dict[str, Any]:
    """Show a live progress bar until the run is terminal; returns the final run."""
    progress_f = Follower(client, run_id, "progress")
    goal_f = Follower(client, run_id, goal_metric) if goal_metric else None
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"run {run_id} queued", total=1.0)
        while True:
            run = client.run(run_id)
            fraction = progress_f.poll()
            value = goal_f.poll() if goal_f else None
            if run["state"] == RunState.succeeded:
                fraction = 1.0
            bar.update(
                task,
                completed=fraction or 0.0,
                description=_describe(run, goal_metric, value, target),
            )
            if RunState(run["state"]).terminal:
                return run
            time.sleep(poll_s)


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def _direction(benchmark: str) -> str:
    from mlbench_core.tasks import get_task

    try:
        goal = get_task(benchmark).goal
    except ValueError:  # a benchmark this installation does not ship
        return "→"
    return "≥" if goal is None or goal.higher_is_better else "≤"


def result_table(run: dict[str, Any], result: dict[str, Any] | None) -> Table:
    table = Table(title=f"run {run['id']} · {run['name']} · {run['benchmark']}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    table.add_row("state", run["state"] + (f" ({run['reason']})" if run.get("reason") else ""))
    if result is None:
        table.add_row("result", "none reported")
        return table
    metric = result.get("goal_metric")
    goal = "—"
    if metric and result.get("goal_value") is not None:
        goal = f"{metric} {_direction(run['benchmark'])} {result['goal_value']:g}"
    table.add_row("goal", goal)
    table.add_row("goal reached", "[green]yes[/]" if result["goal_reached"] else "[red]no[/]")
    table.add_row("time to goal", _seconds(result.get("time_to_goal_s")))
    final = result.get("final_value")
    table.add_row("final quality", "—" if final is None else f"{final:.4g}")
    table.add_row("samples/s", f"{result['samples_per_s']:.1f}")
    table.add_row("total time", _seconds(result["total_time_s"]))
    table.add_row("steps · epochs", f"{result['steps']} · {result['epochs']:g}")
    phases = result["phases"]
    spent = sum(phases[p] for p in PHASES) or 1.0
    for phase in PHASES:
        table.add_row(
            f"  {phase}", f"{phases[phase]:.3f} s  ({100 * phases[phase] / spent:4.1f} %)"
        )
    for key, value in sorted(result.get("extra", {}).items()):
        table.add_row(f"  {key}", f"{value:.4g}" if isinstance(value, float) else str(value))
    return table


def group_table(summary: dict[str, Any]) -> Table:
    """The runs of a group side by side, then their time-to-goal summary."""
    table = Table(title=f"group {summary['group']}")
    for column in ("run", "seed", "state", "goal reached", "time to goal", "final", "samples/s"):
        table.add_column(column, justify="right")
    for run in summary["runs"]:
        reached = run["goal_reached"]
        final, rate = run["final_value"], run["samples_per_s"]
        table.add_row(
            str(run["id"]), str(run["seed"]), run["state"],
            "—" if reached is None else ("yes" if reached else "no"),
            _seconds(run["time_to_goal_s"] if reached else None),
            "—" if final is None else f"{final:.4g}",
            "—" if rate is None else f"{rate:.1f}",
        )  # fmt: skip
    ttg = summary["time_to_goal"]
    spread = "" if ttg["std_s"] is None else f" ± {ttg['std_s']:.2f} s"
    mean = "—" if ttg["mean_s"] is None else f"{ttg['mean_s']:.2f} s{spread}"
    table.caption = (
        f"time to goal: {ttg['reached']} of {ttg['runs']} runs reached it · "
        f"olympic mean (MLPerf: drop fastest and slowest) {_seconds(ttg['olympic_mean_s'])} · "
        f"mean {mean}"
    )
    return table
