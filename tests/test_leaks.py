"""The orphan check of tests/leaks.py finds a process that outlived its starter, and only it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

from tests import leaks

# The middle process starts a sleeper in a new session and exits at once: the sleeper is
# re-parented away from pytest, as a server whose fixture forgot it would be.
DOUBLE_FORK = (
    "import subprocess, sys;"
    "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
    " start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL);"
    " print(p.pid)"
)


def test_an_orphan_is_found_and_killed_and_a_child_is_not() -> None:
    token = os.environ[leaks.MARKER]
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    out = subprocess.run(
        [sys.executable, "-c", DOUBLE_FORK], capture_output=True, text=True, check=True
    )
    orphan_pid = int(out.stdout)
    try:
        deadline = time.monotonic() + 10
        found: list[int] = []
        while orphan_pid not in found and time.monotonic() < deadline:
            found = [p.pid for p in leaks.orphans(token)]
        assert orphan_pid in found
        assert child.pid not in found  # still pytest's own child: a fixture may own it
        orphans = [p for p in leaks.orphans(token) if p.pid == orphan_pid]
        described = leaks.reap(orphans)
        assert described == [f"pid {orphan_pid}: {sys.executable} -c import time; time.sleep(60)"]
        assert not psutil.pid_exists(orphan_pid) or (
            psutil.Process(orphan_pid).status() == psutil.STATUS_ZOMBIE
        )
        assert orphan_pid not in [p.pid for p in leaks.orphans(token)]
    finally:
        child.kill()
        child.wait()
        if psutil.pid_exists(orphan_pid):
            psutil.Process(orphan_pid).kill()
