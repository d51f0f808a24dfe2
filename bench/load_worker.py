"""The processes of the load figure (``load.py``): a simulated worker that posts metric batches
on a fixed schedule, and a dashboard that runs the Run and Runs views' reads meanwhile.

Each runs in its own OS process (``multiprocessing`` spawn), so this module imports only what
those processes need: a worker imports httpx and nothing of the master. The values of every
point follow from (worker, point index) alone, so ``load.py`` computes the count and checksum
the master must hold without asking the workers what they sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
import time
import traceback
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

API = "/api/v1"
NAMES = ("train/loss", "train/samples_per_s", "val/accuracy", "val/loss")
"""What a worker logs at each step: a loss and a throughput (their plots) and the goal metric
of ``digits-mlp`` (``val/accuracy``), so the Run view reads three plots' worth of series."""
VALUE_SCALE = 1024
"""Values are integers / 1024: exact in binary floating point and in JSON, so their sum is an
exact integer checksum."""
REQUEST_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class WorkerPlan:
    """One simulated worker: whom it posts for and when (all of it fixed before the start)."""

    index: int
    url: str
    run_id: int
    rank: int
    token: str
    points: int
    """Points per batch."""
    rate: float
    """Batches per second."""
    batches: int
    time_base: float
    """Wall-clock time written into the points (batch ``k`` carries ``time_base + k / rate``);
    the start itself is only fixed once every process is ready (``run_worker``)."""
    offset_s: float
    """This worker's lag behind ``start_at`` (workers are spread evenly over one period, as
    unsynchronised workers would be, instead of all posting at the same instant)."""


def point_value(worker: int, i: int) -> float:
    """Value of the ``i``-th point a worker logs: deterministic, exact in JSON."""
    return ((worker * 7919 + i * 31) % 100_003) / VALUE_SCALE


def point_key(worker: int, i: int) -> tuple[str, int]:
    """(name, step) of the ``i``-th point a worker logs: every step logs each of ``NAMES``."""
    return NAMES[i % len(NAMES)], i // len(NAMES)


def batch_points(plan: WorkerPlan, k: int) -> list[dict[str, Any]]:
    """The points of batch ``k``: indices ``k * points ... (k + 1) * points - 1``."""
    planned = plan.time_base + plan.offset_s + k / plan.rate
    out = []
    for i in range(k * plan.points, (k + 1) * plan.points):
        name, step = point_key(plan.index, i)
        out.append(
            {
                "name": name,
                "rank": plan.rank,
                "step": step,
                "epoch": step / 1000,
                "time": planned,
                "value": point_value(plan.index, i),
            }
        )
    return out


