"""Compare view, reading side: what one refresh reads from the master, in worker threads
(touches no Bokeh model). Ended runs' results, metric names and series are read once per view;
per-run reads of one refresh go out in parallel.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bokeh_app.common.api import ApiError, DashboardApi
from bokeh_app.views import compare_data as cd
from mlbench_core.states import TERMINAL

MAX_POINTS = 1000
"""Points per run and curve: 20 runs stay responsive in the browser."""
LISTED_RUNS = 500
"""Newest runs offered in the picker (the API's page limit)."""
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
