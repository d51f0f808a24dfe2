"""PowerSGD, signSGD / Signum, top-k and random-k: wire bytes, error feedback and training.

One launch of two gloo ranks trains the small digits models with every compressed aggregator
(fixture ``runs``); the tests below read its results. The accuracy targets are on the 360
held-out digits after a few epochs (uncompressed all-reduce SGD reaches 0.947 in the same
budget); training is seeded, so a miss means a regression, not bad luck.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from mlbench_core.optim import make_aggregator
from mlbench_core.optim.powersgd import analytic_bytes
from mlbench_core.optim.signsgd import pack_signs, unpack_signs
from tests.mlbench_core.optim.common import tiny_cnn, tiny_mlp, train_digits, world
from tests.mlbench_core.optim.procs import run_ok

HERE = "tests.mlbench_core.optim.test_compression"

# tiny_mlp: Linear(64, 32) + bias 32, Linear(32, 10) + bias 10 = 2410 elements.
MLP_SIZES = [2048, 32, 320, 10]
# tiny_cnn with rank 2: conv weight 8x1x3x3 seen as 8 x 9, linear 10 x 288, biases 8 + 10.
CNN_POWERSGD_BYTES = (8 + 9) * 2 * 4 + (10 + 288) * 2 * 4 + (8 + 10) * 4

# name -> (aggregator, settings, model, lr, momentum, epochs, accuracy target, bytes per step)
CASES: dict[str, tuple[str, dict[str, Any], str, float, float, int, float, int]] = {
    "powersgd": ("powersgd", {"rank": 2}, "cnn", 0.1, 0.9, 6, 0.93, CNN_POWERSGD_BYTES),
    # signSGD: the optimizer adds nothing but the step size (no momentum on top of the vote).
    "signsgd": ("signsgd", {}, "mlp", 0.005, 0.0, 6, 0.90, math.ceil(2410 / 8)),
    "signum": ("signsgd", {"momentum": 0.9}, "mlp", 0.005, 0.0, 6, 0.93, math.ceil(2410 / 8)),
    # k per tensor = ceil(ratio * numel); top-k sends k values + k int32 indices.
    "topk": ("topk", {"ratio": 0.05}, "mlp", 0.1, 0.9, 6, 0.93, 8 * (103 + 2 + 16 + 1)),
    # random-k sends values only; delayed coordinates make it slower: plain SGD, more epochs.
    "randomk": ("randomk", {"ratio": 0.1}, "mlp", 0.2, 0.0, 10, 0.90, 4 * (205 + 4 + 32 + 1)),
}


def _train_all(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, (name, settings, model, lr, momentum, epochs, _, _) in CASES.items():
        residuals: list[float] = []

        def watch(aggregator: Any, model: nn.Module, residuals: list[float] = residuals) -> None:
            if hasattr(aggregator, "residual_norm"):
                residuals.append(aggregator.residual_norm())

        result = train_digits(
            name,
            settings,
            model_fn=tiny_cnn if model == "cnn" else tiny_mlp,
            make_optimizer=lambda m, lr=lr, mom=momentum: torch.optim.SGD(
                m.parameters(), lr=lr, momentum=mom
            ),
            epochs=epochs,
            data=params["digits"],
            on_step=watch,
        )
        out[label] = {**result, "residuals": residuals}
    out["residual_under_noise"] = _residual_under_noise()
    return out


def _residual_under_noise(steps: int = 400) -> list[list[float]]:
    """PowerSGD rank 2 fed i.i.d. Gaussian 32 x 64 gradients (different on each rank): the
    worst case for a low-rank compressor, every step discards most of the gradient.
    Returns (residual norm, gradient norm) per step."""
    rank, size = world()
    aggregator = make_aggregator("powersgd", {"rank": 2}, rank=rank, world_size=size)
    model = aggregator.wrap(nn.Linear(64, 32))
    g = torch.Generator().manual_seed(rank)
    trace = []
    for _ in range(steps):
        aggregator.begin_step()
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=g)
        grad_norm = float(model.weight.grad.norm())
        aggregator.after_backward(model)
        trace.append([aggregator.residual_norm(), grad_norm])
    return trace


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, digits_file: str) -> list[dict[str, Any]]:
    out_dir = tmp_path_factory.mktemp("compression")
    return run_ok(f"{HERE}:_train_all", 2, out_dir, {"digits": digits_file}, timeout_s=90)


@pytest.mark.parametrize("label", list(CASES))
def test_trains_digits_with_the_counted_bytes(runs: list[dict[str, Any]], label: str) -> None:
    *_, target, step_bytes = CASES[label]
    for result in runs:
        got = result[label]
        assert got["accuracy"] >= target, (label, got["accuracy"])
        assert got["step_bytes"] == [step_bytes] * len(got["step_bytes"]), label
        # The aggregated update is the same on every rank, so the replicas never drift apart.
        assert got["ranks_identical"], label


def test_powersgd_error_feedback_memory_is_used_and_stays_bounded(
    runs: list[dict[str, Any]],
) -> None:
    for result in runs:
        residuals = result["powersgd"]["residuals"]
        assert min(residuals) > 0  # the discarded part is remembered, not dropped
        trace = result["residual_under_noise"]
        residual = [r for r, _ in trace]
        grad_norm = max(g for _, g in trace)
        early, late = max(residual[100:200]), max(residual[300:400])
        # Fed pure noise, an error memory that only accumulated would grow like sqrt(t)
        # (late/early ~ 1.4); error feedback re-sends what it kept, so it levels off.
        assert late <= 1.1 * early, (early, late)
        assert late <= 5 * grad_norm, (late, grad_norm)
        assert residual[0] > 0.5 * trace[0][1]  # rank 2 of 32 x 64 noise leaves most behind


# ---------------------------------------------------------------- single-process properties


def test_powersgd_analytic_bytes() -> None:
    shapes = [torch.Size([8, 1, 3, 3]), torch.Size([8]), torch.Size([10, 288]), torch.Size([10])]
    assert analytic_bytes(shapes, rank=2) == CNN_POWERSGD_BYTES
    # r is capped at min(n, m): a 3 x 100 matrix at rank 4 costs (3 + 100) * 3 floats.
    assert analytic_bytes([torch.Size([3, 100])], rank=4) == (3 + 100) * 3 * 4


def test_powersgd_full_rank_is_lossless_and_low_rank_is_low_rank() -> None:
    torch.manual_seed(0)
    model = nn.Linear(6, 4)
    grad = torch.randn(4, 6)
    for rank, expect_exact in [(4, True), (1, False)]:
        aggregator = make_aggregator("powersgd", {"rank": rank}, rank=0, world_size=1)
        model.weight.grad = grad.clone()
        model.bias.grad = torch.ones(4)
        aggregator.after_backward(model)
        approx = model.weight.grad
        assert torch.linalg.matrix_rank(approx) == min(rank, 4)
        assert torch.allclose(approx, grad, atol=1e-5) is expect_exact
        assert torch.equal(model.bias.grad, torch.ones(4))  # 1-D: never compressed
        # Error feedback: what was applied plus what was kept is exactly the gradient.
        assert aggregator.residual_norm() == pytest.approx(float((grad - approx).norm()), abs=1e-5)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 64, 1001])
def test_sign_packing_round_trips_with_one_bit_per_element(n: int) -> None:
    values = torch.randn(n)
    values[0] = 0.0  # zero counts as +1
    packed = pack_signs(values)
    assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(n / 8)
    expected = torch.where(values >= 0, 1, -1).to(torch.int8)
    assert torch.equal(unpack_signs(packed, n), expected)


def test_topk_keeps_the_largest_and_remembers_the_rest() -> None:
    model = nn.Linear(10, 1, bias=False)
    aggregator = make_aggregator("topk", {"ratio": 0.2}, rank=0, world_size=1)
    grad = torch.tensor([[0.1, -5.0, 0.2, 0.3, 4.0, 0.0, -0.1, 0.05, 0.2, 0.1]])
    model.weight.grad = grad.clone()
    aggregator.after_backward(model)
    kept = torch.zeros_like(grad)
    kept[0, 1], kept[0, 4] = -5.0, 4.0
    assert torch.equal(model.weight.grad, kept)
    assert aggregator.error is not None and torch.equal(aggregator.error, (grad - kept).view(-1))
    # Next step: the remembered 0.3 plus a new 0.3 outgrows everything else and is sent.
    model.weight.grad = torch.zeros_like(grad)
    model.weight.grad[0, 3] = 0.3
    aggregator.after_backward(model)
    assert model.weight.grad[0, 3] == pytest.approx(0.6)
