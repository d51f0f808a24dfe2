"""bench/report.py: the README's performance table is generated from bench/results."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import report


def result(figure: str, ours: float, base: float, met: bool | None) -> dict:
    return {
        "figure": figure,
        "title": f"Figure {figure}",
        "measured_at": "2026-11-27T12:00:00+00:00",
        "machine": {"logical_cores": 2, "memory_gib": 23.4, "python": "3.11.7"},
        "params": {},
        "rows": [
            {"label": "ours", "role": "ours", "value": ours, "unit": "points/s", "extra": {}},
            {"label": "theirs", "role": "baseline", "value": base, "unit": "points/s"},
        ],
        "summary": {"metric": "x", "ratio": ours / base, "target": ">= 10x", "met": met},
    }


def test_readme_table_matches_the_committed_results() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "report.py"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    readme = (ROOT / "README.md").read_text()
    for path in (ROOT / "bench" / "results").glob("*.json"):
        assert report.json.loads(path.read_text())["title"] in readme


def test_render_orders_figures_and_marks_misses() -> None:
    table = report.render(
        [result("metrics_ingest", 120_000, 900, True), result("loop_overhead", 0.5, 1.0, False)]
    )
    lines = table.splitlines()
    assert lines[0].startswith("| figure | mlbench | baseline |")
    assert "Figure metrics_ingest" in lines[2] and "120,000 points/s" in lines[2]
    assert "133x" in lines[2] and "| yes |" in lines[2]
    assert "**no**" in lines[3] and "0.5x" in lines[3]
    assert "2 cores, 23.4 GiB, Python 3.11.7, 2026-11-27" in lines[2]


def test_gpu_figures_name_the_card() -> None:
    gpu = result("gpu_resnet20", 14_000, 13_700, True)
    gpu["params"]["gpu"] = {"device": "NVIDIA H200"}
    assert "NVIDIA H200, 2 cores" in report.render([gpu])


def test_update_replaces_only_the_marked_table(tmp_path: Path) -> None:
    readme = f"# top\n\n{report.START}\nold table\n{report.END}\n\n## after\n"
    updated = report.update(readme, "NEW")
    assert updated == f"# top\n\n{report.START}\nNEW\n{report.END}\n\n## after\n"
    with pytest.raises(ValueError, match="markers"):
        report.update("# no markers\n", "NEW")


def test_check_fails_when_the_readme_is_stale(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "metrics_ingest.json").write_text(
        report.json.dumps(result("metrics_ingest", 1e5, 1e3, True))
    )
    readme = tmp_path / "README.md"
    readme.write_text(f"x\n{report.START}\n{report.END}\n")
    argv = [sys.executable, str(ROOT / "bench" / "report.py"), "--results-dir", str(results)]
    argv += ["--readme", str(readme)]
    assert subprocess.run([*argv, "--check"], capture_output=True).returncode == 1
    assert subprocess.run(argv, capture_output=True).returncode == 0
    assert "Figure metrics_ingest" in readme.read_text()
    assert subprocess.run([*argv, "--check"], capture_output=True).returncode == 0
