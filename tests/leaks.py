"""Processes a test started and left running after its module ended.

Every process the session starts inherits ``MLBENCH_TEST_SESSION`` from the pytest process.
One that still carries it after a module's fixtures are torn down, and that is no longer a
descendant of pytest (a session fixture's server still is), was orphaned: its owner forgot
it. It is killed at once, so it cannot slow the tests that follow (timings, load bounds), and
the session fails with its command line, so the leak gets fixed rather than tolerated.
"""

from __future__ import annotations

import contextlib
import os
import uuid

import psutil

MARKER = "MLBENCH_TEST_SESSION"


def mark_session() -> str:
    """Give this session a token that every process it starts inherits."""
    return os.environ.setdefault(MARKER, uuid.uuid4().hex)


def orphans(token: str) -> list[psutil.Process]:
    """Live processes of this session that are not pytest or a descendant of it."""
    me = psutil.Process()
    owned = {me.pid} | {child.pid for child in me.children(recursive=True)}
    found: list[psutil.Process] = []
    for proc in psutil.process_iter():
        if proc.pid in owned:
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get(MARKER) == token:
                found.append(proc)
        except psutil.Error:  # gone meanwhile, or a kernel thread
            continue
    return found


def reap(procs: list[psutil.Process]) -> list[str]:
    """Kill ``procs`` and their descendants; say what each was."""
    described: list[str] = []
    for proc in procs:
        try:
            cmd = " ".join(proc.cmdline())[:200] or proc.name()
            family = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            continue
        described.append(f"pid {proc.pid}: {cmd}")
        for member in family:
            with contextlib.suppress(psutil.Error):
                member.kill()
        psutil.wait_procs(family, timeout=5)
    return described
