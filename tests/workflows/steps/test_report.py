"""``report`` as a real process, against a real master (``mlbench serve``)."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import free_port
from tests.served import TOKEN as ADMIN_TOKEN
from tests.served import ServedMaster
from tests.workflows.steps.helpers import run_step, step_env
from workflows.steps.report import failure_reason, summarize_failures

FAILURES = [
    {
        "displayName": "train",
        "message": "Error (exit code 1)",
        "templateName": "train",
        "phase": "Failed",
        "podName": "mlbench-3-rep-train-123",
        "finishedAt": "2026-01-01T00:10:00Z",
    },
    {
        "displayName": "wait-ready",
        "message": "Pod was active on the node longer than the specified deadline",
        "templateName": "wait-ready",
        "phase": "Failed",
        "podName": "mlbench-3-rep-wait-ready-9",
        "finishedAt": "2026-01-01T00:05:00Z",
    },
]


def report_args(api_url: str, run_id: int, status: str, failures: str = "") -> list[str]:
    return [
        "report",
        "--run-id",
        str(run_id),
        "--api-url",
        api_url,
        "--workflow-name",
        f"mlbench-{run_id}-rep",
        "--workflow-status",
        status,
        "--failures",
        failures,
        "--timeout-s",
        "1",
    ]


# ---------------------------------------------------------------- the failures summary


def test_summarize_failures() -> None:
    assert summarize_failures(json.dumps(FAILURES)) == (
        "train Failed: Error (exit code 1); wait-ready Failed: Pod was active on the node "
        "longer than the specified deadline"
    )
    item = {"displayName": "train(0)", "templateName": "train", "phase": "Error", "message": "x"}
    assert summarize_failures(json.dumps([item])) == "train(0) (train) Error: x"
    many = [{"displayName": f"s{i}", "phase": "Failed"} for i in range(7)]
    assert summarize_failures(json.dumps(many)).endswith("s4 Failed; and 2 more")


@pytest.mark.parametrize("text", ["", "  ", "null", "[]", "{{workflow.failures}}"])
def test_no_failure_details(text: str) -> None:
    assert summarize_failures(text) == ""
    assert failure_reason("wf", "Failed", text) == "workflow wf Failed: no failure details"


def test_text_that_is_no_failure_list_is_kept_on_one_line() -> None:
    assert summarize_failures("Stopped with strategy\n'Stop'") == "Stopped with strategy 'Stop'"
    assert summarize_failures('{"a": 1}') == '{"a": 1}'
    assert len(failure_reason("wf", "Failed", "x" * 10_000)) <= 4000


# ---------------------------------------------------------------- as a process


def test_succeeded_workflow_reports_nothing() -> None:
    # Nothing listens there: any request would fail the step.
    url = f"http://127.0.0.1:{free_port()}"
    step = run_step(report_args(url, 3, "Succeeded"), step_env(MLBENCH_TOKEN="t"))
    assert step.proc.returncode == 0, step.stderr
    assert "nothing to report" in step.stdout


def test_failed_workflow_fails_the_run_at_a_real_master(served: ServedMaster) -> None:
    created = served.http.post(
        "/api/v1/runs",
        json={
            "name": "report-fails-it",
            "benchmark": "digits-mlp",
            "workers": 1,
            "executor": "local",
            "goal": {"kind": "custom", "value": 1.5},
            "overrides": {"epochs": 10000},
        },
    )
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    env = step_env(MLBENCH_TOKEN=ADMIN_TOKEN)  # status reports take the admin token too
    step = run_step(report_args(served.url, run_id, "Failed", json.dumps(FAILURES[:1])), env)
    assert step.proc.returncode == 0, step.stderr
    reason = f"workflow mlbench-{run_id}-rep Failed: train Failed: Error (exit code 1)"
    run = served.wait(run_id, {"failed"}, timeout_s=30)
    assert run["reason"] == f"rank 0: {reason}"
    assert "it is now failed" in step.stdout

    # Reporting again (a retried exit handler) is harmless: the run already ended.
    step = run_step(report_args(served.url, run_id, "Error"), env)
    assert step.proc.returncode == 0, step.stderr
    assert served.run(run_id)["reason"] == f"rank 0: {reason}"


def test_unreachable_master_exits_1_after_bounded_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    begin = time.monotonic()
    step = run_step(report_args(url, 3, "Failed"), step_env(MLBENCH_TOKEN="t"))
    assert step.proc.returncode == 1
    assert time.monotonic() - begin < 20
    assert step.last_error_line().startswith(
        f"mlbench-step report: could not report run 3: master at {url} did not answer "
        "the status report within 1 s: ConnectError"
    )


def test_rejected_report_exits_1(served: ServedMaster) -> None:
    step = run_step(report_args(served.url, 999_999, "Failed"), step_env(MLBENCH_TOKEN="bad"))
    assert step.proc.returncode == 1
    assert step.last_error_line() == (
        "mlbench-step report: could not report run 999999: master answered 401 to the "
        "status report: invalid token"
    )


def test_missing_token_exits_2() -> None:
    step = run_step(report_args("http://127.0.0.1:1", 3, "Failed"), step_env())
    assert step.proc.returncode == 2
    assert step.stderr.strip() == (
        "mlbench-step report: environment variable MLBENCH_TOKEN is not set"
    )
