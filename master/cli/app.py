"""``mlbench``: start and follow benchmark runs, inspect results, serve the master."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from master.cli.client import ApiError, Client
from master.cli.connect import ConnectError, Connection, connect
from master.cli.db import db_app
from master.cli.render import render as render_command
from master.cli.watch import follow, group_table, result_table
from mlbench_core.spec import (
    ExecutorKind,
    GoalKind,
    RunSpec,
    SpecFileError,
    load_spec_file,
    parse_override,
)
from mlbench_core.states import RunState

app = typer.Typer(
    help=__doc__, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False
)
runs_app = typer.Typer(help="List, inspect, stop and delete runs.", no_args_is_help=True)
metrics_app = typer.Typer(help="Export the metrics of a run.", no_args_is_help=True)
benchmarks_app = typer.Typer(help="The benchmark catalog.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(metrics_app, name="metrics")
app.add_typer(benchmarks_app, name="benchmarks")
app.add_typer(db_app, name="db")
app.command("render")(render_command)

out = Console()
err = Console(stderr=True)

ApiUrl = Annotated[
    str | None,
    typer.Option("--api-url", help="Master URL (env MLBENCH_API_URL).", show_default=False),
]
Token = Annotated[
    str | None,
    typer.Option("--token", help="Admin token (env MLBENCH_ADMIN_TOKEN).", show_default=False),
]

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_STOPPED = 1, 2, 3


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    # Messages quote user input and regexes ("[a-z0-9]"); unescaped, rich would eat them as markup.
    err.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _connect(api_url: str | None, token: str | None, *, embed: bool = False) -> Connection:
    try:
        conn = connect(api_url, token, embed=embed)
    except (ConnectError, RuntimeError) as exc:
        raise fail(str(exc)) from None
    if conn.embedded is not None:
        err.print(f"started an embedded master at {conn.url} for this command")
    if conn.dashboard is not None:
        err.print(f"dashboard: {conn.dashboard.url}", highlight=False)
    return conn


def _api(call: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return call(*args, **kwargs)
    except ApiError as exc:
        code = EXIT_BAD_INPUT if exc.status in (400, 404, 409, 422) else EXIT_FAILED
        raise fail(str(exc), code) from None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to bind.")] = 8000,
    dashboard_port: Annotated[
        int,
        typer.Option(
            min=0,
            max=65535,
            envvar="MLBENCH_DASHBOARD_PORT",
            help="Port of the dashboard (same address as the master); 0 = no dashboard.",
        ),
    ] = 5006,
) -> None:
    """Run the master (REST API, storage, executors) and its dashboard in the foreground."""
    from master.auth import admin_token_path
    from master.server import serve as run_server
    from master.settings import Settings

    settings = Settings(host=host, port=port)
    err.print(f"mlbench master on http://{host}:{port} · data in {settings.data_dir}")
    dashboard = None
    if dashboard_port:
        from bokeh_app.server import DashboardServer

        token = settings.admin_token.get_secret_value() if settings.admin_token else None
        try:
            # No token yet on a first start: sessions read the file the master writes.
            dashboard = DashboardServer(
                f"http://{_local_address(host)}:{port}",  # same process: the bind address
                token,
                host,
                dashboard_port,
                token_file=admin_token_path(settings),
            ).start()
            err.print(f"dashboard: {dashboard.url}", highlight=False)
        except OSError as exc:
            err.print(f"[yellow]no dashboard:[/] port {dashboard_port}: {escape(str(exc))}")
    try:
        run_server(settings)
    finally:
        if dashboard is not None:
            dashboard.stop()


def _local_address(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):  # a wildcard bind is reached through loopback
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _build_spec(
    benchmark: str,
    name: str | None,
    workers: int,
    overrides: list[str],
    goal: GoalKind,
    goal_value: float | None,
    seed: int,
    max_duration: int,
    repeat: int,
    executor: ExecutorKind | None = None,
) -> list[RunSpec]:
    """One spec, or ``repeat`` specs of one group with seeds seed, seed+1, ..."""
    try:
        pairs = dict(parse_override(text) for text in overrides)
        if goal_value is not None:
            goal = GoalKind.custom
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        base = name or f"{benchmark[:22]}-{stamp}"
        names = [base] if repeat == 1 else [f"{base[:35]}-r{i}" for i in range(repeat)]
        return [
            RunSpec(
                name=run_name,
                benchmark=benchmark,
                workers=workers,
                overrides=pairs,
                goal={"kind": goal, "value": goal_value},
                seed=seed + i,
                group=None if repeat == 1 else base,
                max_duration_s=max_duration,
                executor=executor,
            )
            for i, run_name in enumerate(names)
        ]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise fail(f"{where}: {message}" if where else message, EXIT_BAD_INPUT) from None
    except ValueError as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None


# Options of ``run`` that build a spec: with --spec the file holds the whole spec instead.
_SPEC_OPTIONS = {
    "benchmark": "BENCHMARK",
    "workers": "--workers",
    "overrides": "--set",
    "goal": "--goal",
    "goal_value": "--goal-value",
    "name": "--name",
    "seed": "--seed",
    "max_duration": "--max-duration",
    "repeat": "--repeat",
    "executor": "--executor",
}


def _spec_from_file(ctx: typer.Context, path: Path) -> list[RunSpec]:
    given = [
        flag
        for param, flag in _SPEC_OPTIONS.items()
        # By name: typer may bring its own copy of click's ParameterSource enum.
        if getattr(ctx.get_parameter_source(param), "name", "DEFAULT") != "DEFAULT"
    ]
    if given:
        raise fail(f"--spec and {given[0]} do not mix: the file holds the whole spec", 2)
    try:
        return [load_spec_file(path)]
    except SpecFileError as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None


@app.command()
def run(
    ctx: typer.Context,
    benchmark: Annotated[
        str, typer.Argument(help="Benchmark id (see `mlbench benchmarks list`).")
    ] = "digits-mlp",
    workers: Annotated[
        int, typer.Option("--workers", "-n", min=1, max=256, help="Worker processes.")
    ] = 2,
    overrides: Annotated[
        list[str], typer.Option("--set", help="Setting override key=value (repeatable).")
    ] = [],  # noqa: B006
    goal: Annotated[GoalKind, typer.Option(help="Which goal to aim at.")] = GoalKind.full,
    goal_value: Annotated[
        float | None, typer.Option(help="Custom goal value (implies --goal custom).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Run name (DNS label); default: benchmark-time.")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Random seed.")] = 0,
    max_duration: Annotated[int, typer.Option(min=1, help="Hard time limit in seconds.")] = 3600,
    repeat: Annotated[
        int,
        typer.Option(
            min=1,
            max=100,
            help="Run K times (seeds seed..seed+K-1), one after the other, as a "
            "group, and summarise time-to-goal (MLPerf olympic mean, mean ± std).",
        ),
    ] = 1,
    detach: Annotated[bool, typer.Option(help="Submit and return without following.")] = False,
    executor: Annotated[
        ExecutorKind | None,
        typer.Option(
            help="Where the workers run: local (this machine) or argo (Kubernetes); "
            "default: the master's MLBENCH_DEFAULT_EXECUTOR.",
            show_default=False,
        ),
    ] = None,
    spec_file: Annotated[
        Path | None,
        typer.Option(
            "--spec",
            help="RunSpec file (JSON or YAML) holding the whole spec, instead of the "
            "benchmark argument and the spec options.",
            show_default=False,
        ),
    ] = None,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Start a run, follow it live and print its result. Starts a master if none is running."""
    if detach and repeat > 1:
        raise fail("--detach and --repeat do not mix: repeats run one after the other", 2)
    if spec_file is not None:
        specs = _spec_from_file(ctx, spec_file)
    else:
        specs = _build_spec(
            benchmark,
            name,
            workers,
            overrides,
            goal,
            goal_value,
            seed,
            max_duration,
            repeat,
            executor,
        )
    conn = _connect(api_url, token, embed=not detach)
    try:
        states = []
        for spec in specs:
            created = _api(conn.client.create_run, spec.model_dump(mode="json"))
            run_id = created["id"]
            err.print(f"run {run_id} '{spec.name}' submitted to {conn.url}")
            if detach:
                out.print(run_id)
                return
            final = _follow_with_stop(conn.client, run_id, spec)
            out.print(result_table(final, _api(conn.client.result, run_id)))
            states.append(RunState(final["state"]))
            if states[-1] is RunState.stopped:
                break  # a stop (Ctrl-C) ends the whole series
        if specs[0].group:
            out.print(group_table(_api(conn.client.group, specs[0].group)))
        if all(state is RunState.succeeded for state in states):
            return
        raise typer.Exit(EXIT_STOPPED if RunState.stopped in states else EXIT_FAILED)
    finally:
        conn.close()


