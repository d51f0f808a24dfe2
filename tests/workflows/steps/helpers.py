"""Shared parts of the step tests: pod and StatefulSet objects for the fake Kubernetes API,
the steps as real processes, and a fake master whose runs carry a reason."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.kube_api import FakeKubeAPI
from tests.mlbench_core.fake_master import FakeMaster

ROOT = Path(__file__).resolve().parents[3]
NS = "mlbench"
STS = "mlbench-7-demo"
RUN_ID = 7
TOKEN = "run-7-token"
LABELS = {"app.kubernetes.io/name": "mlbench-worker", "mlbench.io/run-id": str(RUN_ID)}


def statefulset(name: str = STS, replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": NS, "labels": LABELS},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": LABELS},
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {"containers": [{"name": "worker", "image": "mlbench/worker:test"}]},
            },
        },
    }


def container_status(
    *,
    ready: bool = True,
    waiting: tuple[str, str] | None = None,
    terminated: int | None = None,
    restarts: int = 0,
    last_exit: tuple[int, str] | None = None,
) -> dict[str, Any]:
    """A ``worker`` container status: running (ready), waiting (reason, message), or
    terminated with an exit code; ``last_exit`` = the previous run's (code, reason)."""
    if waiting is not None:
        state: dict[str, Any] = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
        ready = False
    elif terminated is not None:
        state = {"terminated": {"exitCode": terminated, "reason": "Error"}}
        ready = False
    else:
        state = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    status: dict[str, Any] = {
        "name": "worker",
        "image": "mlbench/worker:test",
        "imageID": "",
        "ready": ready,
        "restartCount": restarts,
        "state": state,
    }
    if last_exit is not None:
        status["lastState"] = {"terminated": {"exitCode": last_exit[0], "reason": last_exit[1]}}
    return status


def pod(
    index: int,
    *,
    sts: str = STS,
    labels: dict[str, str] | None = None,
    phase: str = "Running",
    unschedulable: str | None = None,
    **container: Any,
) -> dict[str, Any]:
    """Worker pod ``<sts>-<index>``; Ready exactly when its container is ready."""
    status = container_status(**container)
    conditions = [
        {"type": "PodScheduled", "status": "True"},
        {"type": "Ready", "status": "True" if status["ready"] else "False"},
    ]
    pod_status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions,
        "containerStatuses": [status],
    }
    if unschedulable is not None:
        pod_status = {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": unschedulable,
                }
            ],
        }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{sts}-{index}", "namespace": NS, "labels": labels or LABELS},
        "spec": {"containers": [{"name": "worker", "image": "mlbench/worker:test"}]},
        "status": pod_status,
    }


def set_pod(kube: FakeKubeAPI, index: int, **kwargs: Any) -> None:
    """Replace the stored pod ``<STS>-<index>`` (its whole status) by ``pod(index, ...)``."""
    with kube.lock:
        for key in list(kube.objects):
            if key[2:] == ("pods", f"{STS}-{index}"):
                del kube.objects[key]
    kube.add(pod(index, **kwargs))


def step_env(kubeconfig: Path | None = None, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLBENCH_", "KUBERNETES_")) and k != "KUBECONFIG"
    }
    env["PYTHONPATH"] = str(ROOT)
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    env.update(extra)
    return env


class Step:
    """``python -m workflows.steps ...`` as a process; stdout and stderr collected by threads."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workflows.steps", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    def wait_for_output(self, text: str, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end and text not in self.stdout:
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        assert text in self.stdout, f"no {text!r} in stdout:\n{self.stdout}\nstderr:\n{self.stderr}"

    def finish(self, timeout: float = 60) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"step did not exit in {timeout}s:\n{self.stdout}\n{self.stderr}")
        for thread in self._threads:
            thread.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def last_error_line(self) -> str:
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else ""


def run_step(args: list[str], env: dict[str, str], timeout: float = 60) -> Step:
    """Run a step to its end; the caller checks ``proc.returncode`` and the output."""
    step = Step(args, env)
    try:
        step.finish(timeout)
    finally:
        step.kill()
    return step


class ReasonMaster(FakeMaster):
    """The fake master, with the run's ``reason`` in GET answers as the real master sends it."""

    reason = ""

    def handle(self, method: str, path: str, auth: str, body: bytes) -> tuple[int, Any] | None:
        answer = super().handle(method, path, auth, body)
        if method == "GET" and answer is not None and answer[0] == 200:
            answer[1]["reason"] = self.reason
        return answer
