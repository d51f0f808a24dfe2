"""How a worker is invoked: its command line and ``MLBENCH_*`` environment, checked.

Every problem with the invocation becomes one ``UsageError`` with a readable one-line message;
``worker.main`` prints it and exits with code 2.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from pydantic import ValidationError

from mlbench_core.spec import RunSpec, SpecFileError, load_spec_file
from mlbench_core.spec import describe_validation_error as describe_first_error


class UsageError(Exception):
    """Bad invocation: printed as one line, exit code 2."""


@dataclass(frozen=True)
class ReportEnv:
    """Where and as whom this worker reports (``MLBENCH_*`` variables)."""

    api_url: str
    run_id: int
    token: str


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; defaults come from ``MLBENCH_*`` variables of this process."""
    parser = argparse.ArgumentParser(
        prog="mlbench-worker",
        description="Run one rank of an mlbench run (torchrun environment + MLBENCH_* variables).",
    )
    parser.add_argument(
        "--spec",
        metavar="FILE",
        help="RunSpec JSON file; default: the MLBENCH_SPEC environment variable (JSON text).",
    )
    parser.add_argument(
        "--no-report",
        action="store_true",
        help="Local debugging: report nothing to a master; MLBENCH_API_URL/RUN_ID/TOKEN unused.",
    )
    parser.add_argument(
        "--dist-timeout",
        type=float,
        default=float(os.environ.get("MLBENCH_DIST_TIMEOUT_S", "600")),
        metavar="SECONDS",
        help="Timeout of the rendezvous and of every collective (default 600, env "
        "MLBENCH_DIST_TIMEOUT_S).",
    )
    parser.add_argument(
        "--linger",
        action="store_true",
        default=_truthy(os.environ.get("MLBENCH_LINGER", "")),
        help="After a clean end, sleep until terminated instead of exiting (for StatefulSet "
        "pods, whose exited containers are restarted; env MLBENCH_LINGER=1).",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("MLBENCH_LOG_LEVEL", "INFO"),
        help="Python logging level (default INFO, env MLBENCH_LOG_LEVEL).",
    )
    return parser.parse_args(argv)


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def load_spec(path: str | None, environ: Mapping[str, str]) -> RunSpec:
    """Read and validate the RunSpec; every problem becomes one readable ``UsageError``."""
    if path:
        try:
            return load_spec_file(path)  # one reader for the CLI and the worker
        except SpecFileError as exc:
            raise UsageError(str(exc)) from None
    else:
        text = environ.get("MLBENCH_SPEC", "")
        if not text.strip():
            raise UsageError("no run spec: pass --spec FILE or set MLBENCH_SPEC to RunSpec JSON")
        source = "MLBENCH_SPEC"
    try:
        return RunSpec.model_validate_json(text)
    except ValidationError as exc:
        raise UsageError(
            f"invalid run spec in {source}: {describe_validation_error(exc)}"
        ) from None


def describe_validation_error(exc: Exception) -> str:
    """The first pydantic error as ``field: message``, plus how many more there are."""
    if not isinstance(exc, ValidationError):
        return one_line(str(exc))
    return describe_first_error(exc)


def read_report_env(environ: Mapping[str, str]) -> ReportEnv:
    """Where to report, from ``MLBENCH_API_URL``, ``MLBENCH_RUN_ID`` and ``MLBENCH_TOKEN``."""
    missing = [
        name
        for name in ("MLBENCH_API_URL", "MLBENCH_RUN_ID", "MLBENCH_TOKEN")
        if not environ.get(name, "").strip()
    ]
    if missing:
        raise UsageError(
            f"environment variable{'s' if len(missing) > 1 else ''} {', '.join(missing)} not set "
            "(needed to report to the master; use --no-report for local debugging)"
        )
    raw_id = environ["MLBENCH_RUN_ID"].strip()
    try:
        run_id = int(raw_id)
    except ValueError:
        raise UsageError(f"MLBENCH_RUN_ID={raw_id!r} is not an integer") from None
    if run_id < 0:
        raise UsageError(f"MLBENCH_RUN_ID={run_id} must be >= 0")
    url = environ["MLBENCH_API_URL"].strip()
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"MLBENCH_API_URL={url!r} is not an http(s) URL")
    return ReportEnv(url, run_id, environ["MLBENCH_TOKEN"].strip())


def data_dir_from(environ: Mapping[str, str]) -> Path:
    """``MLBENCH_DATA_DIR``, or the per-user data directory (spool, done markers, task data)."""
    configured = environ.get("MLBENCH_DATA_DIR", "").strip()
    if configured:
        return Path(configured)
    return Path(platformdirs.user_data_dir("mlbench"))


def one_line(text: str, limit: int = 4000) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
