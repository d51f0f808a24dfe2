"""mlbench-worker: one rank of one run (DESIGN.md: Worker environment).

Started by ``torch.distributed.run`` (local executor) or as a StatefulSet pod (Argo executor;
``MLBENCH_POD_NAME`` set: rank from the pod name, bounded wait for ``MASTER_ADDR``, see
:mod:`worker.pod`).
Reads the run's spec, joins the process group, runs the task, and reports status, metrics and
the result to the master.

Exit codes: 0 done (or the run had already ended: nothing to do), 1 the run failed here,
2 bad invocation (spec or environment), 143 terminated by SIGTERM (the master stops runs by
sending SIGTERM to the workers' process group), 130 interrupted (Ctrl-C).

The command line and ``MLBENCH_*`` environment are read and checked in :mod:`worker.invocation`;
its public names are re-exported here.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import logging
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

import numpy as np
import torch

from mlbench_core import distributed as mdist
from mlbench_core.distributed import DistEnv, DistEnvError
from mlbench_core.manifest import build_manifest
from mlbench_core.metrics_client import MetricsClient, NullReporter, Reporter
from mlbench_core.spec import RunSpec
from mlbench_core.states import TERMINAL, RunState
from mlbench_core.tasks import TaskContext, get_task
from mlbench_core.tracker import Tracker
from worker.invocation import (
    ReportEnv,
    UsageError,
    data_dir_from,
    describe_validation_error,
    load_spec,
    one_line,
    parse_args,
    read_report_env,
)
from worker.pod import MasterAddrUnresolved, PodMode, pod_mode, wait_for_master_addr

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "ReportEnv",
    "Terminated",
    "UsageError",
    "data_dir_from",
    "describe_validation_error",
    "failure_reason",
    "load_spec",
    "main",
    "parse_args",
    "read_report_env",
    "run",
    "seed_everything",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

log = logging.getLogger("mlbench.worker")


# A run in one of these states must not be trained (again): StatefulSets restart exited
# containers, and a worker must never train a run twice.
_NO_TRAINING_STATES = frozenset({*(s.value for s in TERMINAL), RunState.stopping.value})


class Terminated(BaseException):
    """Raised in the main thread by the SIGTERM handler.

    A BaseException, so that ``except Exception`` blocks in task code do not swallow it.
    """


PEER_LOSS_WAIT_S = 5.0
_PEER_LOSS = (
    "connection closed by peer",
    "connection reset by peer",
    "broken pipe",
    "socket closed",
    "connection refused",
)


def lost_peer(exc: BaseException) -> bool:
    """Whether a collective failed because another rank went away (gloo, NCCL, the store)."""
    text = str(exc).lower()
    return isinstance(exc, torch.distributed.DistError) or any(s in text for s in _PEER_LOSS)


def _terminated_within(guard: _SignalGuard, seconds: float) -> bool:
    """Wait up to ``seconds`` for the launcher's SIGTERM; True when it came."""
    guard.armed = False  # a SIGTERM now must not raise inside the error handler
    end = time.monotonic() + seconds
    while not guard.received and time.monotonic() < end:
        time.sleep(0.05)
    return guard.received


def heartbeat_interval(environ: Mapping[str, str]) -> float:
    """Seconds between heartbeats: ``MLBENCH_HEARTBEAT_S`` (default 2)."""
    raw = environ.get("MLBENCH_HEARTBEAT_S", "2")
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0.1 <= value <= 60:
        log.warning("MLBENCH_HEARTBEAT_S=%r is not a number of seconds in [0.1, 60]; using 2", raw)
        return 2.0
    return value


def failure_reason(exc: BaseException) -> str:
    """One line for the run's reason: exception type and message."""
    message = one_line(str(exc), 3800)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class _SignalGuard:
    """Turns SIGTERM into ``Terminated`` in the main thread, once, while armed."""

    def __init__(self) -> None:
        self.received = False
        self.armed = True

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = not self.received
        self.received = True
        if self.armed and first:
            raise Terminated()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _done_marker(data_dir: Path, token: str, rank: int) -> Path:
    # Keyed by the run's token (random per run), not its id: ids restart with a fresh database.
    digest = hashlib.sha256(token.encode()).hexdigest()[:20]
    return data_dir / "done" / f"{digest}-rank{rank}"


