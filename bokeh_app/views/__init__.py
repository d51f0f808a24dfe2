"""View builders and what every directory app's ``main.py`` shares.

A builder is ``build_<view>(doc, api, args) -> View``; ``serve_view`` wires one into a Bokeh
server session: it finds the master (the ``DashboardServer`` that serves the app, else
``DashboardSettings`` for a plain ``bokeh serve bokeh_app/<view>``), parses the query string,
adds the view's root and starts its refresh.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bokeh.document import Document
from bokeh.models import LayoutDOM

from bokeh_app.common.api import DashboardApi
from bokeh_app.common.settings import DashboardSettings

log = logging.getLogger(__name__)

Args = dict[str, list[str]]

# Attribute set on each bokeh Application by DashboardServer. Not Application.metadata: Bokeh
# serves that at /<app>/metadata for anyone to read, and this holds the admin token.
APP_CONFIG_ATTR = "mlbench_api_config"


@dataclass(frozen=True)
class ApiConfig:
    url: str
    token: str | None
    timeout_s: float = 5.0
    # Read when ``token`` is None, at each session's start: a master that generates its token
    # on first start writes this file only after the dashboard was configured.
    token_file: Path | None = None

    def resolved_token(self) -> str | None:
        if self.token is not None or self.token_file is None:
            return self.token
        try:
            return self.token_file.read_text().strip() or None
        except OSError:
            return None

    def api(self) -> DashboardApi:
        return DashboardApi(self.url, self.resolved_token(), self.timeout_s)

    @classmethod
    def from_settings(cls, settings: DashboardSettings | None = None) -> ApiConfig:
        settings = settings or DashboardSettings()
        return cls(settings.resolved_api_url, settings.token(), settings.api_timeout_s)


class View(Protocol):
    """What a builder returns. ``load()`` fetches and applies synchronously (tests); ``start()``
    fetches the first data and then refreshes periodically, all through ``Background`` so that
    nothing blocks the server's event loop."""

    root: LayoutDOM

    def load(self) -> None: ...

    def start(self) -> None: ...


Builder = Callable[[Document, DashboardApi, Args], View]


def api_config(doc: Document) -> ApiConfig:
    """The master this session talks to."""
    try:
        app = doc.session_context.server_context.application_context.application  # type: ignore[union-attr]
        config = getattr(app, APP_CONFIG_ATTR, None)
    except AttributeError:  # no server (tests) or an older Bokeh
        config = None
    return config if isinstance(config, ApiConfig) else ApiConfig.from_settings()


def request_args(doc: Document) -> Args:
    """The page's query string, decoded (``/run?id=3`` → ``{"id": ["3"]}``)."""
    context = doc.session_context
    request = getattr(context, "request", None) if context is not None else None
    raw: dict[str, list[Any]] = getattr(request, "arguments", None) or {}
    return {
        key: [v.decode() if isinstance(v, bytes) else str(v) for v in values]
        for key, values in raw.items()
    }


def arg_int(args: Args, key: str) -> int | None:
    """First value of ``key`` as an int, None when missing or not a number."""
    try:
        return int(args[key][0])
    except (KeyError, IndexError, ValueError):
        return None


def arg_ints(args: Args, key: str) -> list[int]:
    """``?ids=1,2&ids=5`` → ``[1, 2, 5]``; junk entries are skipped."""
    found: list[int] = []
    for value in args.get(key, []):
        for part in value.split(","):
            if part.strip().isdigit() and int(part) not in found:
                found.append(int(part))
    return found


def serve_view(doc: Document, builder: Builder) -> View:
    """Build the view for this session, show it and start its refresh; the API client and
    the view's background work end with the session."""
    api = api_config(doc).api()
    view = builder(doc, api, request_args(doc))
    doc.add_root(view.root)
    view.start()

    def closed(_context: Any) -> None:
        close = getattr(view, "close", None)
        if callable(close):
            close()
        api.close()

    doc.on_session_destroyed(closed)
    return view
