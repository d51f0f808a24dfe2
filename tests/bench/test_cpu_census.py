"""The load's CPU census names a process outside the load that took CPU during the window."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from tests.bench.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
from cpu_census import CpuCensus, tree

SPIN = "import time\nend = time.process_time() + 1.5\nwhile time.process_time() < end: pass"


def test_a_busy_outsider_is_named_and_our_own_tree_is_not() -> None:
    census = CpuCensus()
    # The spinner stays alive after spinning: a process that has exited leaves no CPU times.
    spinner = subprocess.Popen([sys.executable, "-c", SPIN + "\ntime.sleep(30)"])
    try:
        start = time.monotonic()
        time.sleep(2.5)
        outside = census.finish({os.getpid()}, time.monotonic() - start)
        inside = census.finish(tree(os.getpid()), time.monotonic() - start)
        spinner_used = census.used_s(spinner.pid)
    finally:
        spinner.kill()
        spinner.wait()
    names = [(o["pid"], o["cpu_s"]) for o in outside["top_others"]]
    assert any(pid == spinner.pid and cpu >= 1.0 for pid, cpu in names), outside
    assert outside["others_cpu_s"] >= 1.0
    assert outside["machine_busy_cpu_s"] >= 1.0
    assert spinner.pid not in [o["pid"] for o in inside["top_others"]], inside
    assert 1.0 <= spinner_used <= outside["machine_busy_cpu_s"] + 0.5
