"""Task 1a on one GPU (figure 7): the mlbench loop against a bare PyTorch loop, the data phase's
share of the step, and the fraction of the card's peak bf16 FLOP/s reached.

Ours: task 1a (ResNet-20, CIFAR-10) as the worker runs it, in this process as a job of one:
the generic training loop with its tracker (CUDA-event phase timing), the metrics client
reporting to a real master (embedded, SQLite) and the goal checked at each evaluation; images/s
is the figure the run reports (training time, evaluation left out). Its images live on the GPU
(``data_on_device``, ``mlbench_core/data/device_resident.py``): each epoch's order is drawn on
the GPU, crop, flip and normalisation run there per batch, no host-to-device copy per step.

Baseline: a textbook loop (``optimizer.zero_grad(); loss.backward(); optimizer.step()``) with
the same model, loader, optimizer settings, batch size, seed and autocast, no tracker, logging
or evaluation. Neither side uses torch.compile or channels_last (task 1a does not).

Also measured in the same run: an 8192^3 bf16 matmul (the card's real peak); achieved FLOP/s =
images/s x 243 MFLOP (the issue's forward + backward cost of one ResNet-20 training image;
torch's FLOP counter is run as a check). To explain the ratio: the mlbench loop with
the tracker synchronising the device at every phase boundary (how it timed phases before), the
bare loop keeping zeroed gradients (``zero_grad(set_to_none=False)``, as the mlbench loop does),
and a torch.profiler window over 20 steps of each loop (kernels and GPU busy time per step).

    python bench/gpu_resnet20.py           # 50,000 images, 1 + 3 epochs per loop, ~2 min
    python bench/gpu_resnet20.py --device cpu --images 640 --matmul-size 256 --threads 1

CIFAR-10 pickle batches are generated in the real format into a temporary folder (the real
loader parses them); throughput does not depend on the pixels.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common
import torch
from gpu_card import counted_flops, datasheet_peak, gpu_description, matmul_tflops
from gpu_loops import MlbenchSide, bare_epochs, note, start_master
from gpu_profile import StepWindow

from mlbench_core.data.cifar10 import load_cifar10, prepare_cifar10
from mlbench_core.tasks.cifar_resnet import CifarResNetTask
from tests.mlbench_core.tasks import datafiles

FLOP_PER_IMAGE = 243e6
"""ResNet-20, one training image, forward + backward (the issue's figure)."""
DATA_SHARE_TARGET = 0.05


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--images", type=int, default=50_000, help="training images generated")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per repetition")
    parser.add_argument("--repeats", type=int, default=3, help="measured repetitions per loop")
    parser.add_argument("--warmup", type=int, default=1, help="dropped rounds")
    parser.add_argument("--batch-size", type=int, default=128, help="task 1a's default: 128")
    parser.add_argument("--precision", default="bf16", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--matmul-size", type=int, default=8192)
    parser.add_argument("--peak-tflops", type=float, default=None, help="datasheet bf16 peak")
    parser.add_argument("--profile-steps", type=int, default=20, help="0: no profile")
    parser.add_argument(
        "--no-diagnostics",
        action="store_true",
        help="skip the variants that explain the ratio (synced tracker, kept gradients)",
    )
    parser.add_argument("--no-master", action="store_true", help="report to no master")
    common.add_output_args(parser)
    args = parser.parse_args()
    if args.images < 5:
        parser.error("--images must be at least 5 (five training batches)")
    return args


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit(
            f"gpu_resnet20: no CUDA device here (torch {torch.__version__}, CUDA build "
            f"{torch.version.cuda}); figure 7 needs a GPU. --device cpu runs a smoke test."
        )
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    gpu = gpu_description(device)
    note(f"device {gpu['device']}, torch {gpu['torch']}, CUDA {gpu['torch_cuda']}")
    with tempfile.TemporaryDirectory(prefix="gpu_resnet20-") as tmp:
        measured = measure(args, device, Path(tmp))
    report(args, device, gpu, measured)


def measure(args: argparse.Namespace, device: torch.device, tmp: Path) -> dict[str, Any]:
    """Everything that runs on the device, in one temporary folder."""
    root = tmp / "datasets"
    note(f"writing {args.images} CIFAR-10 images in the pickle format")
    datafiles.write_cifar10(root, per_batch=args.images // 5, seed=args.seed)
    overrides = {
        "data_root": str(root),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "precision": args.precision,
        "data_on_device": True,
    }
    config = CifarResNetTask.config_from(overrides)
    data = load_cifar10(prepare_cifar10(root)).to(device)
    out: dict[str, Any] = {"reporting": "NullReporter (--no-master)", "runs": {}}
    master = None
    side = MlbenchSide(None, None, root, tmp / "spool", args.seed)
    if not args.no_master:
        try:
            master, executor = start_master(tmp / "master")
            side = MlbenchSide(master.url, executor, root, tmp / "spool", args.seed)
            side.create_run(overrides, device)  # a probe: the master validates the settings
            out["reporting"] = "MetricsClient -> embedded master (SQLite)"
        except Exception as exc:  # missing master dependencies must not cost the GPU run
            out["reporting"] = f"NullReporter (master failed: {type(exc).__name__}: {exc})"
            note(f"WARNING: no master, metrics go nowhere: {exc}")
            side.close()
            side = MlbenchSide(None, None, root, tmp / "spool", args.seed)
            if master is not None:
                master.stop()
                master = None
    try:
        note(f"bf16 matmul {args.matmul_size}^3")
        out["peak"] = matmul_tflops(device, args.matmul_size)
        note(f"measured peak {out['peak']:.1f} TFLOP/s")
        out["counted_flops"] = guarded(lambda: counted_flops(config, device))

        def mlbench(timing: Any, key: str) -> float:
            result = side.run(overrides, device, timing)
            out["runs"].setdefault(key, []).append(result)
            note(f"{key}: {result.samples_per_s:,.0f} images/s")
            return result.samples_per_s

        def bare(key: str, set_to_none: bool) -> float:
            rate = bare_epochs(data, config, device, args.seed, set_to_none=set_to_none)
            note(f"{key}: {rate:,.0f} images/s")
            return rate

        variants = {
            "mlbench": lambda: mlbench("events", "mlbench"),
            "bare": lambda: bare("bare", True),
        }
        if not args.no_diagnostics:  # on a CPU the synced tracker is the same tracker
            variants["mlbench-sync"] = lambda: mlbench("sync", "mlbench-sync")
            variants["bare-keepgrads"] = lambda: bare("bare-keepgrads", False)
        out["samples"] = common.interleave(variants, args.repeats, args.warmup)
        note(f"raw images/s: {json.dumps(out['samples'])}")  # kept even if the report fails
        out["master_check"] = guarded(side.check_last_run)
        if args.profile_steps > 0:
            out["profile"] = guarded(lambda: profile_both(args, side, overrides, data, config))
    finally:
        side.close()
        if master is not None:
            master.stop()
    return out


def guarded(fn: Callable[[], Any]) -> Any:
    """A diagnostic's value, or its error: a side figure must not cost the GPU run."""
    try:
        return fn()
    except Exception as exc:
        note(f"WARNING: {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}"}


def profile_both(
    args: argparse.Namespace, side: MlbenchSide, overrides: dict[str, Any], data: Any, config: Any
) -> dict[str, Any]:
    """Kernels and GPU busy time per step of each loop over the same window of steps."""
    device = data.train_x.device
    steps = -(-len(data.train_y) // args.batch_size)
    first = min(10, steps // 4)
    last = min(first + args.profile_steps, steps - 1)
    if last <= first:
        return {"error": f"too few steps per epoch ({steps}) to profile"}
    note(f"profiling steps {first}..{last - 1} of each loop")
    window = StepWindow(device, first, last)
    one_epoch = config.model_copy(update={"epochs": 1})
    bare_epochs(data, one_epoch, device, args.seed, step_hook=window.at_step)
    window.finish()
    result = {"bare": window.stats()}
    window = StepWindow(device, first, last)
    short = {**overrides, "epochs": 1, "max_steps": last + 1}
    side.run(short, device, "events", step_hook=window.at_step)
    window.finish()
    result["mlbench"] = window.stats()
    return result


def report(
    args: argparse.Namespace, device: torch.device, gpu: dict[str, Any], m: dict[str, Any]
) -> None:
    samples, peak = m["samples"], m["peak"]
    ours, base = common.median(samples["mlbench"]), common.median(samples["bare"])
    datasheet = args.peak_tflops
    if datasheet is None and device.type == "cuda":
        datasheet = datasheet_peak(gpu["device"])

    def flops(rate: float) -> dict[str, Any]:
        achieved = rate * FLOP_PER_IMAGE / 1e12
        step_ms = 1000 * args.batch_size / rate
        return {
            "achieved_tflops": achieved,
            "fraction_of_measured_peak": achieved / peak,
            "fraction_of_datasheet_peak": achieved / datasheet if datasheet else None,
            "step_ms": step_ms,
        }

    split = phase_split(m["runs"]["mlbench"][args.warmup :])
    extra_ours = {"runs": samples["mlbench"], **split, **flops(ours), "metrics": m["reporting"]}
    extra_ours["master_check"] = m.get("master_check")
    extra_base: dict[str, Any] = {"runs": samples["bare"], **flops(base)}
    if "mlbench-sync" in samples:
        extra_ours["tracker_synced_per_phase"] = {
            "images_per_s": common.median(samples["mlbench-sync"]),
            "runs": samples["mlbench-sync"],
            **phase_split(m["runs"]["mlbench-sync"][args.warmup :]),
        }
        extra_base["zero_grad_set_to_none_false"] = {
            "images_per_s": common.median(samples["bare-keepgrads"]),
            "runs": samples["bare-keepgrads"],
        }
    rows = [
        common.Row(
            "mlbench loop, task 1a (tracker, metrics, goal)", "ours", ours, "images/s", extra_ours
        ),
        common.Row(
            "bare PyTorch loop, same model/loader/optimizer", "baseline", base, "images/s",
            extra_base,
        ),
        common.Row(
            f"bf16 matmul {args.matmul_size}^3 (measured peak)", "ceiling", peak, "TFLOP/s",
            {"datasheet_tflops": datasheet},
        ),
    ]  # fmt: skip
    profile = m.get("profile") or {}
    for side, rate in (("mlbench", ours), ("bare", base)):
        busy = profile.get(side, {}).get("gpu_busy_ms_per_step")
        if busy is not None:  # GPU busy time (profiled) over the unprofiled step time
            profile[side]["gpu_busy_fraction"] = busy / flops(rate)["step_ms"]
    common.print_rows(rows)
    share, achieved = split["data_share"], flops(ours)
    print(
        f"data phase {100 * share:.2f}% of the mlbench step; {achieved['achieved_tflops']:.2f} "
        f"TFLOP/s = {100 * achieved['fraction_of_measured_peak']:.2f}% of the measured peak"
    )
    params = {
        "images": 5 * (args.images // 5),
        "epochs_per_repetition": args.epochs,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "batch_size": args.batch_size,
        "precision": args.precision,
        "seed": args.seed,
        "loader": "DeviceResidentLoader (data_on_device: true) on both sides",
        "torch_compile": False,
        "channels_last": False,
        "flop_per_image_issue": FLOP_PER_IMAGE,
        "flop_per_image_counted": m.get("counted_flops"),
        "gpu": gpu,
        "profile": m.get("profile"),
    }
    common.save(
        args,
        "gpu_resnet20",
        "Task 1a on one GPU: mlbench loop vs bare PyTorch loop",
        params,
        rows,
        common.Summary(
            metric="images/s, mlbench loop / bare PyTorch loop (task 1a, one device)",
            ratio=ours / base,
            target="data phase < 5% of the step time",
            met=share < DATA_SHARE_TARGET,
        ),
        notes=f"device {gpu['device']}; metrics: {m['reporting']}",
    )


def phase_split(results: list[Any]) -> dict[str, Any]:
    """The data phase's share of the tracked step time, and ms per step of every phase."""
    totals = [r.phases.model_dump() for r in results]
    shares = [t["data"] / sum(t.values()) for t in totals]
    per_step = {
        name: statistics.median(t[name] / r.steps for t, r in zip(totals, results, strict=True))
        for name in totals[0]
    }
    return {
        "data_share": common.median(shares),
        "data_share_runs": shares,
        "phase_ms_per_step": {name: 1000 * v for name, v in per_step.items()},
        "steps": results[0].steps,
    }


if __name__ == "__main__":
    main()
