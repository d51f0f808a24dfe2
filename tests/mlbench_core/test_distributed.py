"""mlbench_core.distributed: the torchrun environment and collectives in real gloo processes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mlbench_core import distributed as mdist
from mlbench_core.distributed import DistEnv, DistEnvError
from tests.mlbench_core.dist_helpers import run_ranks

GOOD_ENV = {
    "RANK": "1",
    "WORLD_SIZE": "4",
    "LOCAL_RANK": "1",
    "MASTER_ADDR": "worker-0.svc",
    "MASTER_PORT": "29500",
}


def test_dist_env_from_env() -> None:
    assert DistEnv.from_env(GOOD_ENV) == DistEnv(1, 4, 1, "worker-0.svc", 29500)


@pytest.mark.parametrize("missing", sorted(GOOD_ENV))
def test_dist_env_names_the_missing_variable(missing: str) -> None:
    env = {k: v for k, v in GOOD_ENV.items() if k != missing}
    with pytest.raises(DistEnvError, match=f"{missing} is not set"):
        DistEnv.from_env(env)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RANK", "one", "RANK='one' is not an integer"),
        ("RANK", "4", r"RANK=4 must be in \[0, 3\]"),
        ("RANK", "-1", "RANK=-1 must be"),
        ("WORLD_SIZE", "0", "WORLD_SIZE=0 must be >= 1"),
        ("MASTER_PORT", "70000", "MASTER_PORT=70000 must be"),
        ("LOCAL_RANK", "x", "LOCAL_RANK='x' is not an integer"),
        ("MASTER_ADDR", "  ", "MASTER_ADDR is not set"),
    ],
)
def test_dist_env_bad_values(name: str, value: str, message: str) -> None:
    with pytest.raises(DistEnvError, match=message):
        DistEnv.from_env({**GOOD_ENV, name: value})


def test_pick_backend() -> None:
    assert mdist.pick_backend("gloo") == "gloo"
    with pytest.raises(ValueError, match="unknown backend 'mpi'"):
        mdist.pick_backend("mpi")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_nccl_without_cuda_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        mdist.pick_backend("nccl")


def test_device_for_gloo_is_cpu() -> None:
    assert mdist.device_for(DistEnv.from_env(GOOD_ENV), "gloo") == torch.device("cpu")


def test_helpers_without_a_process_group_act_as_a_job_of_one() -> None:
    assert not mdist.is_initialized()
    assert mdist.global_average(3.0) == 3.0
    assert mdist.global_sum(torch.tensor([1.0, 2.0])).tolist() == [1.0, 2.0]
    assert mdist.any_rank(True) is True and mdist.any_rank(False) is False
    mdist.barrier(0.1)  # nothing to wait for
    mdist.shutdown()  # nothing to destroy


def test_collectives_on_two_gloo_ranks(tmp_path: Path) -> None:
    outcomes = run_ranks("global_ops", 2, tmp_path, timeout_s=60)
    for outcome in outcomes:
        assert outcome.returncode == 0, outcome.stderr
        value = outcome.value
        assert value["avg_float"] == pytest.approx(1.5)
        assert value["avg_tensor"] == pytest.approx([1.5, 15.0])
        assert value["input_unchanged"] == [float(outcome.rank + 1), 10.0 * (outcome.rank + 1)]
        assert value["avg_int_tensor"] == pytest.approx([1.5])
        assert value["sum_float"] == 3.0
        assert value["max_float"] == 2.0
        assert value["any_only_last"] is True
        assert value["any_none"] is False


def test_barrier_passes_when_all_ranks_arrive(tmp_path: Path) -> None:
    outcomes = run_ranks("barrier", 2, tmp_path, {"timeout_s": 10}, timeout_s=60)
    for outcome in outcomes:
        assert outcome.returncode == 0, outcome.stderr
        assert outcome.value == {
            "arrived": True,
            "timed_out": False,
            "elapsed": outcome.value["elapsed"],
        }


@pytest.mark.parametrize("absent", [1, 0])
def test_barrier_times_out_when_a_rank_does_not_arrive(tmp_path: Path, absent: int) -> None:
    params = {"timeout_s": 1.0, "absent_rank": absent, "absent_sleep_s": 4.0}
    outcomes = run_ranks("barrier", 2, tmp_path, params, timeout_s=60)
    waiting = outcomes[1 - absent]
    assert waiting.returncode == 0, waiting.stderr
    assert waiting.value["timed_out"] is True
    assert 0.9 <= waiting.value["elapsed"] < 3.5  # it gave up at ~1 s, not at the sleeper's 4 s
    assert "barrier timed out after 1s" in waiting.value["error"]
    if absent == 1:  # rank 0's monitored_barrier names the missing rank
        assert "Ranks 1 failed to pass monitoredBarrier" in waiting.value["error"]
    assert outcomes[absent].value == {"arrived": False}
