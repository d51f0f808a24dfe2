"""L2-regularised (binary or multinomial) logistic regression.

The regularisation lives in the loss, ``mean_i CE(x_i, y_i) + l2/2 * ||w||^2``, not in the
optimizer's weight decay: then the reported training loss is the objective being minimised,
and it can be compared with scikit-learn's ``LogisticRegression(C=1/(n*l2))``, whose objective
``C * sum_i CE + 1/2 ||w||^2`` is the same one scaled by ``n*C``. The bias is not penalised,
as in scikit-learn.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LogisticRegression(nn.Module):
    """One linear layer; ``num_classes=1`` is binary logistic regression with labels in {0, 1}."""

    def __init__(self, num_features: int, num_classes: int = 1, l2: float = 0.0) -> None:
        super().__init__()
        self.linear = nn.Linear(num_features, num_classes)
        self.l2 = l2
        self.num_classes = num_classes
        # Zero start: the objective is convex, so the optimum does not depend on it, and every
        # rank starts from the same point without a broadcast.
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x)
        return out.squeeze(-1) if self.num_classes == 1 else out

    def data_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean cross entropy of a batch, without the penalty."""
        if self.num_classes == 1:
            return F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype))
        return F.cross_entropy(logits, y)

    def penalty(self) -> torch.Tensor:
        return 0.5 * self.l2 * self.linear.weight.pow(2).sum()

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The regularised objective of a batch: ``data_loss + l2/2 * ||w||^2``."""
        return self.data_loss(logits, y) + self.penalty()

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        if self.num_classes == 1:
            return (logits > 0).long()
        return logits.argmax(dim=-1)
