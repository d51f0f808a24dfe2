"""What every bench script shares: interleaved repetitions, medians, the machine description and
the results file each script writes to ``bench/results/<figure>.json``.

A result file holds one figure: the machine it ran on, the parameters, one row per measured
variant (ours, the baseline, and any ceiling), and a summary with the headline ratio and whether
the issue's target was met. ``bench/report.py`` builds the README's performance table from them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

_PACKAGES = (
    "mlbench", "torch", "numpy", "sqlalchemy", "fastapi", "uvicorn", "httpx", "pydantic",
    "bokeh", "psycopg", "mlflow", "playwright",
)  # fmt: skip


@dataclass
class Row:
    """One measured variant of a figure."""

    label: str
    """What ran, e.g. ``"mlbench MetricsClient -> master (SQLite)"``."""
    role: str
    """``ours``, ``baseline`` or ``ceiling`` (a physical bound, e.g. memcpy bandwidth)."""
    value: float
    """The headline number (median over repetitions)."""
    unit: str
    """Unit of ``value``, e.g. ``points/s``, ``ms``, ``GB/s``."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Other figures of this variant (all repetitions, bytes sent, peak RSS, ...)."""


@dataclass
class Summary:
    """The headline of a figure: ours against the baseline, and the issue's target."""

    metric: str
    """What the ratio compares, e.g. ``"ingest throughput, ours / MLflow"``."""
    ratio: float | None
    """Ours over the baseline, oriented so that higher is better for us."""
    target: str
    """The target as the issue states it, e.g. ``">= 0.98"`` or ``"<= 100 ms"``."""
    met: bool | None
    """Whether the target was met (None where the figure cannot decide it here)."""


def machine() -> dict[str, Any]:
    """Cores, memory, CPU model, OS, Python and the versions of the packages that matter."""
    import psutil

    cpu_model = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "hostname": platform.node(),
        "os": platform.platform(),
        "cpu": cpu_model,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "packages": versions,
    }


def interleave(
    variants: dict[str, Callable[[], float]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Run each variant ``repeats`` times, alternating variants within each round (A B A B ...,
    with the order flipped every round), so machine noise falls on all of them alike. Each call
    returns its own measurement; ``warmup`` rounds are run and dropped."""
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_no in range(warmup + repeats):
        order = names if round_no % 2 == 0 else names[::-1]
        for name in order:
            value = variants[name]()
            if round_no >= warmup:
                samples[name].append(value)
    return samples


def median(values: list[float]) -> float:
    return statistics.median(values)


def add_output_args(parser: argparse.ArgumentParser) -> None:
    """``--results-dir`` (tests point it at a temporary folder) and ``--no-save``."""
    parser.add_argument(
        "--results-dir", type=Path, default=RESULTS_DIR, help="where the JSON result goes"
    )
    parser.add_argument("--no-save", action="store_true", help="print only, write no JSON")


def save(
    args: argparse.Namespace,
    figure: str,
    title: str,
    params: dict[str, Any],
    rows: list[Row],
    summary: Summary,
    notes: str = "",
) -> Path | None:
    """Write ``<results-dir>/<figure>.json`` and print the summary line (the ratio last)."""
    print(
        f"{summary.metric}: "
        + (f"{summary.ratio:.3g}x" if summary.ratio is not None else "n/a")
        + f" (target {summary.target}: {_met_word(summary.met)})"
    )
    if getattr(args, "no_save", False):
        return None
    payload = {
        "figure": figure,
        "title": title,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "params": params,
        "rows": [asdict(row) for row in rows],
        "summary": asdict(summary),
        "notes": notes,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / f"{figure}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    print(f"wrote {path}")
    return path


def _met_word(met: bool | None) -> str:
    return {True: "met", False: "missed", None: "not decided here"}[met]


def print_rows(rows: list[Row]) -> None:
    width = max(len(row.label) for row in rows) + 2
    for row in rows:
        print(f"{row.label:{width}}{row.role:>9}{row.value:>14.4g} {row.unit}")
