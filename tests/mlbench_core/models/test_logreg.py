"""Distributed L2 logistic regression reaches scikit-learn's optimum on a real data set.

Data: scikit-learn's bundled breast-cancer set (569 samples, 30 features), standardised.
Two gloo ranks each hold a contiguous half; full-batch gradient steps with all-reduce
averaging minimise mean BCE + l2/2 ||w||^2. scikit-learn's ``LogisticRegression(C=1/(n*l2))``
minimises C * sum BCE + 1/2 ||w||^2, the same objective times n*C, so both optima coincide.
Tolerance: 1e-6 relative on the objective, 1e-4 absolute on the weights (both runs converge
far tighter; the margin covers BLAS differences).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from mlbench_core import distributed as mdist
from mlbench_core.data.partition import validation_slice
from mlbench_core.models.logreg import LogisticRegression
from mlbench_core.train import (
    LoopSettings,
    StepLoss,
    Trainable,
    TrainConfig,
    TrainingLoop,
    make_communication,
)
from tests.mlbench_core.train.ranks import run_in_ranks
from tests.mlbench_core.train.test_loop import make_context

L2 = 1e-2
STEPS = 600


def breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer()
    return StandardScaler().fit_transform(data.data), data.target.astype(np.int64)


def objective(w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray) -> float:
    z = x @ w + b
    # log(1 + e^z) - y z, computed stably.
    return float(np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * L2 * w @ w)


class FullBatch(Trainable):
    """Every step is this rank's whole part, its loss weighted so that the all-reduce average
    of the ranks' gradients is exactly the gradient of the objective over all samples."""

    def __init__(self, model: LogisticRegression, x: torch.Tensor, y: torch.Tensor, n: int) -> None:
        self.model = model
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        self.steps_per_epoch = 1
        self.x, self.y = x, y
        self.weight = mdist.world_size() * len(y) / n

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        yield self.x, self.y

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> StepLoss:
        x, y = batch
        data = self.model.data_loss(model(x), y) * self.weight
        return StepLoss(data + self.model.penalty(), samples=len(y))

    def evaluate(self) -> dict[str, float]:
        return {}


def train_logreg(params: dict[str, Any]) -> dict[str, Any]:
    x, y = breast_cancer()
    part = validation_slice(len(y), mdist.rank(), mdist.world_size())
    ctx = make_context([], None, None)
    model = LogisticRegression(x.shape[1], 1, l2=L2).double()
    aggregator, train_model = make_communication(ctx, TrainConfig(), model)
    trainable = FullBatch(model, torch.from_numpy(x[part]), torch.from_numpy(y[part]), len(y))
    loop = TrainingLoop(
        ctx,
        trainable,
        train_model=train_model,
        aggregator=aggregator,
        scheduler=None,
        settings=LoopSettings(epochs=STEPS, eval_every_epochs=STEPS, log_every=STEPS),
        goal=None,
    )
    result = loop.run()
    return {
        "weights": model.linear.weight.detach().reshape(-1).tolist(),
        "bias": float(model.linear.bias),
        "bytes": result.bytes_communicated,
    }


def test_two_ranks_reach_the_sklearn_optimum(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression

    outcomes = run_in_ranks(f"{__name__}:train_logreg", 2, tmp_path)
    for outcome in outcomes:
        assert outcome.returncode == 0, outcome.stderr
    x, y = breast_cancer()
    reference = SkLogisticRegression(C=1.0 / (len(y) * L2), tol=1e-12, max_iter=100_000)
    reference.fit(x, y)
    best = objective(reference.coef_[0], float(reference.intercept_[0]), x, y)
    ours = outcomes[0].value
    weights = np.array(ours["weights"])
    value = objective(weights, ours["bias"], x, y)
    assert value == pytest.approx(best, rel=1e-6)
    assert value >= best - 1e-9  # nothing beats the optimum: the objectives really agree
    np.testing.assert_allclose(weights, reference.coef_[0], atol=1e-4)
    assert outcomes[1].value["weights"] == ours["weights"]
    assert ours["bytes"] == 31 * 8 * STEPS * 2  # float64 gradient of 30 weights + bias
