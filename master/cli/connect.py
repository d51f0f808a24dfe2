"""Find the master the CLI talks to, or start an embedded one for the duration of a command."""

from __future__ import annotations

import logging
import os
import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from master.cli.client import Client
from master.server import EmbeddedMaster
from master.settings import Settings

if TYPE_CHECKING:
    from bokeh_app.server import DashboardServer

log = logging.getLogger(__name__)

LOCAL_HOSTS = {"127.0.0.1", "localhost"}
# RFC 6750 b64token, which every token we issue (URL-safe base64) is.
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class ConnectError(Exception):
    """No master could be reached or started; ``str()`` says what to do."""


@dataclass
class Connection:
    client: Client
    url: str
    embedded: EmbeddedMaster | None = None
    dashboard: DashboardServer | None = None

    def close(self) -> None:
        self.client.close()
        if self.dashboard is not None:
            self.dashboard.stop()
        if self.embedded is not None:
            self.embedded.stop()


def master_url(api_url: str | None, settings: Settings) -> str:
    return (
        api_url or os.environ.get("MLBENCH_API_URL") or f"http://{settings.host}:{settings.port}"
    ).rstrip("/")


def admin_token(token: str | None, settings: Settings) -> str | None:
    """Explicit token, else MLBENCH_ADMIN_TOKEN, else the file a local master wrote."""
    if token:
        if not _TOKEN_CHARS.fullmatch(token):
            # Said without the token: it must not reach a terminal or a CI log.
            raise ConnectError(
                "the token holds characters a bearer token cannot (spaces, line breaks, "
                "non-ASCII); check --token / MLBENCH_TOKEN"
            )
        return token
    if settings.admin_token is not None:
        return settings.admin_token.get_secret_value()
    path = settings.data_dir / "admin-token"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def connect(api_url: str | None, token: str | None, *, embed: bool) -> Connection:
    """Connect to a running master; with ``embed``, start one when a local URL has none."""
    settings = Settings()
    url = master_url(api_url, settings)
    client = Client(url, admin_token(token, settings))
    if client.healthy():
        return Connection(client, url)
    client.close()
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 80
    if not embed or host not in LOCAL_HOSTS:
        raise ConnectError(f"no mlbench master answers at {url} (start one with `mlbench serve`)")
    if not _port_free("127.0.0.1", port):
        raise ConnectError(f"port {port} is taken by something that is not an mlbench master")
    settings = settings.model_copy(update={"host": "127.0.0.1", "port": port, "public_url": None})
    embedded = EmbeddedMaster(settings).start()
    secret = admin_token(token, settings)
    return Connection(
        Client(embedded.url, secret), embedded.url, embedded, _dashboard(embedded, secret)
    )


def _dashboard(embedded: EmbeddedMaster, token: str | None) -> DashboardServer | None:
    """The dashboard next to an embedded master, on MLBENCH_DASHBOARD_PORT (default 5006; 0 =
    none) when that port is free: a dashboard already there (another ``mlbench serve``) or
    anything else keeps it, and the command runs without one."""
    from bokeh_app.common.settings import DashboardSettings

    port = DashboardSettings().dashboard_port
    if port == 0 or not _port_free("127.0.0.1", port):
        return None
    from bokeh_app.server import DashboardServer

    try:
        return DashboardServer(embedded.url, token, "127.0.0.1", port).start()
    except OSError as exc:  # taken between the check and the bind
        log.info("no dashboard: %s", exc)
        return None
