"""``mlbench db upgrade``: apply the schema migrations and exit.

The master migrates at every start too; this command lets a deployment do it first (the Helm
chart's initContainer), so a master only serves once its database is up to date, and waits
for a database that is still starting.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

db_app = typer.Typer(help="The master's database.", no_args_is_help=True)

_err = Console(stderr=True)
_out = Console()
RETRY_PERIOD_S = 2.0


def _fail(message: str) -> typer.Exit:
    _err.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


@db_app.command("upgrade")
def upgrade_command(
    revision: Annotated[str, typer.Option(help="Alembic revision to reach.")] = "head",
    wait: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds to keep retrying while the database cannot be reached "
            "(e.g. still starting); 0 = try once.",
        ),
    ] = 0,
) -> None:
    """Migrate the database of MLBENCH_DATABASE_URL (default: the SQLite file in
    MLBENCH_DATA_DIR) to the newest schema, then exit."""
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    from master.migrate import alembic_config, upgrade
    from master.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise _fail(f"setting {where}: {first['msg']}") from None
    url = settings.resolved_database_url
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except Exception as exc:
        raise _fail(f"MLBENCH_DATABASE_URL is not a database URL: {_one_line(exc)}") from None
    deadline = time.monotonic() + wait
    waiting = False
    while True:
        try:
            upgrade(url, revision)
            break
        except OperationalError as exc:  # cannot connect (yet), or the server broke off
            if time.monotonic() + RETRY_PERIOD_S > deadline:
                raise _fail(f"database {shown} unreachable: {_one_line(exc)}") from None
            if not waiting:
                _err.print(f"waiting up to {wait:g}s for the database at {shown}", highlight=False)
                waiting = True
            time.sleep(RETRY_PERIOD_S)
        except Exception as exc:
            raise _fail(f"migrating {shown} failed: {_one_line(exc)}") from None
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    reached = head if revision == "head" else revision
    _out.print(f"database {shown} is at revision {reached}", highlight=False)
