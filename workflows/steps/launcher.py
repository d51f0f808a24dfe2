"""``submit`` and ``follow``: the steps of the per-benchmark WorkflowTemplates (launchers).

A launcher does not run workers itself: it creates the run at the master (admin token), which
submits the real per-run Workflow through its Argo executor, so every run, however started,
is stored in the master and shown in the dashboard. ``follow`` then waits for its outcome.

Argo passes every template parameter as a string, also the unset ones, so an empty value
means "not given" for every optional option of ``submit``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mlbench_core.spec import RunSpec, parse_override
from worker.invocation import describe_validation_error
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

ADMIN_TOKEN_ENV = "MLBENCH_ADMIN_TOKEN"


class SubmitRejected(StepUsageError):
    """The master refused the spec (4xx): bad input, exit code 2."""


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "submit",
        help="Create a run at the master from options; write its id to --output.",
        description="Build a RunSpec from the options, POST it to the master with the admin "
        "token (env MLBENCH_ADMIN_TOKEN) and print the new run's id. Empty values count as "
        "not given. Exit 2 on a spec the master or the RunSpec rules refuse.",
    )
    p.add_argument("--api-url", help="Master base URL (default: env MLBENCH_API_URL).")
    p.add_argument("--name", required=True, help="Run name (DNS label).")
    p.add_argument("--benchmark", required=True, help="Benchmark id, e.g. digits-mlp.")
    p.add_argument("--workers", help="Number of workers (RunSpec default 2).")
    p.add_argument("--backend", help="gloo or nccl.")
    p.add_argument("--cpu", help="CPU cores per worker.")
    p.add_argument("--memory", help="Memory per worker, e.g. 4Gi.")
    p.add_argument("--gpu", help="GPUs per worker.")
    p.add_argument("--goal", help="full, light or custom (a --goal-value alone means custom).")
    p.add_argument("--goal-value", help="Target value of a custom goal.")
    p.add_argument("--seed", help="Random seed.")
    p.add_argument("--group", help="Group of repeats (DNS label).")
    p.add_argument("--overrides", help="Task settings as a JSON object, e.g. '{\"lr\": 0.2}'.")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="One task setting (repeatable; applied after --overrides).",
    )
    p.add_argument("--image", help="Worker image.")
    p.add_argument("--max-duration-s", help="Hard wall-clock limit of the run.")
    p.add_argument(
        "--executor", default="argo", help="argo (default), local; empty: the master's default."
    )
    p.add_argument("--output", type=Path, help="Write the new run's id to this file.")
    p.add_argument(
        "--timeout-s",
        type=seconds,
        default=30.0,
        help="How long to retry while the master cannot be reached (30).",
    )
    p.set_defaults(run=submit)

    f = sub.add_parser(
        "follow",
        help="Wait until a run ends; exit 0 iff it succeeded.",
        description="Poll the run, printing each state change, until it ends. Exit 0 when it "
        "succeeded, 1 when it failed or stopped (or cannot be followed).",
    )
    f.add_argument("--run-id", required=True, type=run_id)
    f.add_argument("--api-url", help="Master base URL (default: env MLBENCH_API_URL).")
    f.add_argument("--poll-s", type=seconds, default=5.0, help="Seconds between polls (5).")
    f.add_argument(
        "--master-grace-s",
        type=seconds,
        default=300.0,
        help="How long the master may be unreachable before giving up (300).",
    )
    f.set_defaults(run=follow)


# ------------------------------------------------------------------ submit


def _given(value: str | None) -> str | None:
    return value.strip() if value is not None and value.strip() else None


def _number(value: str | None, option: str, kind: type[int] | type[float]) -> Any:
    text = _given(value)
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise StepUsageError(f"{option} {text!r} is not {noun}") from None


def _overrides(text: str | None, pairs: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    raw = _given(text)
    if raw is not None:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise StepUsageError(f"--overrides is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise StepUsageError("--overrides must be a JSON object of task settings")
        result.update(data)
    for pair in pairs:
        try:
            key, value = parse_override(pair)
        except ValueError as exc:
            raise StepUsageError(f"--set: {exc}") from None
        result[key] = value
    return result


def build_spec(args: argparse.Namespace) -> RunSpec:
    """The RunSpec the options describe; StepUsageError names the first problem."""
    fields: dict[str, Any] = {"name": args.name.strip(), "benchmark": args.benchmark.strip()}
    optional = {
        "workers": _number(args.workers, "--workers", int),
        "backend": _given(args.backend),
        "seed": _number(args.seed, "--seed", int),
        "group": _given(args.group),
        "image": _given(args.image),
        "max_duration_s": _number(args.max_duration_s, "--max-duration-s", int),
        "executor": _given(args.executor),
    }
    fields.update({k: v for k, v in optional.items() if v is not None})
    resources = {
        "cpu": _number(args.cpu, "--cpu", float),
        "memory": _given(args.memory),
        "gpu": _number(args.gpu, "--gpu", int),
    }
    if any(v is not None for v in resources.values()):
        fields["resources"] = {k: v for k, v in resources.items() if v is not None}
    kind = _given(args.goal)
    value = _number(args.goal_value, "--goal-value", float)
    if kind is not None or value is not None:
        fields["goal"] = {"kind": kind or "custom", "value": value}
    overrides = _overrides(args.overrides, args.set)
    if overrides:
        fields["overrides"] = overrides
    try:
        return RunSpec.model_validate(fields)
    except ValidationError as exc:
        raise StepUsageError(f"invalid run spec: {describe_validation_error(exc)}") from None


def submit(args: argparse.Namespace) -> int:
    api_url = api_url_from(args.api_url)
    spec = build_spec(args)
    token = token_from(ADMIN_TOKEN_ENV, required=True)
    body = spec.model_dump(mode="json")
    with MasterAPI(api_url, token, retry_s=args.timeout_s) as master:
        try:
            run = master.create_run(body)
        except MasterRejected as exc:
            raise SubmitRejected(f"master refused the run ({exc.status}): {exc.detail}") from None
        except MasterUnreachable as exc:
            raise StepFailed(str(exc)) from None
    new_id = run.get("id")
    if not isinstance(new_id, int):
        raise StepFailed(f"master answered without a run id: {one_line(run, 300)}")
    if args.output is not None:
        try:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            # No newline: Argo takes the file's content as the output parameter's value.
            args.output.write_text(str(new_id), encoding="utf-8")
        except OSError as exc:
            raise StepFailed(f"cannot write the run id to {args.output}: {exc}") from None
    if run.get("state") == "failed":
        # Created but not started (the executor refused): follow reports it as a failure.
        print(
            f"run {new_id} was created but failed to start: {one_line(run.get('reason'), 600)}",
            file=sys.stderr,
        )
    print(new_id, flush=True)
    return EXIT_OK


# ------------------------------------------------------------------ follow


def follow(args: argparse.Namespace) -> int:
    api_url = api_url_from(args.api_url)
    # Reads are open unless the master sets auth_reads; then the admin token reads too.
    token = token_from(ADMIN_TOKEN_ENV, "MLBENCH_TOKEN", required=False)
    last = ""
    down_since: float | None = None
    with MasterAPI(api_url, token) as master:
        while True:
            try:
                run = master.get_run(args.run_id, retry_s=min(args.poll_s, 10.0))
            except MasterRejected as exc:
                raise StepFailed(f"cannot follow run {args.run_id}: {exc}") from None
            except MasterUnreachable as exc:
                now = time.monotonic()
                down_since = down_since or now
                if now - down_since >= args.master_grace_s:
                    raise StepFailed(f"{exc} (for {now - down_since:.0f} s)") from None
                print(f"follow: {exc}", file=sys.stderr, flush=True)
            else:
                down_since = None
                state = str(run.get("state"))
                reason = one_line(run.get("reason", "") or "", 600)
                if state != last:
                    say(f"run {args.run_id}: {state}" + (f" ({reason})" if reason else ""))
                    last = state
                if state == "succeeded":
                    return EXIT_OK
                if state in ("failed", "stopped"):
                    raise StepFailed(f"run {args.run_id} {state}: {reason or 'no reason given'}")
            time.sleep(args.poll_s)
