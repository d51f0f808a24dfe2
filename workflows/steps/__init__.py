"""In-pod steps of the Kubernetes path: ``python -m workflows.steps <command>`` (``mlbench-step``).

Each run's Argo Workflow (``workflows.run_workflow``) runs ``wait-ready``, ``monitor`` and, in
its exit handler, ``report``; the per-benchmark WorkflowTemplates run ``submit`` and ``follow``.
Commands, options and exit codes: docs/kubernetes-steps.md.

Exit codes of every command: 0 done, 1 failed (one line on stderr says why), 2 bad input
(one line on stderr), 130 interrupted.
"""

from __future__ import annotations

import argparse
import re
import sys

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class StepFailed(Exception):
    """The step's check failed: the message is the one line printed, exit code 1."""


class StepUsageError(Exception):
    """Bad options or environment: the message is the one line printed, exit code 2."""


def say(message: str) -> None:
    """A progress line on stdout, flushed at once: Argo shows step logs as they stream."""
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def one_line(text: object, limit: int = 1000) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# ------------------------------------------------------------------ option types (argparse)
# Each raises ArgumentTypeError with a readable message; the parser prints it as one line.

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def dns_label(text: str) -> str:
    """A namespace or object name (DNS label)."""
    if not _DNS_LABEL.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a DNS label (lowercase a-z, 0-9, '-')")
    return text


def _int_at_least(text: str, minimum: int, what: str = "") -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}{text!r} is not an integer") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{what}{value} must be >= {minimum}")
    return value


def positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def run_id(text: str) -> int:
    return _int_at_least(text, 0, "run id ")


def seconds(text: str) -> float:
    """A positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < 10**7:
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of seconds")
    return value
