"""Run view, fetching: everything the view reads from the master, as plain data. These run in
``Background``'s worker threads, so they take their inputs as arguments and touch no Bokeh
model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bokeh_app.common.api import DashboardApi
from bokeh_app.views.run_data import PHASE_PREFIX, Goal, goal_of, group_names

PAGE_LIMIT = 10_000  # points per cursor read
MAX_PAGES = 5  # more new points than PAGE_LIMIT * MAX_PAGES: reload downsampled instead


@dataclass
class Snapshot:
    """A full load: the run and every curve, all as of point id ``cursor``."""

    generation: int
    run: dict[str, Any]
    entry: dict[str, Any] | None
    result: dict[str, Any] | None
    ranks: list[int]
    names: dict[str, tuple[int, ...]]
    goal: Goal
    groups: dict[str, list[str]]
    series: dict[str, dict[str, Any]]
    live_phases: dict[str, float]
    cursor: int


@dataclass
class Update:
    """What changed since ``cursor_from``: the run, maybe its result, the new points."""

    generation: int
    cursor_from: int
    cursor: int
    run: dict[str, Any]
    result: dict[str, Any] | None
    points: list[dict[str, Any]]


@dataclass
class RunReader:
    api: DashboardApi
    run_id: int
    max_points: int

    def snapshot(
        self, generation: int, axis: str, rank: int | None, entry: dict[str, Any] | None
    ) -> Snapshot:
        """The run, its benchmark's catalog entry (``entry`` if it is the right one), result,
        metric names and one downsampled series per curve, read as of one point id."""
        api, run_id = self.api, self.run_id
        run = api.run(run_id)
        if entry is None or entry.get("id") != run["benchmark"]:
            entry = next((e for e in api.benchmarks() if e["id"] == run["benchmark"]), None)
        result = api.result(run_id)
        names = {n["name"]: tuple(n["ranks"]) for n in api.metric_names(run_id)}
        goal = goal_of(run, entry, result)
        groups = group_names(names, goal)
        series: dict[str, dict[str, Any]] = {}
        extra: dict[str, Any] = {} if rank is None else {"rank": rank}
        last: int | None = None
        for name in [n for group in groups.values() for n in group]:
            body = api.series(run_id, name=name, x=axis, max_points=self.max_points, **extra)
            if last is None:  # the others as of the same point: one cursor for all
                last = extra["until_id"] = body["last_id"]
            series[name] = body
        live: dict[str, float] = {}
        for name in names:
            if name.startswith(PHASE_PREFIX):
                body = api.series(run_id, name=name, max_points=4, rank=0)
                if body["y"]:
                    live[name.removeprefix(PHASE_PREFIX)] = body["y"][-1]
        ranks = sorted({r for rs in names.values() for r in rs})
        return Snapshot(
            generation,
            run,
            entry,
            result,
            ranks,
            names,
            goal,
            groups,
            series,
            live,
            cursor=last if last is not None else 0,
        )

    def update(
        self,
        generation: int,
        cursor: int,
        names: dict[str, tuple[int, ...]],
        plotted: list[str],
        rank: int | None,
        result: dict[str, Any] | None,
    ) -> Update | None:
        """The run and the points of ``plotted`` stored after ``cursor``; None when a full
        load is due instead (a new metric or rank, or very many new points)."""
        api, run_id = self.api, self.run_id
        run = api.run(run_id)
        if result is None:
            result = api.result(run_id)
        if {n["name"]: tuple(n["ranks"]) for n in api.metric_names(run_id)} != names:
            return None
        points: list[dict[str, Any]] = []
        position = cursor
        if plotted:
            params: dict[str, Any] = {"name": plotted, "limit": PAGE_LIMIT}
            if rank is not None:
                params["rank"] = [rank]
            for _ in range(MAX_PAGES):
                page = api.metrics(run_id, cursor=position, **params)
                points += page["points"]
                position = page["next_cursor"]
                if not page["has_more"]:
                    break
            else:  # far behind (e.g. the master was away): a downsampled read is cheaper
                return None
        return Update(generation, cursor, position, run, result, points)

    def zoomed(
        self,
        names: list[str],
        axis: str,
        rank: int | None,
        x_min: float,
        x_max: float,
        until_id: int,
    ) -> dict[str, dict[str, Any]]:
        """``names`` in [x_min, x_max] (API units) as of ``until_id``: full resolution where
        the range holds at most ``max_points`` points."""
        extra: dict[str, Any] = {} if rank is None else {"rank": rank}
        return {
            name: self.api.series(
                self.run_id,
                name=name,
                x=axis,
                max_points=self.max_points,
                x_min=x_min,
                x_max=x_max,
                until_id=until_id,
                **extra,
            )
            for name in names
        }