def run(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """The worker, as a function returning the exit code."""
    env_vars = os.environ if environ is None else environ
    args = parse_args(argv)
    guard = _SignalGuard()
    guard.install()
    try:
        spec = load_spec(args.spec, env_vars)
        report = None if args.no_report else read_report_env(env_vars)
        # A StatefulSet pod (MLBENCH_POD_NAME) derives RANK from its name: worker/pod.py.
        pod = pod_mode(env_vars)
        if pod is not None:
            env_vars = pod.environ
        try:
            dist_env = DistEnv.from_env(env_vars)
        except DistEnvError as exc:
            raise UsageError(str(exc)) from None
        level = logging.getLevelName(str(args.log_level).upper())
        if not isinstance(level, int):
            raise UsageError(f"unknown log level {args.log_level!r}")
    except UsageError as exc:
        print(f"mlbench-worker: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Terminated:
        return EXIT_TERMINATED

    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format=f"%(asctime)s rank{dist_env.rank} %(levelname)s %(name)s: %(message)s",
    )
    # One line per HTTP request would bury the worker's own log; failures are logged anyway.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
    try:
        return _run_worker(args, spec, report, dist_env, env_vars, guard, pod)
    except Terminated:
        # Only reachable if SIGTERM lands between the two try blocks.
        return EXIT_TERMINATED


def _run_worker(
    args: argparse.Namespace,
    spec: RunSpec,
    report: ReportEnv | None,
    dist_env: DistEnv,
    environ: Mapping[str, str],
    guard: _SignalGuard,
    pod: PodMode | None = None,
) -> int:
    started = time.monotonic()
    data_dir = data_dir_from(environ)
    rank = dist_env.rank
    client: Reporter
    if report is None:
        client = NullReporter(rank)
    else:
        try:
            client = MetricsClient(
                report.api_url,
                report.run_id,
                report.token,
                rank,
                spool_dir=data_dir / "spool",
                heartbeat_s=heartbeat_interval(environ),
            )
        except (OSError, ValueError) as exc:
            # Without a client the failure cannot be reported; the executor sees the exit code.
            log.error("cannot start the metrics client: %s", failure_reason(exc))
            return EXIT_FAILED
    log.info(
        "run %s (%s): benchmark %s, rank %d of %d, backend %s",
        report.run_id if report else "-",
        spec.name,
        spec.benchmark,
        rank,
        dist_env.world_size,
        spec.backend.value,
    )

    code = EXIT_FAILED
    linger = False
    try:
        state = client.run_state()
        marker = _done_marker(data_dir, report.token, rank) if report else None
        if state in _NO_TRAINING_STATES:
            log.info("run is already %s in the master: nothing to do", state)
            code, linger = EXIT_OK, True
            return code
        if marker is not None and marker.exists():
            log.info("this rank already finished this run (%s): not training again", marker)
            code, linger = EXIT_OK, True
            return code
        if pod is not None:
            # Only now: a restarted pod of an ended run must linger, not wait for DNS.
            wait_for_master_addr(
                dist_env.master_addr, dist_env.master_port, pod.dns_timeout_s, pod.identity
            )

        seed_everything(spec.seed)
        # One worker per resources.cpu cores: more intra-op threads than that only contend
        # with the other workers on the machine.
        torch.set_num_threads(max(1, math.floor(spec.resources.cpu)))
        backend = mdist.pick_backend(spec.backend)
        device = mdist.device_for(dist_env, backend)
        mdist.init_process_group(dist_env, backend, timeout_s=args.dist_timeout)
        if rank == 0:
            client.status("running")

        task_cls = get_task(spec.benchmark)
        config = task_cls.config_from(spec.overrides)
        # Every rank takes part: the manifest gathers each rank's device description.
        manifest = build_manifest(
            spec, config.model_dump(mode="json"), dist_env.world_size, backend, device
        )
        if rank == 0:
            client.manifest(manifest)
        out_of_time = threading.Event()

        def should_stop() -> bool:
            if time.monotonic() - started > spec.max_duration_s:
                out_of_time.set()
            return out_of_time.is_set()

        ctx = TaskContext(
            rank=rank,
            world_size=dist_env.world_size,
            device=device,
            seed=spec.seed,
            goal_kind=spec.goal.kind.value,
            goal_value=spec.goal_value(),
            tracker=Tracker(device=device),
            log=client.log,
            data_dir=str(data_dir),
            should_stop=should_stop,
            on_progress=client.mark_progress,
        )
        result = task_cls().run(ctx, config)
        log.info(
            "finished: goal_reached=%s final_value=%s time_to_goal_s=%s total_time_s=%.2f",
            result.goal_reached,
            result.final_value,
            result.time_to_goal_s,
            result.total_time_s,
        )
        if rank == 0:
            client.result(result)
            reason = ""
            if out_of_time.is_set():
                reason = f"max_duration_s={spec.max_duration_s} reached"
                if not result.goal_reached and spec.goal_value() is not None:
                    reason += " before the goal"
            client.status("succeeded", reason)
        if marker is not None:
            try:
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.touch()
            except OSError:
                log.warning("could not write %s", marker, exc_info=True)
        code, linger = EXIT_OK, True
        return code
    except Terminated:
        log.warning("terminated by SIGTERM: flushing metrics and exiting")
        code = EXIT_TERMINATED
        return code
    except KeyboardInterrupt:
        log.warning("interrupted")
        code = EXIT_INTERRUPTED
        return code
    except MasterAddrUnresolved as exc:
        # One line, no traceback: the message says what to check in the cluster.
        log.error("%s", exc)
        client.status("failed", str(exc))
        code = EXIT_FAILED
        return code
    except Exception as exc:
        if guard.received:
            # A collective failed because the peers were being terminated too: that is a stop,
            # not a failure of the run.
            log.warning("terminated by SIGTERM (%s): exiting", failure_reason(exc))
            code = EXIT_TERMINATED
            return code
        if lost_peer(exc) and _terminated_within(guard, PEER_LOSS_WAIT_S):
            # A peer died and the launcher is ending us: its report of which rank died is
            # the reason; ours ("connection closed by peer") would only blame this rank.
            log.warning("terminated after losing a peer (%s): exiting", failure_reason(exc))
            code = EXIT_TERMINATED
            return code
        reason = failure_reason(exc)
        log.error("run failed: %s", reason, exc_info=True)
        client.status("failed", reason)
        code = EXIT_FAILED
        return code
    finally:
        guard.armed = False  # no Terminated in the middle of the clean-up
        client.close(timeout_s=2.0 if code == EXIT_TERMINATED else 10.0)
        # Free objects in reference cycles (DDP's reducer among them) while the process group
        # still exists; collected after its destruction they have aborted the process (SIGABRT).
        gc.collect()
        mdist.shutdown()
        if linger and args.linger and not guard.received:
            _linger(guard)


def _linger(guard: _SignalGuard) -> None:
    log.info("lingering until terminated (--linger)")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    if guard.received:
        return
    while not stop.wait(1.0):
        pass


def main() -> None:
    """Console script ``mlbench-worker``."""
    sys.exit(run())


if __name__ == "__main__":
    main()