def _follow_with_stop(client: Client, run_id: int, spec: RunSpec) -> dict[str, Any]:
    from mlbench_core.tasks import get_task

    task_goal = get_task(spec.benchmark).goal
    metric = task_goal.metric if task_goal else None
    try:
        return follow(client, run_id, err, goal_metric=metric, target=spec.goal_value())
    except KeyboardInterrupt:
        err.print(f"stopping run {run_id} (Ctrl-C again to leave it running)")
        _api(client.stop, run_id)
        return follow(client, run_id, err, goal_metric=metric, target=spec.goal_value())


@app.command()
def nodes(
    as_json: Annotated[bool, typer.Option("--json", help="Print the master's JSON.")] = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """The machines runs can use: the cluster's nodes (argo), or the master's host (local)."""
    conn = _connect(api_url, token)
    try:
        items = _api(conn.client.nodes)
    finally:
        conn.close()
    if as_json:
        out.print_json(json.dumps(items))
        return
    source = items[0]["source"] if items else "kubernetes"
    table = Table(title=f"nodes ({source})")
    for column in ("name", "ready", "cpu", "memory", "gpu", "arch", "instance type"):
        table.add_column(column)
    for node in items:
        cap, alloc = node["capacity"], node["allocatable"]
        table.add_row(
            node["name"],
            "yes" if node["ready"] else "no",
            f"{alloc['cpu']:g} / {cap['cpu']:g}",
            f"{_gib(alloc['memory'])} / {_gib(cap['memory'])}",
            f"{alloc['gpu']} / {cap['gpu']}",
            node.get("arch") or "",
            node.get("instance_type") or "",
        )
    out.print(table)
    err.print("cpu, memory and gpu: allocatable / capacity", highlight=False)


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f}Gi"


