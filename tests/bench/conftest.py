"""Bench scripts are benchmarks, not timed tests: these tests run each one on tiny sizes and
check that it measured ours and its baseline and wrote a well-formed result file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_bench(script: str, tmp_path: Path, *args: str, timeout: float = 240) -> dict[str, Any]:
    """Run ``bench/<script>`` with ``--results-dir tmp_path`` and return the JSON it wrote."""
    results = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--results-dir", str(results), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    files = list(results.glob("*.json"))
    assert len(files) == 1, f"{script} wrote {files}"
    payload = json.loads(files[0].read_text())
    check_result(payload)
    # The ratio is printed last, after the rows.
    assert "x (target" in done.stdout or "n/a (target" in done.stdout, done.stdout
    return payload


def check_result(payload: dict[str, Any]) -> None:
    assert payload["machine"]["logical_cores"] >= 1
    assert payload["machine"]["python"]
    roles = {row["role"] for row in payload["rows"]}
    assert {"ours", "baseline"} <= roles, roles
    for row in payload["rows"]:
        assert row["value"] > 0, row
        assert row["unit"]
    summary = payload["summary"]
    assert summary["target"]
    if summary["ratio"] is not None:
        assert summary["ratio"] > 0
