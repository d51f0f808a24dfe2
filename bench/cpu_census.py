"""Who used the CPU during a timed window: this load's own processes, or something else.

A latency bound measured on a shared 2-core machine means little without knowing what else
ran; the census names the other processes that took CPU time during the window, so a slow
load can be told apart from a busy machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psutil


def _busy_s() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _iowait_s() -> float:
    return getattr(psutil.cpu_times(), "iowait", 0.0)


def _steal_s() -> float:
    """Time the hypervisor ran another guest on our virtual CPUs: a slow shared host."""
    return getattr(psutil.cpu_times(), "steal", 0.0)


def _per_process() -> dict[tuple[int, float], tuple[float, str]]:
    """CPU seconds so far per process, keyed by (pid, create time) so a reused pid differs."""
    out: dict[tuple[int, float], tuple[float, str]] = {}
    for proc in psutil.process_iter(["pid", "create_time", "cpu_times", "name", "cmdline"]):
        info = proc.info
        if info["cpu_times"] is None:
            continue
        cmd = " ".join(info["cmdline"] or []) or info["name"] or "?"
        times = info["cpu_times"]
        out[(info["pid"], info["create_time"])] = (times.user + times.system, cmd[:120])
    return out


@dataclass
class CpuCensus:
    """Start it before the window and call ``finish`` after: CPU seconds of the whole
    machine, and of every process outside ``ours`` that used more than ``min_s``."""

    before_busy: float = field(default_factory=_busy_s)
    before_iowait: float = field(default_factory=_iowait_s)
    before_steal: float = field(default_factory=_steal_s)
    before: dict[tuple[int, float], tuple[float, str]] = field(default_factory=_per_process)

    def used_s(self, pid: int) -> float:
        """CPU seconds process ``pid`` used since the census began."""
        proc = psutil.Process(pid)
        times = proc.cpu_times()
        before = self.before.get((pid, proc.create_time()), (0.0, ""))[0]
        return times.user + times.system - before

    def finish(self, ours: set[int], window_s: float, min_s: float = 0.5) -> dict[str, Any]:
        """PostgreSQL's processes are counted apart: on that backend they serve the load."""
        busy = _busy_s() - self.before_busy
        after = _per_process()
        others: list[tuple[float, int, str]] = []
        database = 0.0
        for key, (cpu, cmd) in after.items():
            pid = key[0]
            if pid in ours:
                continue
            used = cpu - self.before.get(key, (0.0, cmd))[0]
            if cmd.startswith("postgres"):
                database += used
            elif used >= min_s:
                others.append((used, pid, cmd))
        others.sort(reverse=True)
        return {
            "window_s": round(window_s, 1),
            "machine_busy_cpu_s": round(busy, 1),
            "iowait_s": round(_iowait_s() - self.before_iowait, 1),
            "steal_s": round(_steal_s() - self.before_steal, 1),
            "cores": psutil.cpu_count() or 1,
            "postgres_cpu_s": round(database, 1),
            "others_cpu_s": round(sum(u for u, _, _ in others), 1),
            "top_others": [
                {"pid": pid, "cpu_s": round(used, 1), "cmd": cmd} for used, pid, cmd in others[:5]
            ],
        }


def tree(pid: int) -> set[int]:
    """``pid`` and every live descendant of it."""
    try:
        root = psutil.Process(pid)
        return {pid} | {child.pid for child in root.children(recursive=True)}
    except psutil.Error:
        return {pid}
