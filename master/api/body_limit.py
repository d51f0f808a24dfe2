"""Request bodies over ``Settings.max_body_bytes`` are refused with 413 before they are parsed.

A pure ASGI middleware: it checks ``Content-Length`` up front and counts the bytes of bodies
sent without one (chunked), so neither form can make the master buffer more than the limit. A
chunked body that passes the limit is answered at once, and the app is told that the client
left.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send, f"{declared} bytes declared")
            return
        seen = 0
        started = refused = False

        async def counting_receive() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes and not started:
                    # Answer now and tell the app the client left: whatever it makes of the
                    # cut-off body (FastAPI: a 400) must not reach the client.
                    refused = True
                    await self._refuse(send, f"more than {self.max_bytes} bytes sent")
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except Exception:
            if not refused:  # the app's reaction to the cut-off body, already answered
                raise

    async def _refuse(self, send: Send, what: str) -> None:
        detail = (
            f"request body too large ({what}); the limit is {self.max_bytes} bytes "
            "(MLBENCH_MAX_BODY_BYTES): send smaller batches"
        )
        body = json.dumps({"detail": detail}).encode()
        headers: list[tuple[bytes, bytes]] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: dict[str, Any]) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
