"""Tasks 1a, 2a, 3a and 4b: catalog entries, and runs through the real worker entrypoint.

Each run is two ``python -m worker.main`` processes (torchrun-style environment, gloo) that
report to a fake master over real HTTP, training on tiny data sets written in the published
formats into the worker's data directory (``MLBENCH_DATA_DIR``), with tiny model dimensions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mlbench_core.tasks import get_task
from mlbench_core.wire import RunResult
from tests.mlbench_core.dist_helpers import ROOT, free_port
from tests.mlbench_core.fake_master import FakeMaster
from tests.mlbench_core.tasks import datafiles

TOKEN = "task-token-1"
RUN_ID = 11
REFERENCE = ("1a", "2a", "3a", "4b")

TINY: dict[str, tuple[Callable[[Path], Path], dict[str, Any]]] = {
    "1a": (datafiles.write_cifar10, {"width": 4, "batch_size": 16, "epochs": 2, "log_every": 2}),
    "2a": (datafiles.write_epsilon, {"epochs": 3, "log_every": 2, "batch_size": 50}),
    "3a": (
        datafiles.write_wikitext2,
        {"embedding_size": 16, "hidden_size": 24, "batch_size": 4, "bptt": 10, "epochs": 1},
    ),
    "4b": (
        datafiles.write_wmt17,
        {
            "d_model": 16,
            "heads": 2,
            "encoder_layers": 1,
            "decoder_layers": 1,
            "ffn_dim": 32,
            "bpe_vocab_size": 300,
            "max_tokens": 256,
            "epochs": 1,
            "eval_every_epochs": 1.0,
        },
    ),
}


# ---------------------------------------------------------------- catalog


@pytest.mark.parametrize("task_id", REFERENCE)
def test_catalog_entry_names_model_data_optimizer_and_goal(task_id: str) -> None:
    task = get_task(task_id)
    entry = task.describe()
    words = {
        "1a": ("ResNet-20", "CIFAR-10", "SGD"),
        "2a": ("logistic regression", "epsilon", "SGD"),
        "3a": ("AWD-LSTM", "WikiText-2", "SGD"),
        "4b": ("Transformer", "WMT17", "Adam"),
    }[task_id]
    for word in words:
        assert word.lower() in (entry["title"] + entry["description"]).lower(), word
    assert entry["goal"] is not None
    goal = task.goal
    assert goal is not None
    assert goal.reached(goal.full, goal.light)  # the full goal is the harder one
    config = task.config_from({})
    assert config.aggregator == "allreduce"  # type: ignore[attr-defined]
    for name, field in task.Config.model_fields.items():
        assert field.description, f"{task_id}.{name} has no description"


def test_aggregator_settings_are_checked_and_may_come_as_json_text() -> None:
    task = get_task("2a")
    config = task.config_from({"aggregator": "powersgd", "aggregator_settings": '{"rank": 2}'})
    assert config.aggregator_settings == {"rank": 2}  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match=r"aggregator_settings.*unknown setting 'rnak'"):
        task.config_from({"aggregator": "powersgd", "aggregator_settings": '{"rnak": 2}'})
    with pytest.raises(ValueError, match="unknown aggregator 'carrier-pigeon'"):
        task.config_from({"aggregator": "carrier-pigeon"})
    with pytest.raises(ValueError, match="not a JSON object"):
        task.config_from({"aggregator_settings": "{rank"})
    with pytest.raises(ValueError, match="'momentum' not a setting of '2a'"):
        task.config_from({"momentum": 0.9})


# ---------------------------------------------------------------- runs through the worker


@pytest.fixture
def master() -> Iterator[FakeMaster]:
    with FakeMaster(token=TOKEN, run_id=RUN_ID) as server:
        yield server


def run_workers(
    tmp_path: Path, master: FakeMaster, spec: dict[str, Any], world: int = 2
) -> list[tuple[int, str]]:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    port = free_port()
    procs = []
    for rank in range(world):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLBENCH_")}
        env.update(
            PYTHONPATH=str(ROOT),
            OMP_NUM_THREADS="1",
            RANK=str(rank),
            WORLD_SIZE=str(world),
            LOCAL_RANK=str(rank),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            MLBENCH_DATA_DIR=str(tmp_path / "data"),
            MLBENCH_OFFLINE="1",  # the data is staged: a download attempt would be a bug
            MLBENCH_API_URL=master.url,
            MLBENCH_RUN_ID=str(RUN_ID),
            MLBENCH_TOKEN=TOKEN,
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "worker.main", "--spec", str(spec_file)],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outcomes = []
    for proc in procs:
        try:
            _, stderr = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            _, stderr = proc.communicate()
            pytest.fail(f"worker did not finish in 120s:\n{stderr}")
        outcomes.append((proc.returncode, stderr))
    return outcomes


@pytest.mark.slow
@pytest.mark.parametrize("task_id", REFERENCE)
def test_task_runs_end_to_end_through_the_worker(
    tmp_path: Path, master: FakeMaster, task_id: str
) -> None:
    write, overrides = TINY[task_id]
    write(tmp_path / "data")
    spec = {"name": f"run-{task_id}", "benchmark": task_id, "workers": 2, "overrides": overrides}
    if task_id == "1a":
        spec["goal"] = {"kind": "custom", "value": 0.0}  # met at the first evaluation
    if task_id == "3a":
        spec["overrides"] = {
            **overrides,
            "aggregator": "ddp",
            "aggregator_settings": '{"bucket_mb": 1}',
        }
    for code, stderr in run_workers(tmp_path, master, spec):
        assert code == 0, stderr
    assert [s["state"] for s in master.statuses] == ["running", "succeeded"]
    assert master.result is not None
    result = RunResult.model_validate(master.result)
    task = get_task(task_id)
    assert task.goal is not None
    assert result.goal_metric == task.goal.metric
    assert result.steps > 0 and result.epochs > 0
    assert result.samples_per_s > 0
    assert result.bytes_communicated > 0
    assert sum(result.phases.model_dump().values()) <= result.total_time_s
    assert result.final_value is not None and result.best_value is not None
    assert master.stored_values("train/loss")
    assert master.stored_values("train/samples_per_s")
    assert master.stored_values(task.goal.metric)[-1] == result.final_value
    assert master.stored_values("progress")[-1] == 1.0
    if task_id == "1a":
        assert result.goal_reached is True
        assert result.epochs_to_goal == 1.0 and result.epochs == 1.0
        assert result.steps == result.extra["steps_per_epoch"]
    if task_id == "3a":
        assert result.extra["aggregator"] == "ddp"
    if task_id in ("3a", "4b"):
        assert result.extra["tokens_per_s"] > 0


def test_bad_aggregator_setting_is_a_usage_error(tmp_path: Path, master: FakeMaster) -> None:
    spec = {
        "name": "bad-agg",
        "benchmark": "1a",
        "workers": 1,
        "overrides": {"aggregator": "powersgd", "aggregator_settings": '{"rank": -1}'},
    }
    [(code, stderr)] = run_workers(tmp_path, master, spec, world=1)
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "aggregator_settings" in stderr and "rank" in stderr
    assert master.events == []
