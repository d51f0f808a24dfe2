"""``python -m workflows.steps <command>`` / ``mlbench-step``: the in-pod workflow steps.

Every problem ends in one line on stderr, ``mlbench-step <command>: <what>``, and the exit
code says which kind: 1 the step's check failed, 2 bad input (see workflows/steps/__init__.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from workflows.steps import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    StepFailed,
    StepUsageError,
    launcher,
    monitor,
    report,
    wait_ready,
)

PROG = "mlbench-step"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage block) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="In-pod steps of mlbench's Argo workflows.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wait_ready.add_parser(sub)
    monitor.add_parser(sub)
    report.add_parser(sub)
    launcher.add_parsers(sub)
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    """The steps, as a function returning the exit code."""
    args = build_parser().parse_args(argv)
    # Only warnings from libraries: the steps print their own progress lines.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
    where = f"{PROG} {args.command}"
    try:
        return int(args.run(args))
    except StepUsageError as exc:
        print(f"{where}: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except StepFailed as exc:
        print(f"{where}: {exc}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED


def main() -> None:
    """Console script ``mlbench-step``."""
    sys.exit(run())


if __name__ == "__main__":
    main()
