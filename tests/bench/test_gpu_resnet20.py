"""bench/gpu_resnet20.py (figure 7) on the CPU with tiny sizes: both loops ran through the real
paths (task 1a with the embedded master; the bare loop), the figures it derives are there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.bench.conftest import ROOT, run_bench


def test_runs_on_the_cpu_with_tiny_sizes(tmp_path: Path) -> None:
    payload = run_bench(
        "gpu_resnet20.py",
        tmp_path,
        *("--device", "cpu", "--images", "320", "--batch-size", "64", "--matmul-size", "256"),
        *("--repeats", "1", "--warmup", "0", "--profile-steps", "2", "--threads", "1"),
    )
    rows = {row["role"]: row for row in payload["rows"]}
    ours, base, peak = rows["ours"], rows["baseline"], rows["ceiling"]
    assert ours["unit"] == base["unit"] == "images/s"
    assert peak["unit"] == "TFLOP/s"
    extra = ours["extra"]
    assert 0 < extra["data_share"] < 1
    assert extra["steps"] == 5  # 320 images / 64 per step
    assert set(extra["phase_ms_per_step"]) >= {"data", "forward", "backward", "optimizer"}
    assert extra["achieved_tflops"] == pytest.approx(ours["value"] * 243e6 / 1e12)
    assert extra["fraction_of_datasheet_peak"] is None  # no datasheet for a CPU
    assert extra["master_check"]["state"] == "succeeded"
    assert extra["master_check"]["points"]["train/loss"] >= 1
    params = payload["params"]
    assert params["gpu"]["device"] == "cpu" and params["gpu"]["torch"]
    assert params["flop_per_image_counted"] == pytest.approx(243e6, rel=0.02)
    assert params["profile"]["mlbench"]["steps"] == 2
    diagnostics = (extra["tracker_synced_per_phase"], base["extra"]["zero_grad_set_to_none_false"])
    assert all(d["images_per_s"] > 0 for d in diagnostics)
    assert payload["summary"]["met"] in (True, False)
    assert payload["summary"]["ratio"] == pytest.approx(ours["value"] / base["value"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of CUDA-less machines")
def test_without_cuda_it_says_so_and_fails(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_resnet20.py"), "--results-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "no CUDA device" in done.stderr and "--device cpu" in done.stderr
    assert not list(tmp_path.iterdir())
