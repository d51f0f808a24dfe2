"""``mlbench render``: the Argo YAML of a run (or a benchmark's launcher) without submitting.

For review before a first cluster run, for GitOps, and for ``argo submit`` by hand: the
output is exactly what the master's Argo executor would submit for the same RunSpec.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from mlbench_core.spec import GoalKind, RunSpec

EXIT_BAD_INPUT = 2


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def render(
    benchmark: Annotated[str, typer.Argument(help="Benchmark id (see `mlbench benchmarks list`).")],
    overrides: Annotated[
        list[str], typer.Option("--set", help="Setting override key=value (repeatable).")
    ] = [],  # noqa: B006
    workers: Annotated[
        int, typer.Option("--workers", "-n", min=1, max=256, help="Worker pods.")
    ] = 2,
    name: Annotated[
        str | None, typer.Option(help="Run name (DNS label); default: benchmark-time.")
    ] = None,
    goal: Annotated[GoalKind, typer.Option(help="Which goal to aim at.")] = GoalKind.full,
    goal_value: Annotated[
        float | None, typer.Option(help="Custom goal value (implies --goal custom).")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Random seed.")] = 0,
    max_duration: Annotated[int, typer.Option(min=1, help="Hard time limit in seconds.")] = 3600,
    image: Annotated[str | None, typer.Option(help="Worker image.")] = None,
    run_id: Annotated[
        int, typer.Option(min=0, help="Run id to render for (the master assigns real ones).")
    ] = 1,
    api_url: Annotated[
        str | None,
        typer.Option(
            "--api-url",
            help="Master URL as pods reach it; default http://mlbench-master.<namespace>:8000 "
            "(with --template: http://mlbench-master:8000).",
            show_default=False,
        ),
    ] = None,
    namespace: Annotated[str, typer.Option(help="Kubernetes namespace.")] = "mlbench",
    template: Annotated[
        bool, typer.Option("--template", help="Render the benchmark's WorkflowTemplate instead.")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default: stdout).")
    ] = None,
) -> None:
    """Print the Argo Workflow of a run (or with --template the benchmark's launcher
    WorkflowTemplate) as YAML, without submitting anything."""
    # Imported here: app.py imports this module to register the command.
    from master.cli.app import _build_spec, fail
    from workflows.config import ClusterConfig, RunTarget
    from workflows.render import to_yaml
    from workflows.run_workflow import build_workflow
    from workflows.templates import DEFAULT_MASTER_URL, build_template

    cluster = ClusterConfig(namespace=namespace)
    try:
        if template:
            obj = build_template(
                benchmark,
                image=image,
                master_url=api_url or DEFAULT_MASTER_URL,
                cluster=cluster,
            )
        else:
            spec = _build_spec(
                benchmark=benchmark,
                name=name,
                workers=workers,
                overrides=overrides,
                goal=goal,
                goal_value=goal_value,
                seed=seed,
                max_duration=max_duration,
                repeat=1,
            )[0]
            update = {"executor": "argo"} | ({"image": image} if image is not None else {})
            spec = RunSpec.model_validate(spec.model_dump() | update)
            url = api_url or f"http://mlbench-master.{namespace}:8000"
            obj = build_workflow(spec, RunTarget(run_id=run_id, api_url=url, cluster=cluster))
        text = to_yaml(obj)
    except ValidationError as exc:
        raise fail(_first_error(exc), EXIT_BAD_INPUT) from None
    except ValueError as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text)
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc.strerror or exc}") from None
    typer.echo(f"wrote {output}", err=True)
