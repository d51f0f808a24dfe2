"""The installation's worker defaults (MLBENCH_WORKER_*) fill specs that kept the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from master.errors import Unprocessable
from master.services.worker_defaults import apply_worker_defaults
from master.settings import Settings
from mlbench_core.spec import DEFAULT_WORKER_IMAGE, RunSpec
from tests.master.conftest import RecordingExecutor, start_master


def _spec(**fields: object) -> RunSpec:
    return RunSpec.model_validate({"name": "w", "benchmark": "digits-mlp", **fields})


def _settings(tmp_path: Path, **fields: object) -> Settings:
    return Settings(data_dir=tmp_path, **fields)


def test_unset_defaults_change_nothing(tmp_path: Path) -> None:
    spec = _spec()
    assert apply_worker_defaults(spec, _settings(tmp_path)) is spec


def test_default_image_and_resources_take_the_installations(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        worker_image="registry.example/mlbench/worker:0.1.0",
        worker_cuda_image="registry.example/mlbench/worker-cuda:0.1.0",
        worker_cpu=4,
        worker_memory="8Gi",
    )
    applied = apply_worker_defaults(_spec(), settings)
    assert applied.image == "registry.example/mlbench/worker:0.1.0"
    assert (applied.resources.cpu, applied.resources.memory, applied.resources.gpu) == (
        4.0,
        "8Gi",
        0,
    )


def test_a_gpu_default_picks_the_cuda_image(tmp_path: Path) -> None:
    settings = _settings(tmp_path, worker_cuda_image="cuda:1", worker_image="cpu:1", worker_gpu=1)
    applied = apply_worker_defaults(_spec(), settings)
    assert (applied.resources.gpu, applied.image) == (1, "cuda:1")


def test_what_the_spec_names_is_kept(tmp_path: Path) -> None:
    settings = _settings(tmp_path, worker_image="cpu:1", worker_cpu=4, worker_memory="8Gi")
    spec = _spec(image="mine:2", resources={"cpu": 2})
    applied = apply_worker_defaults(spec, settings)
    assert applied.image == "mine:2" and applied.resources.cpu == 2
    assert DEFAULT_WORKER_IMAGE != "mine:2"


def test_defaults_that_break_the_spec_are_a_clear_422(tmp_path: Path) -> None:
    settings = _settings(tmp_path, worker_memory="lots")
    with pytest.raises(Unprocessable, match=r"MLBENCH_WORKER_\*"):
        apply_worker_defaults(_spec(), settings)


def test_the_api_stores_and_launches_the_filled_spec(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        admin_token="t",
        worker_image="registry.example/w:1",
        worker_cpu=3,
    )
    executor = RecordingExecutor()
    for master in start_master(settings, executor):
        response = master.client.post(
            "/api/v1/runs",
            json={"name": "filled", "benchmark": "digits-mlp"},
            headers={"Authorization": "Bearer t"},
        )
        assert response.status_code == 201, response.text
        stored = response.json()["spec"]
        assert stored["image"] == "registry.example/w:1" and stored["resources"]["cpu"] == 3
        launched = executor.launches[response.json()["id"]].spec
        assert launched.image == "registry.example/w:1"
