"""bench/client_memory.py on a short outage: memory traced, every point delivered after."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.bench.conftest import ROOT, run_bench

sys.path.insert(0, str(ROOT / "bench"))
import client_memory


def test_client_memory_bench_loses_no_point(tmp_path: Path) -> None:
    result = run_bench(
        "client_memory.py", tmp_path, "--down-s", "4", "--rate", "4000", "--max-pending", "2000"
    )
    ours, base = result["rows"]
    assert (ours["role"], base["role"]) == ("ours", "baseline")
    for row in (ours, base):
        assert row["extra"]["points_logged"] > 4000
        assert row["extra"]["points_stored"] == row["extra"]["points_logged"]
        assert row["extra"]["rss_peak_mib"] >= row["extra"]["rss_start_mib"] > 10


def test_a_token_starting_with_a_dash_reaches_the_child() -> None:
    """Worker tokens are URL-safe base64 and may start with "-" (a CI run met one)."""
    parser = client_memory.build_parser()
    args = parser.parse_args([])
    argv = client_memory.child_argv(args, "http://x", 3, "-Ab_c", Path("/s"), 0)
    child = parser.parse_args(argv)
    assert (child.child, child.token, child.run_id, child.max_pending) == (True, "-Ab_c", 3, 0)
