"""LocalExecutor: runs the workers of a run on this machine with torch.distributed.run.

Each run is one ``python -m torch.distributed.run`` launcher (the real elastic launcher) in a
session and process group of its own, so a stop reaches the launcher and every worker it spawned
with one signal, and nothing outlives the run.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from master.executors.base import Executor, Exit, ExitCallback, Launch
from master.executors.proctree import ProcessTree

log = logging.getLogger(__name__)

_POLL_S = 0.5


class LocalExecutor(Executor):
    kind = "local"
    runs_end_with_master = True

    def __init__(
        self,
        on_exit: ExitCallback,
        runs_dir: Path,
        *,
        python: str = sys.executable,
        grace_s: float = 10.0,
        data_dir: Path | None = None,
    ) -> None:
        super().__init__(on_exit)
        self.runs_dir = Path(runs_dir)
        self.python = python
        self.grace_s = grace_s
        self.data_dir = Path(data_dir) if data_dir else self.runs_dir.parent
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._trees: dict[int, ProcessTree] = {}
        self._watchers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closing = False

    # -- start ------------------------------------------------------------------------------

    def command(self, launch: Launch, spec_path: Path) -> list[str]:
        spec = launch.spec
        return [
            self.python,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nnodes=1",
            f"--nproc-per-node={spec.workers}",
            "--max-restarts=0",
            "--monitor-interval=0.5",
            "-m",
            "worker.main",
            "--spec",
            str(spec_path),
        ]

    def environment(self, launch: Launch) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            MLBENCH_API_URL=launch.api_url,
            MLBENCH_RUN_ID=str(launch.run_id),
            MLBENCH_TOKEN=launch.token,
            MLBENCH_DATA_DIR=str(self.data_dir),
            PYTHONUNBUFFERED="1",
            # torchrun would force 1 thread per worker; honour the requested cores instead.
            OMP_NUM_THREADS=str(max(1, int(launch.spec.resources.cpu))),
        )
        return env

    def start(self, launch: Launch) -> dict[str, Any]:
        run_dir = self.runs_dir / str(launch.run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        spec_path = run_dir / "spec.json"
        spec_path.write_text(launch.spec.model_dump_json(indent=2))
        log_path = run_dir / "workers.log"
        with open(log_path, "ab") as log_file:
            proc = subprocess.Popen(
                self.command(launch, spec_path),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=self.environment(launch),
                start_new_session=True,
            )
        with self._lock:
            self._procs[launch.run_id] = proc
            self._trees[launch.run_id] = ProcessTree(proc.pid)
        deadline = time.monotonic() + launch.spec.max_duration_s + self.grace_s
        self._watch(
            launch.run_id, lambda: self._wait_child(launch.run_id, proc, deadline, log_path)
        )
        return {
            "pid": proc.pid,
            "pgid": proc.pid,
            "create_time": psutil.Process(proc.pid).create_time(),
            "host": socket.gethostname(),
            "log": str(log_path),
        }

    # -- stop -------------------------------------------------------------------------------

    def stop(self, run_id: int, ref: dict[str, Any]) -> None:
        tree = self._tree(run_id, int(ref["pgid"]))
        # Workers get SIGTERM directly too: they flush their metrics and exit 143.
        if not tree.signal(signal.SIGTERM):
            return
        killer = threading.Thread(
            target=self._kill_after_grace, args=(tree,), name=f"kill-run-{run_id}", daemon=True
        )
        killer.start()

    def _tree(self, run_id: int, root_pid: int) -> ProcessTree:
        with self._lock:
            return self._trees.setdefault(run_id, ProcessTree(root_pid))

    def _kill_after_grace(self, tree: ProcessTree) -> None:
        end = time.monotonic() + self.grace_s
        while time.monotonic() < end:
            if not tree.alive():
                return
            time.sleep(0.1)
        log.warning("run processes ignored SIGTERM for %.0fs; killing them", self.grace_s)
        tree.signal(signal.SIGKILL)

    # -- watching ---------------------------------------------------------------------------

    def _watch(self, run_id: int, target: Any) -> None:
        thread = threading.Thread(target=target, name=f"watch-run-{run_id}", daemon=True)
        with self._lock:
            # A long-lived master watches many runs over time: keep only the live threads.
            self._watchers = [t for t in self._watchers if t.is_alive()]
            self._watchers.append(thread)
        thread.start()

    def _wait_child(
        self, run_id: int, proc: subprocess.Popen[bytes], deadline: float, log_path: Path
    ) -> None:
        overdue = False
        tree = self._tree(run_id, proc.pid)
        while True:
            tree.refresh()
            try:
                code = proc.wait(timeout=_POLL_S)
                break
            except subprocess.TimeoutExpired:
                if not overdue and time.monotonic() > deadline:
                    overdue = True
                    self.stop(run_id, {"pgid": proc.pid})
        # Workers the launcher left behind would be orphans: they end with the run.
        tree.signal(signal.SIGKILL)
        with self._lock:
            self._procs.pop(run_id, None)
            self._trees.pop(run_id, None)
        if overdue:
            reason = "run exceeded its max_duration_s and was killed"
        else:
            reason = describe_exit(code, log_path)
        self._report(Exit(run_id=run_id, exit_code=code, reason=reason))

    def reattach(self, run_id: int, ref: dict[str, Any]) -> bool:
        try:
            if ref.get("host") != socket.gethostname():
                return False
            proc = psutil.Process(int(ref["pid"]))
            if abs(proc.create_time() - float(ref["create_time"])) > 1.0:
                return False  # the pid was reused by an unrelated process
        except (psutil.Error, KeyError, TypeError, ValueError):
            return False
        self._watch(run_id, lambda: self._wait_foreign(run_id, proc, int(ref["pgid"])))
        return True

    def _wait_foreign(self, run_id: int, proc: psutil.Process, pgid: int) -> None:
        # Not our child: the exit code is gone with the previous master; the workers' own
        # status reports decide the state, this only notices that they have ended.
        tree = self._tree(run_id, pgid)
        while not self._closing:
            tree.refresh()
            try:
                proc.wait(timeout=_POLL_S)
                break
            except psutil.TimeoutExpired:
                continue
            except psutil.NoSuchProcess:
                break
        if self._closing:
            return
        tree.signal(signal.SIGKILL)
        with self._lock:
            self._trees.pop(run_id, None)
        self._report(Exit(run_id, None, "workers ended while watched after a master restart"))

    def _report(self, exit_: Exit) -> None:
        try:
            self._on_exit(exit_)
        except Exception:  # the watcher thread must survive a failing callback
            log.exception("recording the exit of run %s failed", exit_.run_id)

    def shutdown(self) -> None:
        """Stop every run this executor started and wait for the launchers to exit."""
        with self._lock:
            procs = dict(self._procs)
        for run_id, proc in procs.items():
            self.stop(run_id, {"pgid": proc.pid})
        for run_id, proc in procs.items():
            try:
                proc.wait(timeout=self.grace_s + 5)
            except subprocess.TimeoutExpired:
                self._tree(run_id, proc.pid).signal(signal.SIGKILL)
        self._closing = True
        with self._lock:
            watchers = list(self._watchers)
        for thread in watchers:
            thread.join(timeout=5)


def describe_exit(code: int, log_path: Path) -> str:
    """How the launcher ended, for the run's reason (after "workers exited with code N: "): the
    rank that failed first when torchrun's summary names it (its "Root Cause" block), else the
    last meaningful line of the workers' log."""
    if code == 0:
        return "exited with code 0"
    tail = _log_tail(log_path)
    detail = root_cause(tail) or _last_error_line(tail)
    if code < 0:
        head = f"the launcher was killed by {signal.Signals(-code).name}"
        return f"{head}: {detail}" if detail else head
    return detail


