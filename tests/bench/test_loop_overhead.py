"""bench/loop_overhead.py on a tiny ResNet: the worker and the bare DDP loop both train."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.conftest import run_bench

pytestmark = pytest.mark.slow


def test_loop_overhead_runs_both_loops(tmp_path: Path) -> None:
    payload = run_bench(
        "loop_overhead.py",
        tmp_path,
        *("--steps", "3", "--repeats", "2", "--warmup", "0"),
        *("--batch-size", "8", "--width", "2", "--images", "32"),
    )
    assert payload["figure"] == "loop_overhead"
    rows = {row["role"]: row for row in payload["rows"]}
    assert rows["ours"]["unit"] == rows["baseline"]["unit"] == "samples/s"
    assert len(rows["ours"]["extra"]["samples"]) == len(rows["baseline"]["extra"]["samples"]) == 2
    # The worker reported every step it trained to the master.
    assert rows["ours"]["extra"]["steps"] == 3
    summary = payload["summary"]
    assert summary["target"] == ">= 0.98"
    assert len(payload["params"]["round_ratios"]) == 2
    assert summary["ratio"] > 0
    assert summary["met"] is (summary["ratio"] >= 0.98)
