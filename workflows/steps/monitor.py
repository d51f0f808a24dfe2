"""``monitor``: the train step. Streams rank 0's log and ends with the run's outcome.

It trains nothing (the StatefulSet's workers do): it only watches, so Argo may retry it on an
infrastructure error without training twice. The run's state in the master decides the exit;
the pods are watched as well because a worker that crashes hard (OOM kill, segfault) cannot
report its own failure, and a restarted worker container means that rank's training is gone
(a restarted worker never trains again: it finds its done marker or the ended run and waits).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any

from kubernetes.client.rest import ApiException

from workflows.steps import (
    EXIT_OK,
    StepFailed,
    dns_label,
    one_line,
    positive_int,
    run_id,
    seconds,
)
from workflows.steps.master_api import (
    MasterAPI,
    MasterRejected,
    MasterUnreachable,
    api_url_from,
    token_from,
)
from workflows.steps.pods import KubeAccessError, PodState, WorkerPods, judge
from workflows.steps.pods import transient_error_text as transient

WORKER_CONTAINER = "worker"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "monitor",
        help="Follow rank 0's log and the run's state; exit with the run's outcome.",
        description="Stream rank 0's log to stdout. Exit 0 when the run succeeded in the "
        "master; exit 1 when it failed or stopped, or when a worker pod restarted, crash-loops, "
        "terminated with an error or disappeared. Token: env MLBENCH_TOKEN.",
    )
    p.add_argument("--namespace", required=True, type=dns_label)
    p.add_argument("--statefulset", required=True, type=dns_label)
    p.add_argument("--replicas", required=True, type=positive_int)
    p.add_argument("--run-id", required=True, type=run_id)
    p.add_argument("--api-url", help="Master base URL (default: env MLBENCH_API_URL).")
    p.add_argument("--poll-s", type=seconds, default=5.0, help="Seconds between polls (5).")
    p.add_argument(
        "--master-grace-s",
        type=seconds,
        default=300.0,
        help="How long the master may be unreachable before the step fails (300).",
    )
    p.add_argument(
        "--pod-grace-s",
        type=seconds,
        default=60.0,
        help="How long a worker pod may be missing (or the pods unreadable) (60).",
    )
    p.set_defaults(run=run)


def err(message: str) -> None:
    """The monitor's own lines go to stderr: stdout carries rank 0's log unchanged."""
    print(f"monitor: {message}", file=sys.stderr, flush=True)


class LogFollower(threading.Thread):
    """Copies the log of one container to stdout as lines arrive, reconnecting when the stream
    ends early (API server restart, read timeout) while the step still runs.

    A reconnect reads the log from its start again and skips the lines already printed: the
    API has no exact "since this line" (sinceTime has second resolution). A restart of the
    container would reset the log, but a restart ends the monitor anyway.
    """

    def __init__(self, pods: WorkerPods, pod: str, container: str) -> None:
        super().__init__(name="log-follower", daemon=True)
        self.pods, self.pod, self.container = pods, pod, container
        self.stop = threading.Event()
        self.printed = 0
        self.last_line_at = time.monotonic()
        self._lock = threading.Lock()

    def run(self) -> None:
        told = ""
        while not self.stop.is_set():
            try:
                self._follow_once()
                told = ""
            except Exception as exc:
                problem = _log_problem(exc)
                if problem != told:  # say each new problem once, not every second
                    err(f"log of {self.pod} not readable yet: {problem}")
                    told = problem
            self.stop.wait(1.0)

    def _follow_once(self) -> None:
        response = self.pods.core.read_namespaced_pod_log(
            self.pod,
            self.pods.namespace,
            container=self.container,
            follow=True,
            _preload_content=False,
            # No read timeout worth the name: rank 0 may be quiet for minutes between epochs.
            _request_timeout=(10, 900),
        )
        try:
            seen = 0
            for raw in response:  # urllib3 yields the chunked body line by line
                if not raw.endswith(b"\n"):
                    break  # cut mid-line: the whole line comes again after the reconnect
                seen += 1
                if seen <= self.printed:
                    continue
                with self._lock:
                    if self.stop.is_set():
                        return
                    sys.stdout.write(raw.decode("utf-8", errors="replace"))
                    sys.stdout.flush()
                    self.printed = seen
                    self.last_line_at = time.monotonic()
        finally:
            response.release_conn()

    def drain(self, quiet_s: float = 0.5, max_s: float = 3.0) -> None:
        """Let the last lines arrive (until none came for ``quiet_s``), then stop."""
        end = time.monotonic() + max_s
        while time.monotonic() < end and time.monotonic() - self.last_line_at < quiet_s:
            time.sleep(0.05)
        self.stop.set()
        with self._lock:  # once held, no line is being written and none will be
            pass


def _log_problem(exc: Exception) -> str:
    if isinstance(exc, ApiException):
        # 400 "container ... is waiting to start" while it starts; 404 while it is recreated.
        return f"{exc.status} {exc.reason}"
    return one_line(f"{type(exc).__name__}: {exc}", 200)


def run(args: argparse.Namespace) -> int:
    api_url = api_url_from(args.api_url)
    token = token_from("MLBENCH_TOKEN", required=False)  # reads may be open (auth_reads off)
    pods = WorkerPods(args.namespace, args.statefulset, args.replicas)
    follower = LogFollower(pods, f"{args.statefulset}-0", WORKER_CONTAINER)
    follower.start()
    with MasterAPI(api_url, token) as master:
        try:
            return _watch(args, master, pods)
        finally:
            follower.drain()


def _watch(args: argparse.Namespace, master: MasterAPI, pods: WorkerPods) -> int:
    run_no = args.run_id
    last_state = ""
    master_down_since: float | None = None
    pods_unreadable_since: float | None = None
    missing_since: dict[str, float] = {}
    while True:
        now = time.monotonic()
        try:
            run = master.get_run(run_no, retry_s=min(args.poll_s, 10.0))
        except MasterRejected as exc:
            hint = " (is MLBENCH_TOKEN this run's token?)" if exc.status in (401, 403) else ""
            raise StepFailed(f"{exc}{hint}") from None
        except MasterUnreachable as exc:
            master_down_since = master_down_since or now
            down = now - master_down_since
            if down >= args.master_grace_s:
                raise StepFailed(f"{exc} (unreachable for {down:.0f} s)") from None
            err(f"{exc}; tolerated for {args.master_grace_s - down:.0f} s more")
        else:
            master_down_since = None
            state = str(run.get("state", ""))
            if state != last_state:
                err(f"run {run_no} is {state}: {one_line(run.get('reason', ''), 300)}")
                last_state = state
            outcome = _outcome(run_no, run)
            if outcome is not None:
                return outcome

        try:
            # None: the StatefulSet is gone, so are its pods (judged missing below).
            found = pods.read() or {}
        except KubeAccessError as exc:
            raise StepFailed(str(exc)) from None
        except Exception as exc:
            problem = transient(exc)
            if problem is None:
                raise
            pods_unreadable_since = pods_unreadable_since or now
            if now - pods_unreadable_since >= args.pod_grace_s:
                raise StepFailed(
                    f"worker pods unreadable for {args.pod_grace_s:g} s: {problem}"
                ) from None
            err(f"cannot read the worker pods: {problem}")
        else:
            pods_unreadable_since = None
            problem = _pod_problem(found, pods.names, missing_since, now, args.pod_grace_s)
            if problem is not None:
                # The worker that crashed may have reported first: its reason says more.
                try:
                    outcome = _outcome(run_no, master.get_run(run_no, retry_s=2.0))
                except (MasterRejected, MasterUnreachable):
                    outcome = None
                if outcome is not None:
                    return outcome
                raise StepFailed(problem)
        time.sleep(args.poll_s)


def _outcome(run_no: int, run: dict[str, Any]) -> int | None:
    """EXIT_OK when the run succeeded, StepFailed when it failed or stopped, else None."""
    state = run.get("state")
    reason = one_line(run.get("reason", "") or "no reason given", 600)
    if state == "succeeded":
        err(f"run {run_no} succeeded: {reason}")
        return EXIT_OK
    if state in ("failed", "stopped"):
        raise StepFailed(f"run {run_no} {state}: {reason}")
    return None


def _pod_problem(
    found: dict[str, Any],
    names: list[str],
    missing_since: dict[str, float],
    now: float,
    grace_s: float,
) -> str | None:
    """One line about the first worker pod in trouble, or None."""
    for name in names:
        state: PodState = judge(name, found.get(name), WORKER_CONTAINER)
        if not state.exists:
            since = missing_since.setdefault(name, now)
            if now - since >= grace_s:
                return f"worker pod {name} is missing (for {now - since:.0f} s)"
            continue
        missing_since.pop(name, None)
        if state.fatal is not None:
            return f"worker pod {name}: {state.fatal}"
        if state.restarts > 0:
            detail = state.restart_detail or "a container restarted"
            return f"worker pod {name} restarted ({state.restarts}x): {detail}"
    return None
