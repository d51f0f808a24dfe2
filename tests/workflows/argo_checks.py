"""What Argo and Kubernetes would check of our YAML, done here without a cluster.

Argo's official JSON schema accepts unknown fields (it has no ``additionalProperties``), so a
misspelt field such as ``podGc`` would pass it and be dropped silently by the controller;
``strict_argo_validator`` closes every object of the schema to catch exactly that.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = "argo-workflows-v4.1.2.schema.json"
SHARED_SCHEMA = ROOT.parent / "shared" / "schemas" / SCHEMA_FILE
"""Argo's official schema as the project's machines provide it, beside the checkout."""
VENDORED_SCHEMA = ROOT / "tests" / "workflows" / "schemas" / SCHEMA_FILE
"""A byte-identical copy, for clones without ../shared (checked equal when both exist)."""
ARGO_SCHEMA = SHARED_SCHEMA if SHARED_SCHEMA.exists() else VENDORED_SCHEMA
DEFS = "io.argoproj.workflow.v1alpha1."
K8S_VERSIONS = ("1.33.0", kubernetes_validate.latest_version())
"""The oldest Kubernetes we support and the newest schemas we have."""
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
GLOBALS_ANYWHERE = {"workflow.name", "workflow.namespace", "workflow.uid"}
GLOBALS_EXIT_HANDLER = {"workflow.status", "workflow.failures", "workflow.duration"}
_TAG = re.compile(r"\{\{([^{}]*)\}\}")


@functools.cache
def argo_schema() -> dict[str, Any]:
    return json.loads(ARGO_SCHEMA.read_text())


def _closed(schema: dict[str, Any]) -> dict[str, Any]:
    closed = copy.deepcopy(schema)
    for definition in closed["definitions"].values():
        if (
            "properties" in definition
            and "additionalProperties" not in definition
            and not definition.get("x-kubernetes-preserve-unknown-fields")
        ):
            definition["additionalProperties"] = False
    return closed


@functools.cache
def argo_validator(kind: str, strict: bool = False) -> jsonschema.Draft202012Validator:
    """Validator for one kind (``Workflow``, ``WorkflowTemplate``) against the official schema;
    with ``strict`` every object rejects properties the schema does not define."""
    schema = _closed(argo_schema()) if strict else argo_schema()
    root = {"$ref": f"#/definitions/{DEFS}{kind}", "definitions": schema["definitions"]}
    jsonschema.Draft202012Validator.check_schema(root)
    return jsonschema.Draft202012Validator(root)


def argo_errors(obj: dict[str, Any], strict: bool = True) -> list[str]:
    """Schema errors of a Workflow or WorkflowTemplate dict, as readable lines."""
    validators = [argo_validator(obj["kind"], strict=False)]
    if strict:
        validators.append(argo_validator(obj["kind"], strict=True))
    # The schema's own root (oneOf over all kinds) must accept it too.
    validators.append(jsonschema.Draft202012Validator(argo_schema()))
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message[:300]}"
        for validator in validators
        for error in validator.iter_errors(obj)
    ]


def k8s_errors(obj: dict[str, Any]) -> list[str]:
    """``kubernetes-validate --strict`` for every supported Kubernetes version."""
    errors = []
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{obj['kind']} on {version}: {exc.message}")
    return errors


def templates(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in obj["spec"]["templates"]}


def embedded_manifests(obj: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(template name, action, parsed manifest) of every resource template."""
    for template in obj["spec"]["templates"]:
        resource = template.get("resource")
        if resource:
            yield template["name"], resource["action"], yaml.safe_load(resource["manifest"])


def resource_manifest(obj: dict[str, Any], template: str) -> dict[str, Any]:
    return yaml.safe_load(templates(obj)[template]["resource"]["manifest"])


