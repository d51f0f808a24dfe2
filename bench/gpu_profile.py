"""Where figure 7's step time goes: kernels launched and GPU busy time per step of a loop, and
the host operations that cost the most, from ``torch.profiler`` over a window of steps."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile


class StepWindow:
    """Profiles steps ``first`` .. ``last - 1`` of a loop that calls ``at_step(i)`` before each
    step ``i``; the device is synchronised at both ends so the window holds its own kernels."""

    def __init__(self, device: torch.device, first: int, last: int) -> None:
        self.device = device
        self.first, self.last = first, last
        activities = [ProfilerActivity.CPU]
        if device.type == "cuda":
            activities.append(ProfilerActivity.CUDA)
        self.profiler = profile(activities=activities)
        self.state = "waiting"
        self.wall = 0.0
        self._began = 0.0

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def at_step(self, step: int) -> None:
        if step == self.first and self.state == "waiting":
            self._sync()
            self.profiler.start()
            self.state = "on"
            self._began = time.perf_counter()
        elif step == self.last and self.state == "on":
            self.finish()

    def finish(self) -> None:
        if self.state != "on":
            return
        self._sync()
        self.wall = time.perf_counter() - self._began
        self.profiler.stop()
        self.state = "done"

    def stats(self, top: int = 8) -> dict[str, Any]:
        """Per step: kernels, GPU busy ms, host ms (profiled, so slower than unprofiled)."""
        if self.state != "done":
            return {"error": f"profile window {self.first}..{self.last} not completed"}
        steps = self.last - self.first
        events = self.profiler.events()
        kernels = [e for e in events if e.device_type == DeviceType.CUDA]
        busy_us = sum(e.time_range.elapsed_us() for e in kernels)
        host = [a for a in self.profiler.key_averages() if a.device_type == DeviceType.CPU]
        host.sort(key=lambda a: a.self_cpu_time_total, reverse=True)
        return {
            "steps": steps,
            "kernels_per_step": len(kernels) / steps,
            "gpu_busy_ms_per_step": busy_us / 1000 / steps,
            "profiled_step_ms": 1000 * self.wall / steps,
            "top_host_ops_self_ms_per_step": {
                a.key: round(a.self_cpu_time_total / 1000 / steps, 4) for a in host[:top]
            },
        }