_ROOT_RANK = re.compile(r"^\s*rank\s*:\s*(\d+)")
_ROOT_EXIT = re.compile(r"^\s*exitcode\s*:\s*(-?\d+)\s*\(pid:\s*(\d+)\)")


def root_cause(lines: list[str]) -> str:
    """torchrun's first observed failure as one line, e.g. "rank 1 (pid 812) was killed by
    SIGKILL"; "" when the log holds no such summary."""
    try:
        start = max(i for i, line in enumerate(lines) if line.startswith("Root Cause"))
    except ValueError:
        return ""
    rank = pid = exitcode = None
    for line in lines[start + 1 : start + 12]:
        if (match := _ROOT_RANK.match(line)) and rank is None:
            rank = int(match.group(1))
        elif match := _ROOT_EXIT.match(line):
            exitcode, pid = int(match.group(1)), int(match.group(2))
    if rank is None or exitcode is None:
        return ""
    if exitcode < 0:
        try:
            how = f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"was killed by signal {-exitcode}"
    else:
        how = f"exited with code {exitcode}"
    return f"rank {rank} (pid {pid}) {how}"


def _log_tail(log_path: Path, tail_bytes: int = 16_384) -> list[str]:
    try:
        with open(log_path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - tail_bytes))
            return fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []


def _last_error_line(lines: list[str]) -> str:
    lines = [line.strip() for line in lines if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "error:" in line:
            return line[:300]
    return lines[-1][:300] if lines else ""
