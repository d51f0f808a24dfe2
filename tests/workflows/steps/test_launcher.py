"""``submit`` and ``follow`` as real processes: against a real master (``mlbench serve``) and,
for what a real master cannot be made to answer, a small recording master."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conftest import free_port
from tests.fakes.asgi_server import serve_in_thread
from tests.served import TOKEN as ADMIN_TOKEN
from tests.served import ServedMaster
from tests.workflows.steps.helpers import RUN_ID, TOKEN, ReasonMaster, run_step, step_env


@dataclass
class RecordingMaster:
    """POST /api/v1/runs: records the request, answers ``answer`` (status, body)."""

    answer: tuple[int, Any] = (201, {"id": 42, "state": "starting", "reason": ""})
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    url: str = ""

    async def _create(self, request: Request) -> JSONResponse:
        self.requests.append((request.headers.get("authorization", ""), await request.json()))
        return JSONResponse(self.answer[1], status_code=self.answer[0])

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/api/v1/runs", self._create, methods=["POST"])])


@pytest.fixture
def recorder() -> Iterator[RecordingMaster]:
    fake = RecordingMaster()
    with serve_in_thread(fake.app()) as url:
        fake.url = url
        yield fake


def submit_args(api_url: str, *options: str) -> list[str]:
    return ["submit", "--api-url", api_url, "--name", "launched", *options]


# Every template parameter, as the digits-mlp WorkflowTemplate passes them (unset = "").
TEMPLATE_OPTIONS = [
    "--benchmark", "digits-mlp",
    "--workers", "3",
    "--backend", "gloo",
    "--cpu", "1.5",
    "--memory", "3Gi",
    "--gpu", "0",
    "--goal", "full",
    "--goal-value", "",
    "--seed", "4",
    "--overrides", '{"lr": 0.2}',
    "--image", "registry.example/mlbench:1",
    "--max-duration-s", "600",
]  # fmt: skip


def test_submit_posts_the_spec_with_the_admin_token(
    recorder: RecordingMaster, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "run-id"
    args = submit_args(recorder.url, *TEMPLATE_OPTIONS, "--set", "epochs=3", "--output", str(out))
    step = run_step(args, step_env(MLBENCH_ADMIN_TOKEN="admin-x"))
    assert step.proc.returncode == 0, step.stderr
    assert step.stdout == "42\n"
    assert out.read_text() == "42"
    [(auth, body)] = recorder.requests
    assert auth == "Bearer admin-x"
    assert body["name"] == "launched" and body["benchmark"] == "digits-mlp"
    assert body["workers"] == 3 and body["seed"] == 4 and body["max_duration_s"] == 600
    assert body["resources"] == {"cpu": 1.5, "memory": "3Gi", "gpu": 0}
    assert body["goal"] == {"kind": "full", "value": None}
    assert body["overrides"] == {"lr": 0.2, "epochs": 3}
    assert body["executor"] == "argo" and body["image"] == "registry.example/mlbench:1"


def test_a_goal_value_alone_means_a_custom_goal(recorder: RecordingMaster) -> None:
    args = submit_args(recorder.url, "--benchmark", "digits-mlp", "--goal-value", "0.9")
    step = run_step(args, step_env(MLBENCH_ADMIN_TOKEN="a"))
    assert step.proc.returncode == 0, step.stderr
    assert recorder.requests[0][1]["goal"] == {"kind": "custom", "value": 0.9}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--benchmark", "nope"], "invalid run spec: unknown benchmark 'nope'"),
        (["--benchmark", "digits-mlp", "--workers", "x"], "--workers 'x' is not an integer"),
        (["--benchmark", "digits-mlp", "--workers", "0"], "invalid run spec: workers:"),
        (["--benchmark", "digits-mlp", "--overrides", "{lr"], "--overrides is not JSON"),
        (["--benchmark", "digits-mlp", "--overrides", "[1]"], "--overrides must be a JSON object"),
        (["--benchmark", "digits-mlp", "--set", "lr"], "--set: override 'lr' is not of the form"),
        (["--benchmark", "digits-mlp", "--set", "lr=x"], "setting 'lr'"),
        (
            ["--benchmark", "digits-mlp", "--goal", "full", "--goal-value", "0.5"],
            "goal kind 'full' takes no value",
        ),
        (["--benchmark", "digits-mlp", "--memory", "lots"], "memory 'lots' is not a quantity"),
    ],
)
def test_bad_spec_exits_2_with_one_line(
    recorder: RecordingMaster, options: list[str], expected: str
) -> None:
    step = run_step(submit_args(recorder.url, *options), step_env(MLBENCH_ADMIN_TOKEN="a"))
    assert step.proc.returncode == 2
    lines = step.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlbench-step submit: "), step.stderr
    assert expected in lines[0]
    assert recorder.requests == []


def test_master_refusal_exits_2_with_its_detail(recorder: RecordingMaster) -> None:
    recorder.answer = (
        422,
        {"detail": [{"loc": ["body", "executor"], "msg": "executor 'argo' is not configured"}]},
    )
    step = run_step(
        submit_args(recorder.url, "--benchmark", "digits-mlp"), step_env(MLBENCH_ADMIN_TOKEN="a")
    )
    assert step.proc.returncode == 2
    assert step.stderr.strip() == (
        "mlbench-step submit: master refused the run (422): executor: executor 'argo' is not "
        "configured"
    )


def test_unreachable_master_exits_1(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    out = tmp_path / "run-id"
    args = submit_args(url, "--benchmark", "digits-mlp", "--output", str(out), "--timeout-s", "1")
    step = run_step(args, step_env(MLBENCH_ADMIN_TOKEN="a"))
    assert step.proc.returncode == 1
    assert step.last_error_line().startswith(f"mlbench-step submit: master at {url} did not answer")
    assert not out.exists()


def test_submit_without_admin_token_exits_2(recorder: RecordingMaster) -> None:
    step = run_step(submit_args(recorder.url, "--benchmark", "digits-mlp"), step_env())
    assert step.proc.returncode == 2
    assert "MLBENCH_ADMIN_TOKEN is not set" in step.stderr


def test_submit_and_follow_a_run_at_a_real_master(served: ServedMaster, tmp_path: Path) -> None:
    out = tmp_path / "run-id"
    args = [
        "submit",
        "--api-url",
        served.url,
        "--name",
        "submitted-run",
        "--benchmark",
        "digits-mlp",
        "--workers",
        "1",
        "--executor",
        "local",
        "--set",
        "epochs=2",
        "--output",
        str(out),
    ]
    step = run_step(args, step_env(MLBENCH_ADMIN_TOKEN=ADMIN_TOKEN))
    assert step.proc.returncode == 0, step.stderr
    run_id = int(out.read_text())
    stored = served.run(run_id)
    assert stored["name"] == "submitted-run" and stored["spec"]["overrides"] == {"epochs": 2}

    follow = run_step(
        ["follow", "--api-url", served.url, "--run-id", str(run_id), "--poll-s", "0.2"],
        step_env(),
        timeout=120,
    )
    assert follow.proc.returncode == 0, follow.stderr
    lines = follow.stdout.strip().splitlines()
    assert lines[-1].startswith(f"run {run_id}: succeeded")
    assert served.run(run_id)["state"] == "succeeded"


@pytest.mark.parametrize("state", ["failed", "stopped"])
def test_follow_exits_1_when_the_run_did_not_succeed(state: str) -> None:
    with ReasonMaster(token=TOKEN, run_id=RUN_ID) as master:
        master.state, master.reason = state, "rank 1: RuntimeError: boom"
        step = run_step(
            ["follow", "--api-url", master.url, "--run-id", str(RUN_ID), "--poll-s", "0.2"],
            step_env(MLBENCH_TOKEN=TOKEN),
        )
    assert step.proc.returncode == 1
    assert step.stdout == f"run 7: {state} (rank 1: RuntimeError: boom)\n"
    assert (
        step.last_error_line() == f"mlbench-step follow: run 7 {state}: rank 1: RuntimeError: boom"
    )


def test_follow_of_an_unknown_run_exits_1(served: ServedMaster) -> None:
    step = run_step(["follow", "--api-url", served.url, "--run-id", "999999"], step_env())
    assert step.proc.returncode == 1
    assert step.last_error_line() == (
        "mlbench-step follow: cannot follow run 999999: master answered 404 to GET run 999999: "
        "run 999999 does not exist"
    )


def test_follow_bad_url_exits_2() -> None:
    step = run_step(["follow", "--api-url", "ftp://x", "--run-id", "1"], step_env())
    assert step.proc.returncode == 2
    assert step.stderr.strip() == "mlbench-step follow: --api-url 'ftp://x' is not an http(s) URL"