def point_hash(name: str, rank: int, step: int, value: float) -> int:
    """64 bits of a point; their sum mod 2**64 is an order-free checksum of a set of points
    (a lost, doubled or altered point changes it)."""
    digest = hashlib.blake2b(f"{name}|{rank}|{step}|{value!r}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


@dataclass
class Checksum:
    """Count, exact value sum (in 1/1024) and order-free hash of a set of points."""

    count: int = 0
    value_sum: int = 0
    hash_sum: int = 0

    def add(self, name: str, rank: int, step: int, value: float) -> None:
        self.count += 1
        self.value_sum += round(value * VALUE_SCALE)
        self.hash_sum = (self.hash_sum + point_hash(name, rank, step, value)) % 2**64

    def merge(self, other: Checksum) -> None:
        self.count += other.count
        self.value_sum += other.value_sum
        self.hash_sum = (self.hash_sum + other.hash_sum) % 2**64


def expected_checksum(worker: int, rank: int, total_points: int) -> Checksum:
    """What the master must hold from one worker that sent ``total_points`` points."""
    check = Checksum()
    for i in range(total_points):
        name, step = point_key(worker, i)
        check.add(name, rank, step, point_value(worker, i))
    return check


# -- the simulated worker ---------------------------------------------------------------------


def run_worker(plan: WorkerPlan, results: Any, ready: Any, go: Any, start_at: Any) -> None:
    """Process entry: encode every batch, say ``ready``, wait for ``go``, then post each batch
    at its planned time from the shared ``start_at`` (a ``multiprocessing.Value``, wall clock)
    and put a summary on ``results``."""
    try:
        # Bodies are encoded before the clock starts: the client's JSON work is not measured.
        bodies = [
            json.dumps({"batch_id": uuid.uuid4().hex, "points": batch_points(plan, k)}).encode()
            for k in range(plan.batches)
        ]
        summary = asyncio.run(_send_all(plan, bodies, ready, go, start_at))
    except BaseException:  # the parent must hear of it, not wait for a summary forever
        summary = {"index": plan.index, "crashed": traceback.format_exc()}
    results.put(summary)


async def _send_all(
    plan: WorkerPlan, bodies: list[bytes], ready: Any, go: Any, shared_start: Any
) -> dict[str, Any]:
    """Open loop: batch ``k`` is due at ``start + offset + k / rate`` whatever happened to the
    batches before it (a slow answer does not delay the next send, so a slow master cannot
    hide its latency by slowing the senders down: no coordinated omission)."""
    headers = {"Authorization": f"Bearer {plan.token}", "Content-Type": "application/json"}
    path = f"{API}/runs/{plan.run_id}/metrics"
    records: list[tuple[float, float, float, int, str]] = []  # planned, sent, done, status, err

    async with httpx.AsyncClient(
        base_url=plan.url, headers=headers, timeout=REQUEST_TIMEOUT_S
    ) as http:
        # A warm keep-alive connection, opened before the start: nothing stands between the
        # start and the first planned send.
        (await http.get(f"{API}/health")).raise_for_status()
        ready.put(plan.index)
        await asyncio.to_thread(go.wait)
        start_at = shared_start.value
        # Wall clock to monotonic once: every process plans against the same start instant.
        mono_start = time.monotonic() + (start_at - time.time()) + plan.offset_s

        async def post(k: int, planned: float) -> None:
            sent = time.monotonic()
            status, error = 0, ""
            try:
                # One bound on the whole request (httpx's timeout is per read, not in total).
                response = await asyncio.wait_for(
                    http.post(path, content=bodies[k]), REQUEST_TIMEOUT_S
                )
                status = response.status_code
                if status == 200:
                    answer = response.json()
                    if answer.get("stored") != plan.points or answer.get("duplicate"):
                        error = f"answer {answer}"
                else:
                    error = response.text[:200]
            except Exception as exc:  # timeouts and transport errors are failures, no retry
                error = f"{type(exc).__name__}: {exc}"[:200]
            records.append((planned, sent, time.monotonic(), status, error))

        tasks = []
        for k in range(plan.batches):
            planned = mono_start + k / plan.rate
            delay = planned - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(k, planned)))
        await asyncio.gather(*tasks)

    failures = [(status, err) for _p, _s, _d, status, err in records if status != 200 or err]
    return {
        "index": plan.index,
        "run_id": plan.run_id,
        "rank": plan.rank,
        "requests": len(records),
        "failures": len(failures),
        "failure_examples": failures[:5],
        "statuses": _counts(str(r[3]) for r in records),
        # Latency from the planned send time (what the target is about: it includes
        # any wait for a busy client or connection) and from the actual send.
        "latency_s": [done - planned for planned, _s, done, _st, _e in records],
        "service_s": [done - sent for _p, sent, done, _st, _e in records],
        "send_lag_s": [sent - planned for planned, sent, _d, _st, _e in records],
        "first_planned": min(r[0] for r in records) - mono_start + plan.offset_s,
        "last_done": max(r[2] for r in records) - mono_start + plan.offset_s,
    }


