"""The card figure 7 runs on: its description, the bf16 matmul rate it really sustains, its
datasheet peak, and the FLOPs of one ResNet-20 training step by torch's own counter."""

from __future__ import annotations

import shutil
import subprocess
import time
from typing import Any

import torch
import torch.nn.functional as F
from gpu_loops import autocast, sync
from pydantic import BaseModel

from mlbench_core.models.resnet20 import ResNetCIFAR

# Dense bf16 tensor-core peaks from the datasheets, TFLOP/s; the first name contained wins.
DATASHEET_BF16_TFLOPS = (
    ("H200 NVL", 835.0),
    ("H200", 989.0),
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # SXM ("NVIDIA H100 80GB HBM3")
    ("A100", 312.0),
)


def datasheet_peak(card: str) -> float | None:
    return next((tflops for name, tflops in DATASHEET_BF16_TFLOPS if name in card), None)


def matmul_tflops(device: torch.device, n: int, seconds: float = 1.0) -> float:
    """Best of 3 timings of back-to-back ``n`` x ``n`` bf16 matmuls, in TFLOP/s."""
    a = torch.randn(n, n, device=device).to(torch.bfloat16)
    b = torch.randn(n, n, device=device).to(torch.bfloat16)
    out = torch.empty(n, n, device=device, dtype=torch.bfloat16)

    def timed(count: int) -> float:
        sync(device)
        began = time.perf_counter()
        for _ in range(count):
            torch.matmul(a, b, out=out)
        sync(device)
        return time.perf_counter() - began

    timed(2)  # warm-up: cuBLAS picks its kernel
    once = timed(1)
    count = max(1, min(5000, int(seconds / max(once, 1e-6))))
    best = min(timed(count) for _ in range(3))
    return 2.0 * n**3 * count / best / 1e12


def counted_flops(config: BaseModel, device: torch.device, batch: int = 8) -> float:
    """FLOPs per image of one training step (forward + backward) by torch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    c: Any = config
    model = ResNetCIFAR(10, c.blocks_per_stage, c.width, c.shortcut).to(device)
    images = torch.randn(batch, 3, 32, 32, device=device)
    labels = torch.zeros(batch, dtype=torch.long, device=device)
    with FlopCounterMode(display=False) as counter:
        with autocast(device, c.precision):
            loss = F.cross_entropy(model(images), labels)
        loss.backward()
    return counter.get_total_flops() / batch


def gpu_description(device: torch.device) -> dict[str, Any]:
    """Card, driver, CUDA and cuDNN versions (``nvidia-smi`` where present)."""
    info: dict[str, Any] = {
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }
    if device.type != "cuda":
        return {"device": "cpu", **info}
    props = torch.cuda.get_device_properties(device)
    info |= {
        "device": torch.cuda.get_device_name(device),
        "compute_capability": f"{props.major}.{props.minor}",
        "multiprocessors": props.multi_processor_count,
        "memory_gib": round(props.total_memory / 2**30, 1),
    }
    smi = shutil.which("nvidia-smi")
    if smi:
        query = "--query-gpu=name,driver_version,power.limit,clocks.max.sm"
        try:
            done = subprocess.run(
                [smi, query, "--format=csv,noheader", f"--id={device.index or 0}"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            fields = [f.strip() for f in done.stdout.strip().split(",")]
            if done.returncode == 0 and len(fields) == 4:
                keys = ("smi_name", "driver", "power_limit", "max_sm_clock")
                info |= dict(zip(keys, fields, strict=True))
        except (OSError, subprocess.SubprocessError):
            pass
    return info
