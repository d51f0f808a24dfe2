"""Training-loop overhead (figure 1): the mlbench worker against a bare PyTorch DDP loop.

Ours: the real worker (``worker.main.run``, as ``torch.distributed.run`` starts it) trains task
1a (ResNet-20) through the generic loop (``mlbench_core/train/loop.py``) with its tracker, the
metrics client reporting to a real master (embedded, SQLite) and the goal checked at the
evaluation, with the ``ddp`` aggregator. Its samples/s is the one the run reports to the master
(global training samples over rank 0's training time; the evaluation is left out).

Baseline: a textbook loop over ``torch.nn.parallel.DistributedDataParallel`` and
``torch.optim.SGD`` with the same model, seed, shards, augmentation, batch size, optimizer
settings, DDP settings and thread count, timed on rank 0 from its first to its last step.

Both run in the same 2 gloo processes on this machine, alternating (mlbench, bare, bare,
mlbench, ...), on CIFAR-10 data generated in the real on-disk format (throughput depends only on
the shapes). The rows hold each variant's median; the ratio is the median over rounds of
ours / bare within the round (the two runs of a round are adjacent in time, so slow drifts of the
machine's load cancel; the ratio of the medians is kept in the parameters). Target: >= 0.98.

    .venv/bin/python bench/loop_overhead.py [--steps 15] [--repeats 11] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import queue
import tempfile
import time
from pathlib import Path
from typing import Any

import common
import httpx
from hold_master import HoldExecutor
from loop_ranks import BareRun, MlbenchRun, serve

from master.server import EmbeddedMaster
from master.settings import Settings
from tests.conftest import free_port
from tests.mlbench_core.tasks import datafiles

WORLD = 2
SEED = 42
ADMIN = "bench"
# Task 1a's optimizer settings (CifarResNetConfig defaults).
LR, MOMENTUM, WEIGHT_DECAY = 0.02, 0.9, 1e-4


class Ranks:
    """``WORLD`` spawned processes serving ``loop_ranks`` commands."""

    def __init__(self, timeout_s: float) -> None:
        ctx = mp.get_context("spawn")
        self.timeout_s = timeout_s
        self.results: Any = ctx.Queue()
        self.commands: list[Any] = [ctx.Queue() for _ in range(WORLD)]
        self.procs = [
            ctx.Process(target=serve, args=(r, WORLD, self.commands[r], self.results), daemon=True)
            for r in range(WORLD)
        ]
        for proc in self.procs:
            proc.start()

    def run(self, kind: str, job: MlbenchRun | BareRun) -> list[float]:
        """Send ``job`` to every rank; their answers in rank order."""
        for commands in self.commands:
            commands.put((kind, job))
        answers: dict[int, float] = {}
        deadline = time.monotonic() + self.timeout_s
        while len(answers) < WORLD:
            try:
                rank, _kind, value, error = self.results.get(timeout=1.0)
            except queue.Empty:
                dead = [p.pid for p in self.procs if not p.is_alive()]
                if dead or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{kind} run: rank processes {dead or 'timed out'}"
                    ) from None
                continue
            if error is not None:
                raise RuntimeError(f"{kind} run failed on rank {rank}:\n{error}")
            answers[rank] = value
        return [answers[r] for r in range(WORLD)]

    def close(self) -> None:
        for commands in self.commands:
            commands.put(None)
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():  # the worker's SIGTERM handler stays installed: SIGKILL
                proc.kill()
                proc.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15, help="training steps per repetition")
    parser.add_argument("--repeats", type=int, default=11, help="measured repetitions per variant")
    parser.add_argument("--warmup", type=int, default=1, help="dropped rounds")
    parser.add_argument("--batch-size", type=int, default=128, help="images per rank and step")
    parser.add_argument("--width", type=int, default=16, help="ResNet width (16: ResNet-20)")
    parser.add_argument(
        "--images", type=int, default=1024, help="images per generated CIFAR file (5 train files)"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per repetition")
    common.add_output_args(parser)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_root = Path(tmp) / "datasets"
        datafiles.write_cifar10(data_root, per_batch=args.images)
        settings = Settings(data_dir=Path(tmp) / "master", port=free_port(), admin_token=ADMIN)
        executor = HoldExecutor()
        results: dict[str, list[dict[str, Any]]] = {"mlbench": [], "bare": []}
        with EmbeddedMaster(settings, executors={"local": executor}) as master:
            http = httpx.Client(
                base_url=master.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30
            )
            ranks = Ranks(args.timeout)
            try:

                def mlbench() -> float:
                    run = _mlbench_once(http, executor, ranks, args, data_root, Path(tmp))
                    results["mlbench"].append(run)
                    return float(run["samples_per_s"])

                def bare() -> float:
                    job = BareRun(
                        port=free_port(),
                        data_root=str(data_root),
                        steps=args.steps,
                        batch_size=args.batch_size,
                        width=args.width,
                        seed=SEED,
                        lr=LR,
                        momentum=MOMENTUM,
                        weight_decay=WEIGHT_DECAY,
                        threads=1,
                    )
                    return ranks.run("bare", job)[0]

                samples = common.interleave(
                    {"mlbench": mlbench, "bare": bare}, args.repeats, args.warmup
                )
            finally:
                ranks.close()
                http.close()

    ours, base = common.median(samples["mlbench"]), common.median(samples["bare"])
    last = results["mlbench"][-1]
    rows = [
        common.Row(
            "mlbench worker (loop, tracker, metrics client, goal; ddp)",
            "ours",
            ours,
            "samples/s",
            {"samples": samples["mlbench"], "phases_s": last["phases"], "steps": last["steps"]},
        ),
        common.Row(
            "bare PyTorch DDP loop",
            "baseline",
            base,
            "samples/s",
            {"samples": samples["bare"]},
        ),
    ]
    common.print_rows(rows)
    pairs = [a / b for a, b in zip(samples["mlbench"], samples["bare"], strict=True)]
    ratio = common.median(pairs)
    params = {
        "task": "1a",
        "aggregator": "ddp",
        "workers": WORLD,
        "backend": "gloo",
        "threads_per_worker": 1,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "width": args.width,
        "train_images": 5 * args.images,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "round_ratios": pairs,
        "ratio_of_medians": ours / base,
    }
    summary = common.Summary(
        "training samples/s, mlbench / bare DDP (median of rounds)", ratio, ">= 0.98", ratio >= 0.98
    )
    title = "Training-loop overhead (task 1a, 2 gloo workers)"
    common.save(args, "loop_overhead", title, params, rows, summary)


def _mlbench_once(
    http: httpx.Client,
    executor: HoldExecutor,
    ranks: Ranks,
    args: argparse.Namespace,
    data_root: Path,
    tmp: Path,
) -> dict[str, Any]:
    """Create a run in the master, run its two workers, return the result they reported."""
    overrides = {
        "data_root": str(data_root),
        "max_steps": args.steps,
        "batch_size": args.batch_size,
        "width": args.width,
        "aggregator": "ddp",
        "eval_every_epochs": 1000,  # evaluated (goal checked) once, after the last step
    }
    spec = {
        "name": f"loop-{len(executor.launches)}",
        "benchmark": "1a",
        "workers": WORLD,
        "seed": SEED,
        "overrides": overrides,
        "resources": {"cpu": 1},
        "goal": {"kind": "custom", "value": 2.0},  # unreachable: exactly max_steps steps
        "max_duration_s": 3600,
    }
    http.post("/api/v1/runs", json=spec).raise_for_status()
    launch = executor.launches[-1]
    job = MlbenchRun(
        spec_json=launch.spec.model_dump_json(),
        api_url=launch.api_url,
        run_id=launch.run_id,
        token=launch.token,
        port=free_port(),
        data_dir=str(tmp / "worker"),
    )
    codes = ranks.run("mlbench", job)
    if any(codes):
        raise RuntimeError(f"worker exit codes {codes}")
    run = http.get(f"/api/v1/runs/{launch.run_id}").json()
    if run["state"] != "succeeded":
        raise RuntimeError(f"run {launch.run_id}: {run['state']}: {run.get('reason')}")
    return http.get(f"/api/v1/runs/{launch.run_id}/result").json()


if __name__ == "__main__":
    main()
