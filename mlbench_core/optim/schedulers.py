"""Learning-rate schedules used by the reference tasks.

Call ``scheduler.step()`` after every ``optimizer.step()`` (the counts below are in those
calls; a task that steps its scheduler once per epoch gets epochs instead). The plateau
scheduler additionally takes ``scheduler.step(metric)`` after every evaluation.

With t = number of ``step()`` calls so far and ``base`` the optimizer's configured lr:

- ``linear-warmup`` (Goyal et al. 2017, linear scaling rule): lr = base * (1 + (k - 1) *
  min(t, w) / w), going from base to base * k over w warmup steps (k is typically the number
  of workers); afterwards multiplied by gamma once per milestone passed (t >= milestone).
- ``multistep``: lr = base * gamma ** (number of milestones <= t).
- ``plateau-warmup``: the linear warmup from base to base * k first, then
  ``ReduceLROnPlateau`` on the evaluated metric (evaluations during warmup are ignored).
- ``inverse-sqrt`` (Vaswani et al. 2017): lr = base * min(s / w, sqrt(w / s)), s = t + 1:
  linear warmup to base at s = w, then decay with the inverse square root of the step.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, MultiStepLR, ReduceLROnPlateau


def warmup_factor(t: int, scale: float, warmup_steps: int) -> float:
    """1 at t = 0, rising linearly to ``scale`` at t = warmup_steps, then ``scale``."""
    if warmup_steps == 0:
        return scale
    return 1.0 + (scale - 1.0) * min(t, warmup_steps) / warmup_steps


def linear_warmup(
    optimizer: Optimizer,
    *,
    scale: float,
    warmup_steps: int,
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
) -> LambdaLR:
    """Linear-scaling rule with warmup, optionally followed by step decay."""
    marks = sorted(milestones)

    def factor(t: int) -> float:
        return warmup_factor(t, scale, warmup_steps) * gamma ** bisect.bisect_right(marks, t)

    return LambdaLR(optimizer, factor)


def multistep(optimizer: Optimizer, *, milestones: Sequence[int], gamma: float) -> MultiStepLR:
    return MultiStepLR(optimizer, milestones=list(milestones), gamma=gamma)


def inverse_sqrt(optimizer: Optimizer, *, warmup_steps: int) -> LambdaLR:
    """Transformer schedule, normalised so that the peak lr (at s = warmup_steps) is base."""

    def factor(t: int) -> float:
        s = t + 1  # the first update already gets a non-zero lr
        return min(s / warmup_steps, math.sqrt(warmup_steps / s))

    return LambdaLR(optimizer, factor)


class WarmupReduceLROnPlateau(ReduceLROnPlateau):
    """Linear warmup from base to base * ``scale`` over ``warmup_steps`` calls of ``step()``,
    then torch's ``ReduceLROnPlateau`` driven by ``step(metric)``.

    ``step()`` without a metric is the per-iteration tick: it advances the warmup and does
    nothing afterwards. ``step(metric)`` is an evaluation: ignored while warming up (a loss that
    is still falling because the lr is still rising says nothing about a plateau), passed to
    ``ReduceLROnPlateau`` once the warmup is over.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        *,
        scale: float = 1.0,
        warmup_steps: int = 0,
        mode: Literal["min", "max"] = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        super().__init__(
            optimizer,
            mode=mode,
            factor=factor,
            patience=patience,
            threshold=threshold,
            cooldown=cooldown,
            min_lr=min_lr,
        )
        self.scale = scale
        self.warmup_steps = warmup_steps
        self.warmup_done = 0
        """Warmup ticks taken so far (``step()`` calls, capped at ``warmup_steps``)."""
        self.base_lrs = [float(group["lr"]) for group in optimizer.param_groups]
        self._set_warmup_lr()

    @property
    def warming_up(self) -> bool:
        return self.warmup_done < self.warmup_steps

    def _set_warmup_lr(self) -> None:
        f = warmup_factor(self.warmup_done, self.scale, self.warmup_steps)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * f
        self._last_lr = [float(group["lr"]) for group in self.optimizer.param_groups]

    def step(self, metrics: float | None = None, epoch: int | None = None) -> None:  # type: ignore[override]
        if metrics is None:
            if self.warming_up:
                self.warmup_done += 1
                self._set_warmup_lr()
            return
        if self.warming_up:
            return
        super().step(metrics, epoch)


# ------------------------------------------------------------------ validated settings


class _SchedulerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _scale_field() -> Any:
    return Field(
        1.0,
        gt=0,
        le=100_000,
        description=(
            "k: the lr goes from the optimizer's base lr to base * k over the warmup (linear "
            "scaling rule: k = number of workers, or global batch / reference batch)."
        ),
    )


def _warmup_field(default: int, low: int) -> Any:
    return Field(
        default,
        ge=low,
        le=100_000_000,
        description="Warmup length, in scheduler.step() calls (iterations, or epochs).",
    )


def _gamma_field() -> Any:
    return Field(0.1, gt=0, le=1, description="Factor applied to the lr at each milestone.")


Milestones = Annotated[list[Annotated[int, Field(ge=1)]], AfterValidator(sorted)]


class LinearWarmupConfig(_SchedulerConfig):
    """Settings of the linear-scaling rule with warmup (and optional step decay)."""

    scale: float = _scale_field()
    warmup_steps: int = _warmup_field(0, 0)
    milestones: Milestones = Field(
        default_factory=list,
        description="Steps at which the lr is multiplied by gamma (counted from step 0).",
    )
    gamma: float = _gamma_field()


class MultiStepConfig(_SchedulerConfig):
    """Settings of step decay."""

    milestones: Milestones = Field(
        min_length=1, description="Steps at which the lr is multiplied by gamma."
    )
    gamma: float = _gamma_field()


class PlateauWarmupConfig(_SchedulerConfig):
    """Settings of linear warmup followed by reduce-on-plateau."""

    scale: float = _scale_field()
    warmup_steps: int = _warmup_field(0, 0)
    mode: Literal["min", "max"] = Field(
        "min", description="min: the metric is a loss; max: an accuracy."
    )
    factor: float = Field(0.1, gt=0, lt=1, description="Multiplier of the lr on a plateau.")
    patience: int = Field(
        10, ge=0, le=1_000_000, description="Evaluations without improvement before a cut."
    )
    threshold: float = Field(
        1e-4, ge=0, le=1, description="Relative change that counts as an improvement."
    )
    cooldown: int = Field(
        0, ge=0, le=1_000_000, description="Evaluations to wait after a cut before counting."
    )
    min_lr: float = Field(0.0, ge=0, description="The lr is never cut below this.")


class InverseSqrtConfig(_SchedulerConfig):
    """Settings of the Transformer's inverse-square-root schedule."""

    warmup_steps: int = _warmup_field(4000, 1)


SCHEDULERS: dict[str, tuple[type[BaseModel], Callable[[Optimizer, Any], LRScheduler]]] = {
    "linear-warmup": (LinearWarmupConfig, lambda opt, c: linear_warmup(opt, **c.model_dump())),
    "multistep": (MultiStepConfig, lambda opt, c: multistep(opt, **c.model_dump())),
    "plateau-warmup": (
        PlateauWarmupConfig,
        lambda opt, c: WarmupReduceLROnPlateau(opt, **c.model_dump()),
    ),
    "inverse-sqrt": (InverseSqrtConfig, lambda opt, c: inverse_sqrt(opt, **c.model_dump())),
}
"""Scheduler name -> (settings model, builder(optimizer, settings))."""
