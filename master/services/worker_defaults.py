"""The installation's worker defaults (``MLBENCH_WORKER_*``, set by the Helm chart) applied to
a new run's spec.

Clients send whole RunSpecs, so "not given" cannot be told from "given as the default": a
spec whose image is the release's default image, or whose resources are exactly the model's
defaults, takes the installation's values. A spec that names anything else keeps it.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from master.errors import Unprocessable
from master.settings import Settings
from mlbench_core.spec import DEFAULT_WORKER_IMAGE, Resources, RunSpec


def apply_worker_defaults(spec: RunSpec, settings: Settings) -> RunSpec:
    """``spec`` with the installation's image and resources where it kept the defaults."""
    update: dict[str, Any] = {}
    if spec.resources == Resources():
        resources = {
            key: value
            for key, value in (
                ("cpu", settings.worker_cpu),
                ("memory", settings.worker_memory),
                ("gpu", settings.worker_gpu),
            )
            if value is not None
        }
        if resources:
            update["resources"] = {**spec.resources.model_dump(), **resources}
    gpus = update.get("resources", {}).get("gpu", spec.resources.gpu)
    if spec.image == DEFAULT_WORKER_IMAGE:
        image = settings.worker_cuda_image if gpus > 0 else settings.worker_image
        if image:
            update["image"] = image
    if not update:
        return spec
    try:  # checked again: e.g. a default memory quantity the model refuses
        return RunSpec.model_validate({**spec.model_dump(mode="json"), **update})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise Unprocessable(
            f"the master's worker defaults make this spec invalid ({where}: {first['msg']}); "
            "check MLBENCH_WORKER_*"
        ) from None
