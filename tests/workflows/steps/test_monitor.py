"""``monitor`` as a real process: rank 0's log from the fake Kubernetes API, the run's state
from a fake master (both over real HTTP)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.fakes.kube_api import FakeKubeAPI
from tests.workflows.steps.helpers import (
    NS,
    RUN_ID,
    STS,
    TOKEN,
    ReasonMaster,
    Step,
    pod,
    run_step,
    set_pod,
    statefulset,
    step_env,
)


@pytest.fixture
def master() -> Iterator[ReasonMaster]:
    with ReasonMaster(token=TOKEN, run_id=RUN_ID) as server:
        server.state = "running"
        server.reason = "rank 0 reported running"
        yield server


@pytest.fixture
def cluster(kube: FakeKubeAPI) -> FakeKubeAPI:
    kube.add(statefulset())
    kube.add(pod(0))
    kube.add(pod(1))
    return kube


def args(api_url: str, *extra: str) -> list[str]:
    return [
        "monitor",
        "--namespace",
        NS,
        "--statefulset",
        STS,
        "--replicas",
        "2",
        "--run-id",
        str(RUN_ID),
        "--api-url",
        api_url,
        "--poll-s",
        "0.2",
        *extra,
    ]


def test_streams_rank_0_log_and_exits_0_when_the_run_succeeds(
    cluster: FakeKubeAPI, kubeconfig: Path, master: ReasonMaster
) -> None:
    cluster.append_log(NS, f"{STS}-0", "rank0 INFO starting", "rank0 INFO epoch 1 loss 0.9")
    cluster.append_log(NS, f"{STS}-1", "rank1 INFO not shown")
    step = Step(args(master.url), step_env(kubeconfig, MLBENCH_TOKEN=TOKEN))
    try:
        step.wait_for_output("epoch 1 loss 0.9\n")
        # The stream ends (API server restart): the follower reconnects and goes on where it
        # was, without repeating a line.
        cluster.append_log(NS, f"{STS}-0", "rank0 INFO epoch 2 loss 0.5", close=True)
        step.wait_for_output("epoch 2 loss 0.5\n")
        log_path = f"/pods/{STS}-0/log"
        end = time.monotonic() + 10
        while len(cluster.calls("GET", log_path)) < 2 and time.monotonic() < end:
            time.sleep(0.05)  # until the follower has reconnected
        cluster.append_log(NS, f"{STS}-0", "rank0 INFO finished: goal_reached=True")
        step.wait_for_output("finished: goal_reached=True\n")
        assert step.proc.poll() is None  # the run is still running
        master.state, master.reason = "succeeded", "rank 0 succeeded"
        assert step.finish() == 0, step.stderr
    finally:
        step.kill()
    assert step.stdout.splitlines() == [
        "rank0 INFO starting",
        "rank0 INFO epoch 1 loss 0.9",
        "rank0 INFO epoch 2 loss 0.5",
        "rank0 INFO finished: goal_reached=True",
    ]
    assert "monitor: run 7 succeeded: rank 0 succeeded" in step.stderr
    follows = cluster.calls("GET", log_path)
    assert len(follows) >= 2 and follows[0].query == {"container": "worker", "follow": "true"}


def test_a_restarted_worker_container_fails_the_step(
    cluster: FakeKubeAPI, kubeconfig: Path, master: ReasonMaster
) -> None:
    step = Step(args(master.url), step_env(kubeconfig, MLBENCH_TOKEN=TOKEN))
    try:
        step.wait_for_output("")  # started
        set_pod(cluster, 1, restarts=1, last_exit=(137, "OOMKilled"))
        assert step.finish() == 1
    finally:
        step.kill()
    assert step.last_error_line() == (
        f"mlbench-step monitor: worker pod {STS}-1 restarted (1x): container worker "
        "terminated with exit code 137 (OOMKilled)"
    )


def test_crash_loop_fails_the_step(
    cluster: FakeKubeAPI, kubeconfig: Path, master: ReasonMaster
) -> None:
    set_pod(cluster, 0, waiting=("CrashLoopBackOff", "back-off 20s"), restarts=2)
    step = run_step(args(master.url), step_env(kubeconfig, MLBENCH_TOKEN=TOKEN))
    assert step.proc.returncode == 1
    assert step.last_error_line() == (
        f"mlbench-step monitor: worker pod {STS}-0: container worker CrashLoopBackOff: back-off 20s"
    )


def test_a_failed_run_fails_the_step_with_its_reason(
    cluster: FakeKubeAPI, kubeconfig: Path, master: ReasonMaster
) -> None:
    master.state, master.reason = "failed", "rank 1: RuntimeError: boom"
    # A crashed pod is visible too, but the run's own reason says more.
    set_pod(cluster, 1, restarts=1, last_exit=(1, "Error"))
    step = run_step(args(master.url), step_env(kubeconfig, MLBENCH_TOKEN=TOKEN))
    assert step.proc.returncode == 1
    assert step.last_error_line() == (
        "mlbench-step monitor: run 7 failed: rank 1: RuntimeError: boom"
    )


def test_a_stopped_run_fails_the_step(
    cluster: FakeKubeAPI, kubeconfig: Path, master: ReasonMaster
) -> None:
    master.state, master.reason = "stopped", "stopped on request"
    step = run_step(args(master.url), step_env(kubeconfig, MLBENCH_TOKEN=TOKEN))
    assert step.proc.returncode == 1
    assert step.last_error_line() == "mlbench-step monitor: run 7 stopped: stopped on request"


def test_master_401_is_fatal_with_a_clear_line(
    cluster: FakeKubeAPI, kubeconfig: Path, master: ReasonMaster
) -> None:
    step = run_step(args(master.url), step_env(kubeconfig, MLBENCH_TOKEN="wrong"))
    assert step.proc.returncode == 1
    assert step.last_error_line() == (
        "mlbench-step monitor: master answered 401 to GET run 7: invalid token "
        "(is MLBENCH_TOKEN this run's token?)"
    )


def test_master_unreachable_is_tolerated_only_for_the_grace(
    cluster: FakeKubeAPI, kubeconfig: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    step = run_step(args(url, "--master-grace-s", "1"), step_env(kubeconfig, MLBENCH_TOKEN=TOKEN))
    assert step.proc.returncode == 1
    assert "tolerated for" in step.stderr  # it did wait before giving up
    line = step.last_error_line()
    assert line.startswith(f"mlbench-step monitor: master at {url} did not answer GET run 7")
    assert "(unreachable for " in line


def test_a_vanished_worker_pod_fails_after_the_grace(
    cluster: FakeKubeAPI, kubeconfig: Path, master: ReasonMaster
) -> None:
    with cluster.lock:
        del cluster.objects[("/api/v1", NS, "pods", f"{STS}-1")]
    step = run_step(
        args(master.url, "--pod-grace-s", "1"), step_env(kubeconfig, MLBENCH_TOKEN=TOKEN)
    )
    assert step.proc.returncode == 1
    assert step.last_error_line().startswith(
        f"mlbench-step monitor: worker pod {STS}-1 is missing (for "
    )


def test_bad_run_id_exits_2(kubeconfig: Path) -> None:
    bad = args("http://127.0.0.1:1")
    bad[bad.index("--run-id") + 1] = "seven"
    step = run_step(bad, step_env(kubeconfig))
    assert step.proc.returncode == 2
    assert step.stderr.strip() == (
        "mlbench-step monitor: error: argument --run-id: run id 'seven' is not an integer"
    )
