"""Every Workflow and WorkflowTemplate validates against Argo's official JSON schema (also
with unknown fields rejected) and round-trips through Hera's models of the Argo API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hera.workflows import models as m

from mlbench_core.spec import RunSpec
from tests.workflows.argo_checks import (
    ROOT,
    SHARED_SCHEMA,
    VENDORED_SCHEMA,
    argo_errors,
    argo_schema,
)
from workflows.config import RunTarget

GENERATED = sorted(
    path
    for folder in ("argo/workflowtemplates", "argo/examples")
    for path in (ROOT / folder).glob("*.yaml")
)


def test_the_schema_is_the_official_one_we_expect() -> None:
    schema = argo_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {"$ref": "#/definitions/io.argoproj.workflow.v1alpha1.Workflow"} in schema["oneOf"]


def test_the_vendored_schema_is_the_shared_one() -> None:
    if not SHARED_SCHEMA.exists():
        pytest.skip(f"{SHARED_SCHEMA} is not beside this checkout; the vendored copy is used")
    assert VENDORED_SCHEMA.read_bytes() == SHARED_SCHEMA.read_bytes()


def test_run_workflows_validate(run_case: tuple[RunSpec, RunTarget, dict[str, Any]]) -> None:
    _, _, workflow = run_case
    assert workflow["kind"] == "Workflow"
    assert argo_errors(workflow) == []


def test_workflow_templates_validate(template_dict: dict[str, Any]) -> None:
    assert template_dict["kind"] == "WorkflowTemplate"
    assert argo_errors(template_dict) == []


@pytest.mark.parametrize("path", GENERATED, ids=lambda p: p.name)
def test_generated_files_validate(path: Path) -> None:
    assert argo_errors(yaml.safe_load(path.read_text())) == []


def test_strict_validation_catches_misspelt_and_mistyped_fields() -> None:
    workflow = yaml.safe_load((ROOT / "argo/examples/digits-mlp-workflow.yaml").read_text())
    workflow["spec"]["podGc"] = workflow["spec"].pop("podGC")
    workflow["spec"]["templates"][0]["steps"][0][0]["continueOn"] = {"failed": "yes"}
    errors = "\n".join(argo_errors(workflow))
    assert "'podGc' was unexpected" in errors
    assert "'yes' is not of type 'boolean'" in errors


def _round_trip(model: type[m.Workflow] | type[m.WorkflowTemplate], obj: dict[str, Any]) -> None:
    parsed = model.model_validate(obj)
    assert parsed.model_dump(by_alias=True, exclude_none=True, mode="json") == obj


def test_run_workflows_round_trip_through_hera(
    run_case: tuple[RunSpec, RunTarget, dict[str, Any]],
) -> None:
    _round_trip(m.Workflow, run_case[2])


def test_workflow_templates_round_trip_through_hera(template_dict: dict[str, Any]) -> None:
    _round_trip(m.WorkflowTemplate, template_dict)
