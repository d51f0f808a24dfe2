"""digits-mlp: a small real-data training task that reaches its goal in seconds on CPUs.

Data: scikit-learn's ``load_digits`` (1797 8x8 grey images of the digits 0-9, bundled with
scikit-learn, so no download). Model: a one-hidden-layer MLP. Optimiser: synchronous data-parallel
SGD written out explicitly - every rank computes gradients on its shard of the batch, the flat
gradient buffer is all-reduce-averaged, and each rank applies the same momentum-SGD update, so
the replicas stay identical without DistributedDataParallel.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from mlbench_core import distributed as mdist
from mlbench_core.tasks import register
from mlbench_core.tasks.base import GoalSpec, Task, TaskContext
from mlbench_core.wire import RunResult

# Fixed, independent of the run's seed: every run (and every rank) validates on the same images,
# so accuracies of different runs are comparable.
SPLIT_SEED = 20_190_601
VAL_FRACTION = 0.2
N_FEATURES = 64
N_CLASSES = 10


class DigitsConfig(BaseModel):
    """Settings of digits-mlp."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(
        30,
        ge=1,
        le=1_000_000,
        description="Most epochs to train; training ends earlier at the goal.",
    )
    batch_size: int = Field(32, ge=1, le=4096, description="Samples per step on each worker.")
    lr: float = Field(0.1, gt=0, le=10, description="SGD learning rate.")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (0 disables it).")
    hidden: int = Field(64, ge=1, le=8192, description="Width of the hidden layer.")
    weight_decay: float = Field(0.0, ge=0, le=1, description="L2 penalty added to the gradient.")
    log_every: int = Field(
        5, ge=1, le=100_000, description="Steps between train/loss points (global average)."
    )
    eval_every_epochs: int = Field(
        1, ge=1, le=10_000, description="Epochs between validations; the goal is checked there."
    )


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_val, y_val): stratified 80/20 split, features scaled to [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)  # pixel values are 0..16
    y = digits.target.astype(np.int64)
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=VAL_FRACTION, stratify=y, random_state=SPLIT_SEED
    )
    return x_train, y_train, x_val, y_val


def shard_indices(n: int, epoch: int, seed: int, rank: int, world_size: int) -> torch.Tensor:
    """This rank's share of epoch ``epoch``'s shuffled indices (as DistributedSampler does).

    Every rank draws the same permutation (seed + epoch), pads it by repeating its head so it
    divides evenly, and keeps every world_size-th index from its rank on: the shards are
    disjoint (up to the padding) and equally long, so every rank takes the same number of steps
    and meets the others at every all-reduce.
    """
    generator = torch.Generator().manual_seed(seed + epoch)
    order = torch.randperm(n, generator=generator)
    total = math.ceil(n / world_size) * world_size
    if total > n:
        order = torch.cat([order, order[: total - n]])
    return order[rank:total:world_size]


def build_model(hidden: int, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)  # same initial weights on every rank (rank 0's are broadcast anyway)
    return nn.Sequential(nn.Linear(N_FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, N_CLASSES))