def _counts(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


# -- the dashboard ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardPlan:
    """A dashboard with ``viewers`` open Run views and one Runs table, from ``start_at`` for
    ``duration_s``; refresh periods as the dashboard's defaults (``bokeh_app/common/settings``)."""

    url: str
    run_ids: list[int]
    duration_s: float
    viewers: int = 2
    view_s: float = 10.0
    """How long a viewer stays on one run before it opens the next (a new full load)."""
    run_refresh_s: float = 1.0
    runs_refresh_s: float = 2.0
    max_points: int = 2000


@dataclass
class _Calls:
    """Latency and outcome of every API call, by kind (thread-safe)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latency_s: dict[str, list[float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def record(self, kind: str, seconds: float, error: str | None) -> None:
        with self.lock:
            self.latency_s.setdefault(kind, []).append(seconds)
            if error is not None:
                self.failures.append(f"{kind}: {error}")


def _kind(path: str) -> str:
    """``/runs/7/metrics/series`` -> ``runs/{id}/metrics/series``."""
    parts = ["{id}" if p.isdigit() else p for p in path.strip("/").split("/")]
    return "/".join(parts)


def run_dashboard(plan: DashboardPlan, results: Any, ready: Any, go: Any, start_at: Any) -> None:
    """Process entry: the Run view's reads (``RunReader``: full loads, then cursor updates
    every second) for ``viewers`` viewers and the Runs table's read every 2 s, through the
    dashboard's own API client; put every call's latency and any failure on ``results``."""
    try:
        from bokeh_app.views import run_fetch  # noqa: F401  (imported before the start)

        ready.put("dashboard")
        go.wait()
        summary = _dashboard(plan, start_at.value)
    except BaseException:
        summary = {"crashed": traceback.format_exc()}
    results.put(summary)


def _dashboard(plan: DashboardPlan, start_at: float) -> dict[str, Any]:
    from bokeh_app.common.api import ApiError, DashboardApi, MasterUnreachable
    from bokeh_app.views.run_fetch import RunReader

    calls = _Calls()

    class TimedApi(DashboardApi):
        """The dashboard's client, each call timed; a 404 of ``/result`` is the normal answer
        while a run has no result (the client turns it into None)."""

        def _call(self, method: str, path: str, **kwargs: Any) -> Any:
            start = time.monotonic()
            error: str | None = None
            try:
                return super()._call(method, path, **kwargs)
            except ApiError as exc:
                if not (exc.status == 404 and path.endswith("/result")):
                    error = f"{exc.status} {exc.detail}"[:200]
                raise
            except MasterUnreachable as exc:
                error = str(exc)[:200]
                raise
            finally:
                calls.record(_kind(path), time.monotonic() - start, error)

    end = start_at + plan.duration_s
    time.sleep(max(0.0, start_at - time.time()))

    def ticks(period: float) -> Iterator[None]:
        """Every ``period`` until the end; a tick missed while a read ran is skipped, as the
        dashboard's periodic callbacks are."""
        due = time.time()
        while due < end:
            yield
            due += period
            now = time.time()
            while due < now:
                due += period
            time.sleep(max(0.0, min(due, end) - now))

    def runs_table() -> None:
        api = TimedApi(plan.url, None, timeout_s=REQUEST_TIMEOUT_S)
        for _ in ticks(plan.runs_refresh_s):
            with contextlib.suppress(ApiError, MasterUnreachable):  # recorded
                api.runs_page(limit=200)
        api.close()

    def viewer(number: int) -> None:
        api = TimedApi(plan.url, None, timeout_s=REQUEST_TIMEOUT_S)
        entry: dict[str, Any] | None = None
        generation = 0
        position = number
        while time.time() < end:
            reader = RunReader(api, plan.run_ids[position % len(plan.run_ids)], plan.max_points)
            position += plan.viewers
            leave = time.time() + plan.view_s
            snap = None
            for _ in ticks(plan.run_refresh_s):
                if time.time() >= leave:
                    break
                generation += 1
                try:
                    if snap is None:  # open the page: one full load, downsampled
                        snap = reader.snapshot(generation, "step", None, entry)
                        entry, cursor, result = snap.entry, snap.cursor, snap.result
                        plotted = [n for group in snap.groups.values() for n in group]
                        continue
                    update = reader.update(generation, cursor, snap.names, plotted, None, result)
                    if update is None:  # a new metric or far behind: the view reloads
                        snap = None
                    else:
                        cursor, result = update.cursor, update.result
                except (ApiError, MasterUnreachable):
                    snap = None  # recorded; the view retries with a full load
        api.close()

    threads = [threading.Thread(target=runs_table, daemon=True)]
    threads += [
        threading.Thread(target=viewer, args=(n,), daemon=True) for n in range(plan.viewers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"latency_s": calls.latency_s, "failures": calls.failures}
