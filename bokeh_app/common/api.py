"""The dashboard's only way to the master: a synchronous HTTP client (call it off the event loop,
see ``background.py``) that tells "the master said no" from "the master is not there"."""

from __future__ import annotations

import ssl
import threading
from typing import Any
from urllib.parse import urlencode

import httpx

from master.cli.client import API, ApiError, Client

__all__ = ["ApiError", "DashboardApi", "MasterUnreachable"]

_tls: ssl.SSLContext | None = None
_tls_lock = threading.Lock()


def _tls_context() -> ssl.SSLContext:
    """One TLS context for every session's client: building one loads the CA bundle, tens of
    milliseconds that each page open would otherwise spend before its page is sent."""
    global _tls
    with _tls_lock:
        if _tls is None:
            _tls = httpx.create_ssl_context()
        return _tls


class MasterUnreachable(Exception):
    """No answer from the master (refused, reset, DNS, timeout); the views show a banner and
    keep retrying instead of showing an error."""

    def __init__(self, url: str, why: str) -> None:
        super().__init__(f"master at {url} is unreachable: {why}")
        self.url = url
        self.why = why


class DashboardApi(Client):
    """``master.cli.client.Client`` with every transport failure raised as
    ``MasterUnreachable``; HTTP errors stay ``ApiError`` (``.status``, ``.detail``).

    One instance per Bokeh session (httpx's pool is safe to share between the worker threads
    of ``Background``); ``close()`` it when the session ends.
    """

    def __init__(self, base_url: str, token: str | None, timeout_s: float = 5.0) -> None:
        # Client.__init__'s two attributes, with the shared TLS context (Client would build
        # its own per instance).
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout_s, verify=_tls_context()
        )
        self.token = token

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return super()._call(method, path, **kwargs)
        except httpx.TimeoutException:
            raise MasterUnreachable(self.base_url, "no answer in time") from None
        except httpx.TransportError as exc:
            raise MasterUnreachable(self.base_url, str(exc) or type(exc).__name__) from None

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def runs_page(
        self,
        state: list[str] | None = None,
        limit: int = 200,
        offset: int = 0,
        group: str | None = None,
        benchmark: str | None = None,
    ) -> dict[str, Any]:
        """``GET /runs``: ``{"items": [...], "total", "limit", "offset"}``, newest first; each
        item also has ``progress`` (newest metric point) and ``result`` (summary) or None."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if benchmark:
            params["benchmark"] = benchmark
        if state:
            params["state"] = state
        if group:
            params["group"] = group
        return self._call("GET", "/runs", params=params)

    def export_url(self, run_id: int, fmt: str) -> str:
        """Where a browser downloads all points of a run (reads must be open for a plain link)."""
        return f"{self.base_url}{API}/runs/{run_id}/metrics/export?{urlencode({'format': fmt})}"
