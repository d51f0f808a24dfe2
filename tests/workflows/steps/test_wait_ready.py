"""``wait-ready`` as a real process against the fake Kubernetes API over HTTP."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fakes.kube_api import FakeKubeAPI
from tests.workflows.steps.helpers import (
    NS,
    STS,
    Step,
    pod,
    run_step,
    set_pod,
    statefulset,
    step_env,
)


def args(*extra: str, replicas: int = 2, timeout_s: float = 30) -> list[str]:
    return [
        "wait-ready",
        "--namespace",
        NS,
        "--statefulset",
        STS,
        "--replicas",
        str(replicas),
        "--timeout-s",
        str(timeout_s),
        "--poll-s",
        "0.2",
        *extra,
    ]


def test_waits_until_every_pod_is_ready(kube: FakeKubeAPI, kubeconfig: Path) -> None:
    kube.add(statefulset())
    kube.add(pod(0, waiting=("ContainerCreating", "")))
    # Another run's pod of a similar name and other labels never counts.
    kube.add(pod(0, sts="mlbench-8-demo", labels={"app.kubernetes.io/name": "mlbench-worker"}))
    step = Step(args(), step_env(kubeconfig))
    try:
        step.wait_for_output(f"0/2 pods ready; not ready: {STS}-0 (ContainerCreating), {STS}-1")
        set_pod(kube, 0)
        kube.add(pod(1))
        assert step.finish() == 0, step.stderr
    finally:
        step.kill()
    assert "2/2 pods ready after" in step.stdout
    # One list call per poll, by the StatefulSet's own selector.
    lists = kube.calls("GET", f"/namespaces/{NS}/pods")
    assert lists and all("mlbench.io/run-id=7" in c.query["labelSelector"] for c in lists)


def test_statefulset_not_there_yet_is_waited_for(kube: FakeKubeAPI, kubeconfig: Path) -> None:
    step = Step(args(replicas=1), step_env(kubeconfig))
    try:
        step.wait_for_output(f"StatefulSet {NS}/{STS} not found yet")
        kube.add(statefulset(replicas=1))
        kube.add(pod(0))
        assert step.finish() == 0, step.stderr
    finally:
        step.kill()


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        (
            {"waiting": ("ImagePullBackOff", 'Back-off pulling image "mlbench/wroker:1"')},
            'container worker ImagePullBackOff: Back-off pulling image "mlbench/wroker:1"',
        ),
        (
            {"waiting": ("CrashLoopBackOff", "back-off 10s restarting failed container")},
            "container worker CrashLoopBackOff: back-off 10s restarting failed container",
        ),
        ({"terminated": 2}, "container worker terminated with exit code 2 (Error)"),
        (
            {"restarts": 1, "last_exit": (137, "OOMKilled")},
            "container worker terminated with exit code 137 (OOMKilled) (restarts: 1)",
        ),
    ],
)
def test_fails_fast_when_a_pod_cannot_come_up(
    kube: FakeKubeAPI, kubeconfig: Path, container: dict[str, object], expected: str
) -> None:
    kube.add(statefulset())
    kube.add(pod(0))
    kube.add(pod(1, **container))
    begin = time.monotonic()
    step = run_step(args(timeout_s=120), step_env(kubeconfig))
    assert step.proc.returncode == 1, step.stderr
    assert time.monotonic() - begin < 20
    assert step.last_error_line() == f"mlbench-step wait-ready: pod {STS}-1: {expected}"


def test_timeout_names_what_is_not_ready_with_the_scheduler_message(
    kube: FakeKubeAPI, kubeconfig: Path
) -> None:
    message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    kube.add(statefulset())
    kube.add(pod(0))
    kube.add(pod(1, unschedulable=message))
    step = run_step(args(timeout_s=1.5), step_env(kubeconfig))
    assert step.proc.returncode == 1
    assert step.last_error_line() == (
        f"mlbench-step wait-ready: pods of {NS}/{STS} not ready after 1.5 s: 1/2 pods ready; "
        f"not ready: {STS}-1 (Unschedulable: {message})"
    )


def test_missing_secret_is_tolerated_for_a_while(kube: FakeKubeAPI, kubeconfig: Path) -> None:
    kube.add(statefulset(replicas=1))
    config_error = ("CreateContainerConfigError", 'secret "mlbench-7-demo-token" not found')
    kube.add(pod(0, waiting=config_error))
    step = Step(args("--config-error-grace-s", "30", replicas=1), step_env(kubeconfig))
    try:
        step.wait_for_output("CreateContainerConfigError")
        set_pod(kube, 0)  # the Secret arrived, the container started
        assert step.finish() == 0, step.stderr
    finally:
        step.kill()

    # ... but not for longer than the grace.
    set_pod(kube, 0, waiting=config_error)
    step = run_step(args("--config-error-grace-s", "1", replicas=1), step_env(kubeconfig))
    assert step.proc.returncode == 1
    assert step.last_error_line().startswith(
        f"mlbench-step wait-ready: pod {STS}-0: container worker CreateContainerConfigError: "
        'secret "mlbench-7-demo-token" not found (for '
    )


def test_refused_by_the_api_server_is_one_line(kube: FakeKubeAPI, tmp_path: Path) -> None:
    kube.add(statefulset())
    config = kube.write_kubeconfig(tmp_path / "kc", namespace=NS)
    config.write_text(config.read_text().replace("kube-token", "wrong-token"))
    step = run_step(args(), step_env(config))
    assert step.proc.returncode == 1
    line = step.last_error_line()
    assert line.startswith("mlbench-step wait-ready: ") and "401" in line, step.stderr


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (["--replicas", "0"], "argument --replicas: 0 must be >= 1"),
        (["--namespace", "Bad_NS"], "argument --namespace: 'Bad_NS' is not a DNS label"),
        (["--timeout-s", "-1"], "argument --timeout-s: -1 must be a positive number of seconds"),
    ],
)
def test_bad_options_exit_2_with_one_line(bad: list[str], expected: str) -> None:
    step = run_step([*args(), *bad], step_env())
    assert step.proc.returncode == 2
    lines = step.stderr.strip().splitlines()
    assert len(lines) == 1, step.stderr
    assert lines[0].startswith(f"mlbench-step wait-ready: error: {expected}")


def test_no_cluster_configuration_is_one_line(tmp_path: Path) -> None:
    env = step_env(tmp_path / "missing-kubeconfig", HOME=str(tmp_path))
    step = run_step(args(), env)
    assert step.proc.returncode == 1
    assert len(step.stderr.strip().splitlines()) == 1, step.stderr
    assert "no Kubernetes configuration" in step.stderr
