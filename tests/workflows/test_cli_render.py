"""``mlbench render``: the YAML the Argo executor would submit, printed without a cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from master.cli.app import app
from tests.workflows.argo_checks import ROOT, argo_errors, semantic_errors
from workflows import names

runner = CliRunner()


def test_render_prints_a_valid_workflow() -> None:
    result = runner.invoke(
        app,
        [
            *("render", "digits-mlp", "--name", "cli-run", "--run-id", "42", "-n", "3"),
            *("--set", "lr=0.2", "--image", "reg.example/worker:2", "--namespace", "team-a"),
        ],
    )
    assert result.exit_code == 0, result.output
    workflow = yaml.safe_load(result.stdout)
    assert workflow["kind"] == "Workflow"
    assert workflow["metadata"]["name"] == names.run_object_name(42, "cli-run")
    assert workflow["metadata"]["namespace"] == "team-a"
    assert argo_errors(workflow) == [] and semantic_errors(workflow) == []
    text = result.stdout
    assert "reg.example/worker:2" in text and "--replicas\n      - '3'" in text
    assert '"overrides":{"lr":0.2}' in text and '"executor":"argo"' in text
    assert "http://mlbench-master.team-a:8000" in text


def test_render_template() -> None:
    result = runner.invoke(app, ["render", "1a", "--template", "--image", "reg.example/w:1"])
    assert result.exit_code == 0, result.output
    template = yaml.safe_load(result.stdout)
    assert template["kind"] == "WorkflowTemplate"
    assert template["metadata"]["name"] == "mlbench-1a"
    params = {p["name"]: p["value"] for p in template["spec"]["arguments"]["parameters"]}
    assert params["image"] == "reg.example/w:1"
    assert argo_errors(template) == []


def test_render_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "wf.yaml"
    result = runner.invoke(app, ["render", "2a", "--name", "to-file", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert yaml.safe_load(out.read_text())["kind"] == "Workflow"


def _render(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-c", "from master.cli.app import main; main()", "render", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


BAD_INPUT = [
    (["nope"], "unknown benchmark 'nope'"),
    (["nope", "--template"], "unknown benchmark 'nope'"),
    (["1a", "--set", "bogus=1"], "'bogus' not a setting of '1a'"),
    (["1a", "--name", "x", "--namespace", "Bad_NS"], "namespace 'Bad_NS'"),
    (["1a", "--name", "x", "--image", ""], "image"),
]


def test_bad_input_is_one_readable_line_and_exit_2() -> None:
    for args, message in BAD_INPUT:
        result = runner.invoke(app, ["render", *args])
        assert result.exit_code == 2, (args, result.output)
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, result.stderr)


def test_bad_input_in_a_real_process() -> None:
    done = _render("nope")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "error: unknown benchmark 'nope' (known: 1a, 2a, 3a, 4b, allreduce, digits-mlp)"
    ]
