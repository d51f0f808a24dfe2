"""Learning-rate schedules: the lr after t steps equals the documented formula."""

from __future__ import annotations

import math

import pytest
import torch
from torch.optim.lr_scheduler import LRScheduler

from mlbench_core.optim import WarmupReduceLROnPlateau, make_scheduler

BASE = 0.1


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=BASE)


def _curve(scheduler: LRScheduler, optimizer: torch.optim.Optimizer, steps: int) -> list[float]:
    """lr in force for the update after t scheduler steps, t = 0 .. steps."""
    lrs = [optimizer.param_groups[0]["lr"]]
    for _ in range(steps):
        optimizer.step()  # no gradients: a no-op, but keeps torch's call-order check quiet
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


def test_linear_scaling_warmup_then_step_decay() -> None:
    opt = _optimizer()
    settings = {"scale": 4, "warmup_steps": 10, "milestones": [20, 15], "gamma": 0.1}
    lrs = _curve(make_scheduler("linear-warmup", opt, settings), opt, 25)
    expected = {0: 0.1, 5: 0.1 * (1 + 3 * 0.5), 10: 0.4, 14: 0.4, 15: 0.04, 19: 0.04, 20: 0.004}
    for t, lr in expected.items():
        assert lrs[t] == pytest.approx(lr, rel=1e-12), t
    for t in range(26):  # and the closed form everywhere
        formula = 0.1 * (1 + 3 * min(t, 10) / 10) * 0.1 ** ((t >= 15) + (t >= 20))
        assert lrs[t] == pytest.approx(formula, rel=1e-12), t


def test_linear_scaling_without_warmup_starts_scaled() -> None:
    opt = _optimizer()
    lrs = _curve(make_scheduler("linear-warmup", opt, {"scale": 8}), opt, 3)
    assert lrs == pytest.approx([0.8] * 4)


def test_multistep() -> None:
    opt = _optimizer()
    sched = make_scheduler("multistep", opt, {"milestones": [3, 6], "gamma": 0.5})
    lrs = _curve(sched, opt, 8)
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025])


def test_inverse_sqrt_peaks_at_the_end_of_warmup() -> None:
    opt = _optimizer()
    lrs = _curve(make_scheduler("inverse-sqrt", opt, {"warmup_steps": 4}), opt, 99)
    assert lrs[0] == pytest.approx(0.1 / 4)  # s = 1: first quarter of the warmup
    assert lrs[3] == pytest.approx(0.1)  # s = 4 = warmup: the peak is the base lr
    assert lrs[15] == pytest.approx(0.1 * math.sqrt(4 / 16))
    assert lrs[99] == pytest.approx(0.1 * math.sqrt(4 / 100))
    assert max(lrs) == pytest.approx(0.1)


def test_plateau_warmup_first_then_cuts_on_a_plateau() -> None:
    opt = _optimizer()
    settings = {"scale": 2, "warmup_steps": 4, "patience": 1, "factor": 0.5}
    sched = make_scheduler("plateau-warmup", opt, settings)
    assert isinstance(sched, WarmupReduceLROnPlateau)

    def lr() -> float:
        return opt.param_groups[0]["lr"]

    seen = [lr()]
    for _ in range(2):
        sched.step()
        seen.append(lr())
    for _ in range(5):  # a flat metric during warmup is no plateau: ignored
        sched.step(1.0)
    assert lr() == pytest.approx(0.15)
    for _ in range(3):
        sched.step()
        seen.append(lr())
    assert seen == pytest.approx([0.1, 0.125, 0.15, 0.175, 0.2, 0.2])
    assert not sched.warming_up

    sched.step(1.0)  # best so far
    sched.step(1.0)  # 1 bad evaluation: within patience
    assert lr() == pytest.approx(0.2)
    sched.step(1.0)  # 2 bad > patience 1: cut
    assert lr() == pytest.approx(0.1)
    sched.step()  # per-iteration ticks after warmup leave the lr alone
    assert lr() == pytest.approx(0.1)
    sched.step(0.5)  # an improvement resets the count
    sched.step(0.5)
    assert lr() == pytest.approx(0.1)
    sched.step(0.5)
    assert lr() == pytest.approx(0.05)
    assert sched.get_last_lr() == pytest.approx([0.05])


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        ("cosine", {}, "unknown scheduler 'cosine' (known: linear-warmup, multistep, "),
        ("linear-warmup", {"warmup": 5}, "scheduler 'linear-warmup': unknown setting 'warmup'"),
        ("linear-warmup", {"scale": 0}, "setting 'scale': Input should be greater than 0"),
        ("multistep", {}, "scheduler 'multistep': setting 'milestones' is required"),
        ("multistep", {"milestones": [0]}, "setting 'milestones.0': Input should be greater"),
        ("plateau-warmup", {"mode": "up"}, "setting 'mode': Input should be 'min' or 'max'"),
        ("inverse-sqrt", {"warmup_steps": 0}, "setting 'warmup_steps': Input should be greater"),
    ],
)
def test_make_scheduler_rejects_bad_settings(
    name: str, settings: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError) as info:
        make_scheduler(name, _optimizer(), settings)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
