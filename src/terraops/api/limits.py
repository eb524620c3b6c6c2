"""Request-body size limit as a pure ASGI middleware, answering in the terraops error shape.

Why not the framework's ``max_body_size``: its refusal is a bare ``Content
Too Large`` (plain text, or ``{"detail": ...}``) that says neither the limit
nor the setting that raises it, and it replaces whatever the route answered
whenever ``Content-Length`` is over the limit. Here a declared length over the
limit is refused before the app runs, and a body that grows past it while
streaming (chunked, or a lying ``Content-Length``) is cut off at the limit with
the same JSON 413 — a client never gets the server to buffer more than the limit.

Routes that enforce their own, larger limit while streaming (``POST /v1/segment``
and its ``TERRAOPS_SEGMENT_MAX_UPLOAD_MB``) declare a route-level ``max_body_size``
and are left to it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LIMIT_SETTING = "TERRAOPS_MAX_BODY_MB"


def too_large_message(limit_bytes: int) -> str:
    return f"the request body is larger than the {limit_bytes:,} bytes this server accepts"


TOO_LARGE_HINT = (
    f"split a batch into several requests, or raise {LIMIT_SETTING} "
    "(default: grows with TERRAOPS_MAX_BATCH_SIZE) on the server"
)


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when the streamed body passes the limit.

    An ``HTTPException`` on purpose: FastAPI re-raises those from its body
    reading (any other exception becomes a vague 400 "error parsing the body"),
    and the app's handler renders it in the terraops error shape.
    """

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(status_code=413, detail=too_large_message(limit_bytes))
        self.hint = TOO_LARGE_HINT


def self_limited_paths(routes: Iterable[BaseRoute]) -> frozenset[str]:
    """Paths of routes that set their own ``max_body_size`` (they stream and limit uploads)."""
    return frozenset(
        str(getattr(route, "path", ""))
        for route in routes
        if getattr(route, "max_body_size", None) is not None
    )


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with a JSON 413 (see module doc)."""

    def __init__(self, app: ASGIApp, max_bytes: int, exempt_paths: frozenset[str]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt_paths = exempt_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": "payload_too_large",
                "message": too_large_message(self.max_bytes),
                "hint": TOO_LARGE_HINT,
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            # The rest of the body is not read: the connection cannot be reused.
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


__all__ = ["BodyLimitMiddleware", "BodyTooLarge", "self_limited_paths"]
