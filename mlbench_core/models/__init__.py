"""Reference models of the benchmark tasks."""

from __future__ import annotations

from mlbench_core.models.awd_lstm import AWDLSTM
from mlbench_core.models.logreg import LogisticRegression
from mlbench_core.models.resnet20 import ResNetCIFAR, resnet20
from mlbench_core.models.transformer import TranslationTransformer, label_smoothed_loss

__all__ = [
    "AWDLSTM",
    "LogisticRegression",
    "ResNetCIFAR",
    "TranslationTransformer",
    "label_smoothed_loss",
    "resnet20",
]