@runs_app.command("list")
def runs_list(
    state: Annotated[
        list[RunState], typer.Option(help="Only runs in this state (repeatable).")
    ] = [],  # noqa: B006
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """List runs, newest first."""
    conn = _connect(api_url, token)
    try:
        page = _api(conn.client.runs, [s.value for s in state], limit, offset)
    finally:
        conn.close()
    table = Table(title=f"runs {offset + 1}-{offset + len(page['items'])} of {page['total']}")
    for column in ("id", "name", "benchmark", "workers", "state", "created"):
        table.add_column(column)
    for item in page["items"]:
        table.add_row(
            str(item["id"]),
            item["name"],
            item["benchmark"],
            str(item["spec"]["workers"]),
            item["state"],
            item["created_at"][:19],
        )
    out.print(table)


@runs_app.command("show")
def runs_show(run_id: int, api_url: ApiUrl = None, token: Token = None) -> None:
    """A run's state history and result."""
    conn = _connect(api_url, token)
    try:
        item = _api(conn.client.run, run_id)
        result = _api(conn.client.result, run_id)
    finally:
        conn.close()
    history = Table(title="transitions")
    for column in ("at", "from", "to", "reason"):
        history.add_column(column)
    for t in item.get("transitions", []):
        history.add_row(t["at"][:23], t["from_state"] or "", t["to_state"], t.get("reason") or "")
    out.print(history)
    out.print(result_table(item, result))


@runs_app.command("stop")
def runs_stop(run_id: int, api_url: ApiUrl = None, token: Token = None) -> None:
    """Stop a run (its workers get SIGTERM, then SIGKILL after a grace period)."""
    conn = _connect(api_url, token)
    try:
        item = _api(conn.client.stop, run_id)
    finally:
        conn.close()
    out.print(f"run {run_id}: {item['state']}")


@runs_app.command("delete")
def runs_delete(run_id: int, api_url: ApiUrl = None, token: Token = None) -> None:
    """Delete a finished run with its metrics and result."""
    conn = _connect(api_url, token)
    try:
        _api(conn.client.delete, run_id)
    finally:
        conn.close()
    out.print(f"run {run_id} deleted")


@metrics_app.command("export")
def metrics_export(
    run_id: int,
    fmt: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default: stdout).")
    ] = None,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Write every metric point of a run as CSV or JSON."""
    if fmt not in ("csv", "json"):
        raise fail(f"--format must be csv or json, not {fmt!r}", EXIT_BAD_INPUT)
    conn = _connect(api_url, token)
    try:
        sink = open(output, "wb") if output else sys.stdout.buffer  # noqa: SIM115
        try:
            for chunk in conn.client.export(run_id, fmt):
                sink.write(chunk)
        except ApiError as exc:
            raise fail(str(exc), EXIT_BAD_INPUT if exc.status == 404 else EXIT_FAILED) from None
        finally:
            if output:
                sink.close()
    finally:
        conn.close()


@benchmarks_app.command("list")
def benchmarks_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The benchmarks this version ships, with their goals."""
    from mlbench_core.tasks import all_tasks

    entries = [task.describe() for task in all_tasks()]
    if as_json:
        out.print_json(json.dumps(entries))
        return
    table = Table(title="benchmarks")
    for column in ("id", "title", "goal (full / light)"):
        table.add_column(column)
    for entry in entries:
        goal = entry["goal"]
        text = f"{goal['metric']} {goal['full']:g} / {goal['light']:g}" if goal else "—"
        table.add_row(entry["id"], entry["title"], text)
    out.print(table)


def main() -> None:
    app()
