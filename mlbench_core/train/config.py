"""Settings every task trained by the generic loop shares: schedule of the loop, aggregator, data.

Task configs subclass ``TrainConfig`` and redeclare a field to change its default; the
descriptions stay here, so ``docs/tasks.md`` (generated from the configs) says the same thing
for every task.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

Precision = Literal["fp32", "fp16", "bf16"]


def epochs_field(default: int) -> Any:
    return Field(
        default,
        ge=1,
        le=100_000,
        description="Most epochs to train; training ends earlier at the goal or the time limit.",
    )


def eval_every_field(default: float) -> Any:
    return Field(
        default,
        gt=0,
        le=10_000,
        description=(
            "Epochs between evaluations on the whole validation set (fractions allowed); the "
            "goal is checked there, and once more after the last step."
        ),
    )


class TrainConfig(BaseModel):
    """Settings of the training loop, the communication strategy and the data location."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = epochs_field(100)
    eval_every_epochs: float = eval_every_field(1.0)
    log_every: int = Field(
        20,
        ge=1,
        le=1_000_000,
        description=(
            "Steps between train/loss, train/lr, train/bytes_per_step and train/samples_per_s "
            "points (global values over the window)."
        ),
    )
    max_steps: int = Field(
        0,
        ge=0,
        le=10**12,
        description="Stop after this many steps (0: no limit); for throughput measurements.",
    )
    aggregator: str = Field(
        "allreduce",
        description=(
            "How workers communicate (mlbench_core.optim): allreduce, model-average, ddp, "
            "powersgd, signsgd, topk, randomk, gossip or local-sgd."
        ),
    )
    aggregator_settings: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Settings of the aggregator, checked against its own settings model. A JSON object "
            "given as text is accepted too (run-spec overrides carry scalars only), "
            "e.g. '{\"rank\": 2}' for powersgd."
        ),
    )
    data_root: str = Field(
        "",
        max_length=4096,
        description=(
            "Directory holding the data sets (one sub-directory per data set); empty: the "
            "worker's data directory (MLBENCH_DATA_DIR). Files already there in the published "
            "layout are used as they are."
        ),
    )

    @field_validator("aggregator_settings", mode="before")
    @classmethod
    def _settings_from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except ValueError as exc:
                raise ValueError(f"not a JSON object: {exc}") from None
            if not isinstance(value, dict):
                raise ValueError("must be a JSON object")
        return value

    @field_validator("aggregator")
    @classmethod
    def _known_aggregator(cls, value: str) -> str:
        # Imported here: the master lists task settings without paying for the optimizers.
        from mlbench_core.optim import AGGREGATORS

        if value not in AGGREGATORS:
            raise ValueError(f"unknown aggregator {value!r} (known: {', '.join(AGGREGATORS)})")
        return value

    @field_validator("aggregator_settings")
    @classmethod
    def _valid_settings(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        from mlbench_core.optim import AGGREGATORS, validate_settings

        name = info.data.get("aggregator")
        if name is None:  # the name itself was rejected; that error is reported
            return value
        # The same check make_aggregator applies at run time, here before any worker starts.
        validate_settings("aggregator", name, AGGREGATORS[name].Config, value)
        return value


class PrecisionMixin(BaseModel):
    """Mixed precision: used on CUDA devices only (CPU runs always compute in float32).

    List it before ``TrainConfig`` in the bases so that its field comes after the loop's.
    """

    model_config = ConfigDict(extra="forbid")

    precision: Precision = Field(
        "fp32",
        description=(
            "Autocast dtype of forward and loss on GPUs: fp32 (off), fp16 (with dynamic loss "
            "scaling) or bf16. Ignored on CPUs, where training is always float32."
        ),
    )