def flatten_into(
    params: list[nn.Parameter], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move parameters and gradients into two flat buffers; the tensors become views of them.

    One contiguous gradient buffer means one all-reduce per step, and with ``p.grad`` a view,
    backward accumulates straight into it (no copy in, no copy out). The update is three vector
    operations on the flat parameter buffer.
    """
    flat_param = torch.cat([p.detach().reshape(-1) for p in params]).to(device)
    flat_grad = torch.zeros_like(flat_param)
    offset = 0
    for p in params:
        n = p.numel()
        p.data = flat_param[offset : offset + n].view_as(p)
        p.grad = flat_grad[offset : offset + n].view_as(p)
        offset += n
    return flat_param, flat_grad


@register
class DigitsMLPTask(Task):
    id = "digits-mlp"
    title = "Digits MLP (quick real-data training)"
    description = (
        "One-hidden-layer MLP on scikit-learn's 8x8 digits (1797 images, 10 classes, bundled: "
        "no download), trained with explicit all-reduce SGD with momentum. Goal: validation "
        "accuracy 0.96 (light: 0.90). Two CPU workers reach it in seconds."
    )
    Config = DigitsConfig
    goal: GoalSpec | None = GoalSpec(
        metric="val/accuracy", higher_is_better=True, full=0.96, light=0.90
    )

    def run(self, ctx: TaskContext, config: BaseModel) -> RunResult:
        assert isinstance(config, DigitsConfig)
        device = ctx.device
        rank, world = ctx.rank, ctx.world_size
        tracker = ctx.tracker

        x_train_np, y_train_np, x_val_np, y_val_np = load_split()
        x_train = torch.from_numpy(x_train_np).to(device)
        y_train = torch.from_numpy(y_train_np).to(device)
        x_val = torch.from_numpy(x_val_np).to(device)
        y_val = torch.from_numpy(y_val_np).to(device)
        n_train = len(x_train)

        model = build_model(config.hidden, ctx.seed).to(device)
        params = list(model.parameters())
        flat_param, flat_grad = flatten_into(params, device)
        if mdist.is_initialized():
            dist.broadcast(flat_param, src=0)
        momentum_buf = torch.zeros_like(flat_param)

        steps_per_epoch = math.ceil(math.ceil(n_train / world) / config.batch_size)
        total_steps = steps_per_epoch * config.epochs
        target = ctx.goal_value

        last_acc: float | None = None
        last_val_loss: float | None = None
        epochs_done = 0.0
        eval_time = 0.0
        stop = False
        window_loss = torch.zeros((), dtype=torch.float64, device=device)
        window_n = 0
        window_start = time.perf_counter()
        window_samples = 0
        step = 0

        tracker.start()
        for epoch in range(config.epochs):
            shard = shard_indices(n_train, epoch, ctx.seed, rank, world).to(device)
            for i in range(steps_per_epoch):
                tracker.start_step()
                with tracker.phase("data"):
                    idx = shard[i * config.batch_size : (i + 1) * config.batch_size]
                    xb = x_train.index_select(0, idx)
                    yb = y_train.index_select(0, idx)
                with tracker.phase("forward"):
                    loss = F.cross_entropy(model(xb), yb)
                with tracker.phase("backward"):
                    flat_grad.zero_()
                    loss.backward()
                    if step == 0:
                        _check_grad_views(params, flat_grad)
                with tracker.phase("communication"):
                    if world > 1:
                        dist.all_reduce(flat_grad)
                        flat_grad.div_(world)
                with tracker.phase("optimizer"), torch.no_grad():
                    update = flat_grad
                    if config.weight_decay:
                        update = update.add(flat_param, alpha=config.weight_decay)
                    if config.momentum:
                        # buf = momentum * buf + g; on step one buf is zero, so buf = g
                        # exactly as torch.optim.SGD starts.
                        momentum_buf.mul_(config.momentum).add_(update)
                        update = momentum_buf
                    flat_param.add_(update, alpha=-config.lr)
                step += 1
                with tracker.phase("metrics"):
                    window_loss += loss.detach()
                    window_n += 1
                    window_samples += len(idx)
                    if step % config.log_every == 0:
                        stop = self._log_window(
                            ctx,
                            window_loss,
                            window_n,
                            window_samples,
                            window_start,
                            step,
                            epoch + (i + 1) / steps_per_epoch,
                            total_steps,
                        )
                        window_loss.zero_()
                        window_n = 0
                        window_samples = 0
                        window_start = time.perf_counter()
                tracker.end_step(samples=len(idx))
                if stop:
                    epochs_done = epoch + (i + 1) / steps_per_epoch
                    break
            if stop:
                break
            epochs_done = float(epoch + 1)

            last_epoch = epoch + 1 == config.epochs
            if (epoch + 1) % config.eval_every_epochs == 0 or last_epoch:
                began = time.perf_counter()
                last_acc, last_val_loss, stop = _evaluate(
                    model, x_val, y_val, rank, world, ctx.should_stop()
                )
                eval_time += time.perf_counter() - began
                if rank == 0:
                    ctx.log("val/accuracy", last_acc, step=step, epoch=epochs_done)
                    ctx.log("val/loss", last_val_loss, step=step, epoch=epochs_done)
                # The accuracy is global, so every rank reaches the same verdict here.
                if target is not None and self.goal is not None:
                    reached = tracker.check_goal(self.goal.reached(last_acc, target))
                    if reached:
                        stop = True
            else:
                stop = mdist.any_rank(ctx.should_stop())
            ctx.progress(1.0 if stop else epochs_done / config.epochs, step=step, epoch=epochs_done)
            if stop:
                break

        extra: dict[str, float | str | bool] = {
            "eval_time_s": eval_time,
            "steps_per_epoch": steps_per_epoch,
            "global_batch_size": config.batch_size * world,
        }
        if last_val_loss is not None:
            extra["val_loss"] = last_val_loss
        if tracker.goal_step is not None:
            extra["goal_step"] = tracker.goal_step
        return RunResult(
            goal_reached=tracker.time_to_goal is not None,
            goal_metric=self.goal.metric if self.goal else None,
            goal_value=target,
            time_to_goal_s=tracker.time_to_goal,
            final_value=last_acc,
            samples_per_s=tracker.samples_per_s(world),
            total_time_s=tracker.elapsed,
            steps=tracker.steps,
            epochs=epochs_done,
            phases=tracker.phase_times(),
            extra=extra,
        )

    @staticmethod
    def _log_window(
        ctx: TaskContext,
        window_loss: torch.Tensor,
        window_n: int,
        window_samples: int,
        window_start: float,
        step: int,
        epoch: float,
        total_steps: int,
    ) -> bool:
        """Log the global mean train loss and throughput of the last window; agree on stopping.

        The stop flag rides in the same all-reduce as the loss: one collective instead of two.
        """
        packed = torch.tensor(
            [float(window_loss), float(window_n), 1.0 if ctx.should_stop() else 0.0],
            dtype=torch.float64,
        )
        packed = mdist.global_sum(packed)
        seconds = time.perf_counter() - window_start
        if ctx.rank == 0:
            ctx.log("train/loss", float(packed[0] / packed[1]), step=step, epoch=epoch)
            if seconds > 0:
                ctx.log(
                    "train/samples_per_s",
                    window_samples * ctx.world_size / seconds,
                    step=step,
                    epoch=epoch,
                )
        ctx.progress(step / total_steps, step=step, epoch=epoch)
        return bool(packed[2] > 0)


def _check_grad_views(params: list[nn.Parameter], flat_grad: torch.Tensor) -> None:
    # Autograd accumulates in place into an existing .grad; should it ever replace the tensor,
    # the all-reduce would average a stale buffer. Fail loudly rather than train wrongly.
    lo = flat_grad.data_ptr()
    hi = lo + flat_grad.numel() * flat_grad.element_size()
    for p in params:
        if p.grad is None or not lo <= p.grad.data_ptr() < hi:
            raise RuntimeError("gradients are no longer views of the flat gradient buffer")


def _evaluate(
    model: nn.Module,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    rank: int,
    world: int,
    stop_here: bool,
) -> tuple[float, float, bool]:
    """(accuracy, mean loss, any rank wants to stop) over the whole validation set.

    Each rank scores every world-th image; correct counts, loss sums and counts are summed
    across ranks, with the stop flag in the same all-reduce.
    """
    idx = torch.arange(rank, len(x_val), world, device=x_val.device)
    with torch.no_grad():
        logits = model(x_val.index_select(0, idx))
        labels = y_val.index_select(0, idx)
        loss_sum = F.cross_entropy(logits, labels, reduction="sum")
        correct = (logits.argmax(dim=1) == labels).sum()
    packed = torch.tensor(
        [float(correct), float(loss_sum), float(len(idx)), 1.0 if stop_here else 0.0],
        dtype=torch.float64,
    )
    packed = mdist.global_sum(packed)
    count = float(packed[2])
    return float(packed[0]) / count, float(packed[1]) / count, bool(packed[3] > 0)
