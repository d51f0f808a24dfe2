"""Training throughput of every reference task with 1 and 2 local workers, through the real path.

Each task runs through an embedded master and the LocalExecutor (torch.distributed.run, gloo)
on data generated in the task's real on-disk format (the real loaders parse it), for a fixed
number of steps at the task's default model size and batch size, and the samples/s the run
reports are printed side by side with the 2-worker speed-up (the baseline is 1 worker).

    .venv/bin/python bench/task_throughput.py [--steps 30] [--tasks 1a 2a 3a 4b digits-mlp]

Throughput does not depend on what the pixels or words are, only on their shapes, so the
generated data measures the same thing the real data sets would; accuracy is not measured here.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from master.server import EmbeddedMaster  # noqa: E402
from master.settings import Settings  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.mlbench_core.tasks import datafiles  # noqa: E402

WRITERS = {
    "1a": lambda root: datafiles.write_cifar10(root, per_batch=1024),
    "2a": lambda root: datafiles.write_epsilon(root, n_train=8000, n_test=400),
    "3a": lambda root: datafiles.write_wikitext2(root, lines=4000),
    "4b": lambda root: datafiles.write_wmt17(root, pairs=4000, valid=20),
}


def run_once(
    http: httpx.Client, task: str, workers: int, steps: int, data_root: Path
) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if task in WRITERS:
        overrides = {"data_root": str(data_root), "max_steps": steps, "eval_every_epochs": 1000}
    spec = {
        "name": f"tp-{task}-{workers}w-{int(time.time())}",
        "benchmark": task,
        "workers": workers,
        "overrides": overrides,
        "resources": {"cpu": max(1, 2 // workers)},
        "max_duration_s": 1800,
    }
    if task in WRITERS:
        # An unreachable goal, so every run trains exactly max_steps (3a: perplexity, lower wins).
        spec["goal"] = {"kind": "custom", "value": -1.0 if task == "3a" else 1e9}
    response = http.post("/api/v1/runs", json=spec)
    response.raise_for_status()
    run_id = response.json()["id"]
    while True:
        run = http.get(f"/api/v1/runs/{run_id}").json()
        if run["state"] in ("succeeded", "failed", "stopped"):
            break
        time.sleep(0.5)
    if run["state"] != "succeeded":
        raise RuntimeError(f"{task} with {workers} workers: {run['state']}: {run['reason']}")
    return http.get(f"/api/v1/runs/{run_id}/result").json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--tasks", nargs="+", default=["digits-mlp", "2a", "1a", "3a", "4b"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_root = Path(tmp) / "datasets"
        for task in args.tasks:
            if task in WRITERS:
                WRITERS[task](data_root)
        settings = Settings(data_dir=Path(tmp) / "master", port=free_port(), admin_token="b")
        rows = []
        with EmbeddedMaster(settings) as master:
            headers = {"Authorization": "Bearer b"}
            with httpx.Client(base_url=master.url, headers=headers, timeout=30) as http:
                for task in args.tasks:
                    one = run_once(http, task, 1, args.steps, data_root)
                    two = run_once(http, task, 2, args.steps, data_root)
                    rows.append((task, one, two))
                    print(f"{task}: done", file=sys.stderr)
    print(f"{'task':12}{'1 worker':>14}{'2 workers':>14}{'speed-up':>10}  time split (2 workers)")
    for task, one, two in rows:
        phases = two["phases"]
        spent = sum(phases.values()) or 1.0
        split = " ".join(f"{k[:4]} {100 * v / spent:.0f}%" for k, v in phases.items())
        ratio = two["samples_per_s"] / one["samples_per_s"] if one["samples_per_s"] else 0.0
        print(
            f"{task:12}{one['samples_per_s']:>10.1f} s/s{two['samples_per_s']:>10.1f} s/s"
            f"{ratio:>9.2f}x  {split}"
        )


if __name__ == "__main__":
    main()