def step_refs(template: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for group in template.get("steps") or []:
        yield from group


def reachable(obj: dict[str, Any], start: str) -> set[str]:
    """Templates reachable from ``start`` through steps."""
    by_name, seen, todo = templates(obj), set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        todo.extend(s["template"] for s in step_refs(by_name[name]))
    return seen


def tags(value: Any) -> Iterator[str]:
    """Every ``{{...}}`` expression inside a nested structure."""
    if isinstance(value, str):
        yield from (match.strip() for match in _TAG.findall(value))
    elif isinstance(value, dict):
        for item in value.values():
            yield from tags(item)
    elif isinstance(value, list):
        for item in value:
            yield from tags(item)


_SELECTOR_TERM = re.compile(
    r"^\s*(!?[A-Za-z0-9_.\-/\[\]]+)\s*"
    r"(?:(==|=|!=|>|<)\s*[A-Za-z0-9_.\-]*|\s+(in|notin)\s*\([A-Za-z0-9_.\-,\s]*\))?\s*$"
)


def selector_parses(text: str) -> bool:
    """The label-selector grammar Argo's executor parses success/failure conditions with
    (``labels.Parse``): comma-separated ``key``, ``!key``, ``key op value``, ``key in (...)``."""
    parts = re.split(r",(?![^()]*\))", text)
    return bool(text.strip()) and all(_SELECTOR_TERM.match(part) for part in parts)


def semantic_errors(obj: dict[str, Any]) -> list[str]:
    """What Argo's validator checks when a Workflow or WorkflowTemplate is submitted."""
    spec, errors = obj["spec"], []
    by_name = templates(obj)
    if len(by_name) != len(spec["templates"]):
        errors.append("template names are not unique")
    name = obj["metadata"]["name"]
    if not DNS_LABEL.match(name) or len(name) > 63:
        errors.append(f"object name {name!r} is not a DNS-1123 label")
    for tname, template in by_name.items():
        if not DNS_LABEL.match(tname) or len(tname) > 63:
            errors.append(f"template name {tname!r} is not a DNS-1123 label")
        step_names = [s["name"] for s in step_refs(template)]
        if len(step_names) != len(set(step_names)):
            errors.append(f"template {tname!r} repeats a step name")
        for ref in step_refs(template):
            if ref["template"] not in by_name:
                errors.append(f"step {ref['name']!r} uses unknown template {ref['template']!r}")
        resource = template.get("resource") or {}
        for key in ("successCondition", "failureCondition"):
            if key in resource and not selector_parses(resource[key]):
                errors.append(f"{tname}: {key} {resource[key]!r} does not parse")
        if "{{" in resource.get("manifest", ""):
            errors.append(f"{tname}: embedded manifest contains '{{{{'")
    for key in ("entrypoint", "onExit"):
        if key in spec and spec[key] not in by_name:
            errors.append(f"{key} {spec[key]!r} is no template")
    used = reachable(obj, spec["entrypoint"]) | (
        reachable(obj, spec["onExit"]) if "onExit" in spec else set()
    )
    if set(by_name) - used:
        errors.append(f"unused templates: {sorted(set(by_name) - used)}")
    errors += _tag_errors(obj, by_name)
    return errors


def _tag_errors(obj: dict[str, Any], by_name: dict[str, dict[str, Any]]) -> list[str]:
    spec, errors = obj["spec"], []
    params = {p["name"] for p in (spec.get("arguments") or {}).get("parameters", [])}
    exit_side = reachable(obj, spec["onExit"]) if "onExit" in spec else set()
    outputs_of_step = {}
    for template in by_name.values():
        for ref in step_refs(template):
            target = by_name.get(ref["template"], {})
            produced = target.get("outputs", {}).get("parameters", [])
            outputs_of_step[ref["name"]] = {p["name"] for p in produced}
    for tname, template in by_name.items():
        for tag in tags(template):
            parts = tag.split(".")
            if tag.startswith("workflow.parameters."):
                if parts[2] not in params:
                    errors.append(f"{tname}: {{{{{tag}}}}} is no workflow parameter")
            elif tag.startswith("steps."):
                step_name, produced = parts[1], outputs_of_step.get(parts[1], set())
                if parts[2:4] != ["outputs", "parameters"] or parts[4] not in produced:
                    errors.append(f"{tname}: {{{{{tag}}}}} is no output of step {step_name!r}")
            elif tag in GLOBALS_EXIT_HANDLER:
                if tname not in exit_side:
                    errors.append(f"{tname}: {{{{{tag}}}}} is only set in the exit handler")
            elif tag not in GLOBALS_ANYWHERE:
                errors.append(f"{tname}: unknown variable {{{{{tag}}}}}")
    return errors
