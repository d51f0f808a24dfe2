"""The training loop shared by the reference tasks (1a, 2a, 3a, 4b).

One step, each part timed as a tracker phase (the order is the one ``optim/base.py`` fixes)::

    data           next batch, moved to the device
    forward        loss (under autocast on GPUs when asked)
    backward       zero_grad, loss.backward()
    communication  aggregator.after_backward(model)
    optimizer      unscale (fp16), trainable.before_optimizer() (clipping), optimizer.step(),
                   scheduler.step()
    communication  aggregator.after_step(model)
    metrics        window sums; every log_every steps one all-reduce for the logged figures

Every ``eval_every_epochs`` (and after the last step) the whole validation set is scored; the
goal is checked on that global value, so every rank takes the same decision. A stop request
(time budget) is agreed on in the same all-reduces, so ranks always leave together.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from mlbench_core import distributed as mdist
from mlbench_core.optim import WarmupReduceLROnPlateau
from mlbench_core.optim.base import Aggregator
from mlbench_core.tasks.base import GoalSpec, TaskContext
from mlbench_core.train.config import TrainConfig
from mlbench_core.train.setup import LoopSettings, settings_of
from mlbench_core.train.trainable import Trainable
from mlbench_core.wire import RunResult

_AMP = {"fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class _Window:
    """Sums since the last logged point (on this rank)."""

    loss: torch.Tensor
    steps: int = 0
    samples: int = 0
    tokens: int = 0
    bytes: int = 0
    started: float = 0.0

    def reset(self) -> None:
        self.loss.zero_()
        self.steps = self.samples = self.tokens = self.bytes = 0
        self.started = time.perf_counter()


class TrainingLoop:
    """Runs a ``Trainable`` to its goal, its epoch limit or a stop request."""

    def __init__(
        self,
        ctx: TaskContext,
        trainable: Trainable,
        *,
        train_model: nn.Module,
        aggregator: Aggregator,
        scheduler: LRScheduler | ReduceLROnPlateau | None,
        settings: LoopSettings,
        goal: GoalSpec | None,
    ) -> None:
        self.ctx = ctx
        self.trainable = trainable
        self.train_model = train_model
        self.aggregator = aggregator
        self.scheduler = scheduler
        self.settings = settings
        self.goal = goal
        self.steps_per_epoch = trainable.steps_per_epoch
        if self.steps_per_epoch < 1:
            raise ValueError("an epoch must have at least one step")
        total = settings.epochs * self.steps_per_epoch
        self.total_steps = min(total, settings.max_steps) if settings.max_steps else total
        self.eval_interval = max(1, round(settings.eval_every_epochs * self.steps_per_epoch))
        cuda = ctx.device.type == "cuda"
        self.amp_dtype = _AMP.get(settings.precision) if cuda else None
        # Loss scaling only for fp16: bf16 has float32's exponent range.
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.step = 0
        self.last_metrics: dict[str, float] = {}
        self.final_value: float | None = None
        self.best_value: float | None = None
        self.epochs_to_goal: float | None = None
        self.eval_time = 0.0
        self.samples = 0
        self.tokens = 0
        self._last_samples = 0
        # A plain ReduceLROnPlateau takes only evaluations; every other scheduler (and the
        # warmup of WarmupReduceLROnPlateau) ticks once per optimizer step.
        self._ticks = scheduler is not None and (
            not isinstance(scheduler, ReduceLROnPlateau)
            or isinstance(scheduler, WarmupReduceLROnPlateau)
        )

    # ------------------------------------------------------------------ public

    def run(self) -> RunResult:
        tracker = self.ctx.tracker
        window = _Window(torch.zeros((), dtype=torch.float64, device=self.ctx.device))
        tracker.start()
        window.reset()
        stop = False
        epoch = 0
        while not stop and self.step < self.total_steps:
            batches = iter(self.trainable.batches(epoch))
            for _ in range(self.steps_per_epoch):
                if self.step >= self.total_steps:
                    break
                self._train_step(batches, window)
                with tracker.phase("metrics"):
                    if self.step % self.settings.log_every == 0:
                        stop = self._log_window(window)
                tracker.end_step(samples=self._last_samples)
                if self.step % self.eval_interval == 0 or self.step == self.total_steps:
                    stop = self._evaluate() or stop
                if stop:
                    break
            epoch += 1
        if window.steps:
            # The tail since the last point; every rank ends at the same step, so all join.
            self._log_window(window, final=True)
        return self._result()

    @property
    def epochs_done(self) -> float:
        return self.step / self.steps_per_epoch

    # ------------------------------------------------------------------ one step

    def _train_step(self, batches: Iterator[Any], window: _Window) -> None:
        tracker, trainable, model = self.ctx.tracker, self.trainable, self.train_model
        optimizer = trainable.optimizer
        tracker.start_step()
        self.aggregator.begin_step()
        with tracker.phase("data"):
            try:
                batch = next(batches)
            except StopIteration:
                raise RuntimeError(
                    f"the data ran out after step {self.step}: an epoch promised "
                    f"{self.steps_per_epoch} steps"
                ) from None
            batch = trainable.to_device(batch, self.ctx.device)
        model.train()
        with tracker.phase("forward"), self._autocast():
            out = trainable.loss(model, batch)
        with tracker.phase("backward"):
            # None, not zeros: backward then writes each gradient instead of adding to a zeroed
            # one (a zeroing and an add kernel per parameter less; aggregators use grads_of).
            optimizer.zero_grad(set_to_none=True)
            loss = out.loss if self.scaler is None else self.scaler.scale(out.loss)
            loss.backward()
        with tracker.phase("communication"):
            self.aggregator.after_backward(model)
        with tracker.phase("optimizer"):
            if self.scaler is not None:
                self.scaler.unscale_(optimizer)  # clipping must see true gradients
            trainable.before_optimizer()
            if self.scaler is not None:
                self.scaler.step(optimizer)
                self.scaler.update()
            else:
                optimizer.step()
            trainable.after_optimizer()
            if self._ticks:
                assert self.scheduler is not None
                self.scheduler.step()
        with tracker.phase("communication"):
            self.aggregator.after_step(model)
        self.step += 1
        with tracker.phase("metrics"):
            window.loss += out.loss.detach().double()
            window.steps += 1
            window.samples += out.samples
            window.tokens += out.tokens
            window.bytes += self.aggregator.last_step_bytes
            self.samples += out.samples
            self.tokens += out.tokens
            self._last_samples = out.samples

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.amp_dtype)

    def _log_window(self, window: _Window, final: bool = False) -> bool:
        """Log the window's global figures; returns the agreed stop flag.

        The stop request travels in the same all-reduce as the figures: one collective.
        """
        seconds = time.perf_counter() - window.started
        packed = torch.tensor(
            [
                float(window.loss),
                window.steps,
                window.samples,
                window.tokens,
                window.bytes,
                1.0 if self.ctx.should_stop() else 0.0,
            ],
            dtype=torch.float64,
        )
        packed = mdist.global_sum(packed)
        world = self.ctx.world_size
        loss, steps, samples, tokens, nbytes, stop = packed.tolist()
        step, epoch = self.step, self.epochs_done
        log = self.ctx.log
        if self.ctx.rank == 0 and steps > 0:
            log("train/loss", loss / steps, step=step, epoch=epoch)
            log("train/lr", self._lr(), step=step, epoch=epoch)
            log("train/bytes_per_step", nbytes / (steps / world), step=step, epoch=epoch)
            if seconds > 0:
                log("train/samples_per_s", samples / seconds, step=step, epoch=epoch)
                if tokens:
                    log("train/tokens_per_s", tokens / seconds, step=step, epoch=epoch)
        done = final or self.step >= self.total_steps
        self.ctx.progress(1.0 if done else self.step / self.total_steps, step=step, epoch=epoch)
        window.reset()
        return stop > 0

    def _lr(self) -> float:
        return float(self.trainable.optimizer.param_groups[0]["lr"])

    # ------------------------------------------------------------------ evaluation and goal

    def _evaluate(self) -> bool:
        """Score the validation set, check the goal; True when training should end."""
        if self.ctx.device.type == "cuda":
            # Training kernels still queued are training time, not evaluation time.
            torch.cuda.synchronize(self.ctx.device)
        began = time.perf_counter()
        self.trainable.model.eval()
        with torch.no_grad(), self._autocast():
            metrics = self.trainable.evaluate()
        self.trainable.model.train()
        self.eval_time += time.perf_counter() - began
        self.last_metrics = metrics
        step, epoch = self.step, self.epochs_done
        if self.ctx.rank == 0:
            for name, value in metrics.items():
                self.ctx.log(name, value, step=step, epoch=epoch)
        reached = False
        if self.goal is not None:
            if self.goal.metric not in metrics:
                raise RuntimeError(
                    f"evaluation gave {sorted(metrics)} but not the goal metric {self.goal.metric}"
                )
            value = metrics[self.goal.metric]
            self.final_value = value
            if self.best_value is None or self.goal.reached(value, self.best_value):
                self.best_value = value
            target = self.ctx.goal_value
            if target is not None and math.isfinite(value):
                was = self.ctx.tracker.time_to_goal is not None
                reached = self.ctx.tracker.check_goal(self.goal.reached(value, target))
                if reached and not was:
                    self.epochs_to_goal = epoch
        if isinstance(self.scheduler, ReduceLROnPlateau):
            name = self.settings.plateau_metric or (self.goal.metric if self.goal else None)
            if name is None or name not in metrics:
                raise RuntimeError(f"evaluation gave no {name} for the plateau scheduler")
            self.scheduler.step(metrics[name])
        stop = mdist.any_rank(self.ctx.should_stop())
        done = reached or stop or self.step >= self.total_steps
        self.ctx.progress(1.0 if done else step / self.total_steps, step=step, epoch=epoch)
        return reached or stop

    # ------------------------------------------------------------------ result

    def _result(self) -> RunResult:
        tracker = self.ctx.tracker
        elapsed = tracker.elapsed
        totals = mdist.global_sum(
            torch.tensor(
                [self.aggregator.bytes_sent, self.samples, self.tokens], dtype=torch.float64
            )
        ).tolist()
        nbytes, samples, tokens = totals
        train_time = max(elapsed - self.eval_time, 0.0)
        extra: dict[str, float | str | bool] = {
            "aggregator": type(self.aggregator).name,
            "eval_time_s": self.eval_time,
            "steps_per_epoch": self.steps_per_epoch,
            "bytes_per_step": nbytes / self.step if self.step else 0.0,
        }
        if tokens and train_time > 0:
            extra["tokens_per_s"] = tokens / train_time
        for name, value in self.last_metrics.items():
            if math.isfinite(value):
                extra[name] = value
        if tracker.goal_step is not None:
            extra["goal_step"] = tracker.goal_step

        def finite(value: float | None) -> float | None:
            return value if value is not None and math.isfinite(value) else None

        return RunResult(
            goal_reached=tracker.time_to_goal is not None,
            goal_metric=self.goal.metric if self.goal else None,
            goal_value=self.ctx.goal_value,
            time_to_goal_s=tracker.time_to_goal,
            final_value=finite(self.final_value),
            # Training throughput: evaluation time is left out (it is reported on its own).
            samples_per_s=samples / train_time if train_time > 0 else 0.0,
            total_time_s=elapsed,
            steps=tracker.steps,
            epochs=self.epochs_done,
            epochs_to_goal=self.epochs_to_goal,
            best_value=finite(self.best_value),
            bytes_communicated=int(nbytes),
            phases=tracker.phase_times(),
            extra=extra,
        )


def run_training(
    ctx: TaskContext,
    config: TrainConfig,
    trainable: Trainable,
    train_model: nn.Module,
    aggregator: Aggregator,
    scheduler: LRScheduler | ReduceLROnPlateau | None,
    goal: GoalSpec | None,
    plateau_metric: str | None = None,
) -> RunResult:
    """Train ``trainable`` in a ``TrainingLoop`` with the loop settings of ``config``.

    ``train_model`` and ``aggregator`` are what ``make_communication`` gave; ``plateau_metric``
    is the metric a reduce-on-plateau ``scheduler`` follows (None: the goal metric).
    """
    loop = TrainingLoop(
        ctx,
        trainable,
        train_model=train_model,
        aggregator=aggregator,
        scheduler=scheduler,
        settings=settings_of(config, plateau_metric=plateau_metric),
        goal=goal,
    )
    return loop.run()
