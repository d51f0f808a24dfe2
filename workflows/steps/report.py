"""``report``: the exit handler's first step. Tells the master how the workflow ended.

Workers report their own success and failures; this covers what they cannot report: pods
that never started, a deadline, a stop, a crash. A ``Succeeded`` workflow reports nothing
(rank 0 already did). Otherwise the master gets a ``failed`` report for rank 0, which it
ignores when the run already ended (the first terminal state wins) and maps to ``stopped``
while a stop is in flight.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from mlbench_core.wire import StatusUpdate
from workflows.steps import (
    EXIT_OK,
    StepFailed,
    StepUsageError,
    one_line,
    run_id,
    say,
    seconds,
)
from workflows.steps.master_api import (
    MasterAPI,
    MasterRejected,
    MasterUnreachable,
    api_url_from,
    token_from,
)

_MAX_REASON = 4000  # StatusUpdate.reason
_MAX_FAILURES_SHOWN = 5


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="Report a workflow that did not succeed to the master as a failed run.",
        description="For any --workflow-status but Succeeded, POST a failed status for rank 0 "
        "with the workflow's failures as reason. Token: env MLBENCH_TOKEN.",
    )
    p.add_argument("--run-id", required=True, type=run_id)
    p.add_argument("--api-url", help="Master base URL (default: env MLBENCH_API_URL).")
    p.add_argument("--workflow-name", required=True, help="{{workflow.name}}")
    p.add_argument(
        "--workflow-status", required=True, help="{{workflow.status}}: Succeeded, Failed, Error"
    )
    p.add_argument(
        "--failures",
        default="",
        help="{{workflow.failures}}: JSON list of failed nodes (other text is quoted as is).",
    )
    p.add_argument(
        "--timeout-s",
        type=seconds,
        default=120.0,
        help="How long to retry while the master is unreachable (120).",
    )
    p.set_defaults(run=run)


def summarize_failures(text: str) -> str:
    """``{{workflow.failures}}`` as one short line: ``train (monitor) Failed: message; ...``.

    Argo passes a JSON list of objects (displayName, message, templateName, phase, podName,
    finishedAt). An empty value, ``null``, ``[]`` or an unresolved ``{{...}}`` mean there are
    no details; any other text that is not such a list is kept as it is.
    """
    raw = text.strip()
    if not raw or raw.startswith("{{"):
        return ""
    try:
        data = json.loads(raw)
    except ValueError:
        return one_line(raw, 1000)
    if data is None:
        return ""
    if not isinstance(data, list):
        return one_line(raw, 1000)
    parts = [_failure(item) for item in data[:_MAX_FAILURES_SHOWN]]
    if len(data) > _MAX_FAILURES_SHOWN:
        parts.append(f"and {len(data) - _MAX_FAILURES_SHOWN} more")
    return "; ".join(p for p in parts if p)


def _failure(item: Any) -> str:
    if not isinstance(item, dict):
        return one_line(item, 300)
    name = item.get("displayName") or item.get("podName") or "?"
    template = item.get("templateName")
    phase = item.get("phase")
    message = item.get("message")
    text = str(name)
    if template and template != name:
        text += f" ({template})"
    if phase:
        text += f" {phase}"
    if message:
        text += f": {message}"
    return one_line(text, 400)


def failure_reason(workflow: str, status: str, failures: str) -> str:
    summary = summarize_failures(failures) or "no failure details"
    return one_line(f"workflow {workflow} {status}: {summary}", _MAX_REASON)


def run(args: argparse.Namespace) -> int:
    status = args.workflow_status.strip()
    api_url = api_url_from(args.api_url)
    if not status:
        raise StepUsageError("--workflow-status is empty")
    if status == "Succeeded":
        say(f"workflow {args.workflow_name} Succeeded: nothing to report (rank 0 reported)")
        return EXIT_OK
    token = token_from("MLBENCH_TOKEN", required=True)
    update = StatusUpdate(
        state="failed",
        rank=0,
        reason=failure_reason(args.workflow_name, status, args.failures),
    )
    body = update.model_dump(mode="json")
    with MasterAPI(api_url, token, retry_s=args.timeout_s) as master:
        try:
            run = master.post_status(args.run_id, body)
        except (MasterRejected, MasterUnreachable) as exc:
            raise StepFailed(f"could not report run {args.run_id}: {exc}") from None
    say(f"reported run {args.run_id} failed ({update.reason}); it is now {run.get('state', '?')}")
    return EXIT_OK
