"""``wait-ready``: wait until every worker pod of a run is Ready, failing fast when one cannot be.

Training starts on its own once the pods run (each worker joins the process group), so this
step exists to turn the usual ways a pod never comes up (image typo, missing Secret, no node
with a free GPU) into one readable line in the workflow instead of a silent hang until the
workflow's deadline.
"""

from __future__ import annotations

import argparse
import time

from workflows.steps import (
    EXIT_OK,
    StepFailed,
    dns_label,
    positive_int,
    say,
    seconds,
)
from workflows.steps.pods import KubeAccessError, PodState, WorkerPods, judge, summary
from workflows.steps.pods import transient_error_text as transient

# Without a change, a progress line is repeated this often (the log shows it is still alive).
_PROGRESS_EVERY_S = 30.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "wait-ready",
        help="Wait until all worker pods of a StatefulSet are Ready.",
        description="Exit 0 when all REPLICAS pods <statefulset>-<i> are Ready; exit 1 with one "
        "line naming the pod on a failure that waiting cannot fix, or at the timeout.",
    )
    p.add_argument("--namespace", required=True, type=dns_label, help="Namespace of the pods.")
    p.add_argument("--statefulset", required=True, type=dns_label, help="StatefulSet name.")
    p.add_argument("--replicas", required=True, type=positive_int, help="Pods to wait for.")
    p.add_argument(
        "--timeout-s", type=seconds, default=900.0, help="Seconds until it gives up (900)."
    )
    p.add_argument("--poll-s", type=seconds, default=2.0, help="Seconds between polls (2).")
    p.add_argument(
        "--config-error-grace-s",
        type=seconds,
        default=60.0,
        help="How long a CreateContainerConfigError (e.g. the run's Secret not created yet) "
        "is tolerated before it fails the step (60).",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    pods = WorkerPods(args.namespace, args.statefulset, args.replicas)
    where = f"{args.namespace}/{args.statefulset}"
    say(f"waiting up to {args.timeout_s:g} s for {args.replicas} pod(s) of StatefulSet {where}")
    start = time.monotonic()
    deadline = start + args.timeout_s
    config_errors: dict[str, float] = {}  # pod -> when its CreateContainerConfigError was seen
    last_line, last_said = "", 0.0
    while True:
        now = time.monotonic()
        try:
            found = pods.read()
        except KubeAccessError as exc:
            raise StepFailed(str(exc)) from None
        except Exception as exc:
            problem = transient(exc)
            if problem is None:
                raise
            line = f"cannot read the pods yet: {problem}"
        else:
            if found is None:
                line = f"StatefulSet {where} not found yet"
            else:
                states = [judge(name, found.get(name)) for name in pods.names]
                _fail_fast(states, config_errors, now, args.config_error_grace_s)
                line = summary(states)
                if all(s.ready for s in states):
                    say(f"{line} after {now - start:.0f} s")
                    return EXIT_OK
        if now >= deadline:
            raise StepFailed(f"pods of {where} not ready after {args.timeout_s:g} s: {line}")
        if line != last_line or now - last_said >= _PROGRESS_EVERY_S:
            say(line)
            last_line, last_said = line, now
        time.sleep(min(args.poll_s, max(0.0, deadline - now)))


def _fail_fast(
    states: list[PodState], config_errors: dict[str, float], now: float, grace_s: float
) -> None:
    """Raise StepFailed for the first pod that waiting cannot fix."""
    for state in states:
        if state.fatal is not None:
            raise StepFailed(f"pod {state.name}: {state.fatal}")
        if state.restarts > 0:
            # A worker only exits on failure, so a restart before training even began is one.
            detail = state.restart_detail or "a container restarted"
            raise StepFailed(f"pod {state.name}: {detail} (restarts: {state.restarts})")
        if state.config_error is None:
            config_errors.pop(state.name, None)
            continue
        since = config_errors.setdefault(state.name, now)
        if now - since >= grace_s:
            raise StepFailed(f"pod {state.name}: {state.config_error} (for {now - since:.0f} s)")
