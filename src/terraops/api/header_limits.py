"""Limits on request headers, enforced in front of uvicorn's httptools parser.

Why here and not in the app: an ASGI app sees a request only once its headers
are parsed, so it can neither refuse 20 MB of headers (httptools buffers them
all, with no limit of its own) nor a client that sends them one byte a second
(uvicorn's ``timeout_keep_alive`` only runs *between* requests, and a
connection that never sends a byte has no timer at all). This protocol is
uvicorn's own :class:`HttpToolsProtocol` plus two guards:

* **size** — the bytes received for a request until its headers end are
  counted before they reach the parser; past ``max_header_bytes`` the answer is
  a JSON ``431`` and the connection is closed (at most one socket read, 64 KiB
  to 256 KiB, beyond the limit is ever buffered);
* **time** — a timer armed when a connection opens, or when the first byte of
  a request arrives, and cancelled when its headers end; when it fires the
  connection is closed (with a JSON ``408`` if part of a request had arrived).

The body and the time an app takes are not concerned: the body has its own
limit (``BodyLimitMiddleware``) and a request in progress is never cut.
The fast path pays one counter update per socket read and one timer per
request (BENCHMARKS.md, "Header limits").
"""

from __future__ import annotations

import asyncio
import json
from asyncio import TimerHandle
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

HEADER_SIZE_SETTING = "TERRAOPS_MAX_HEADER_KB"
HEADER_TIME_SETTING = "TERRAOPS_HEADER_TIMEOUT_S"


def error_response(status: int, error: str, message: str, hint: str) -> bytes:
    """A complete ``Connection: close`` response in the terraops error shape."""
    body = json.dumps({"error": error, "message": message, "hint": hint}).encode()
    head = (
        b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
        % len(body)
    )
    return STATUS_LINE[status] + head + body


class HeaderLimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a size and a time limit on request headers.

    Built per connection by uvicorn; ``terraops serve`` passes it as a
    ``functools.partial`` carrying the two limits (picklable, so every worker
    process gets the same ones).
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        max_header_bytes: int,
        header_timeout_s: float,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.max_header_bytes = max_header_bytes
        self.header_timeout_s = header_timeout_s
        self.awaiting_headers = True
        self.header_bytes = 0
        self.header_timer: TimerHandle | None = None
        self.refused = False  # answered 431: nothing more is parsed on this connection

    # ----- connection events ---------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()  # a connection that never sends a byte is cut too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        if not self.awaiting_headers:
            super().data_received(data)
            return
        self.header_bytes += len(data)
        self._arm_header_timer()
        super().data_received(data)
        if self.awaiting_headers and self.header_bytes > self.max_header_bytes:
            self._refuse_headers_too_large()

    # ----- parser callbacks ------------------------------------------------------------
    def on_headers_complete(self) -> None:
        # Only a request that arrived with more bytes than the limit can be over it:
        # the exact size (the body may share the socket read) is measured only then.
        if self.refused or (
            self.header_bytes > self.max_header_bytes
            and self._request_head_size() > self.max_header_bytes
        ):
            self._refuse_headers_too_large()
            return
        self.awaiting_headers = False
        self.header_bytes = 0
        self._cancel_header_timer()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self.refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self.refused:
            return
        super().on_message_complete()
        self.awaiting_headers = True  # the next request on this connection starts here

    def _request_head_size(self) -> int:
        """Bytes of the request line and headers as parsed (``": "`` and CRLFs included)."""
        return len(self.url) + 16 + sum(len(n) + len(v) + 4 for n, v in self.headers)

    # ----- the two guards ---------------------------------------------------------------
    def _arm_header_timer(self) -> None:
        if self.header_timer is None:
            self.header_timer = self.loop.call_later(self.header_timeout_s, self._header_time_is_up)

    def _cancel_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _header_time_is_up(self) -> None:
        self.header_timer = None
        if not self.awaiting_headers or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_header_timer()  # never cut the answer to the previous request
            return
        if self.header_bytes:  # part of a request arrived: say why it is cut
            self.transport.write(
                error_response(
                    408,
                    "request_timeout",
                    f"request headers not received within {self.header_timeout_s:g} s",
                    f"send the whole request head at once; the limit is {HEADER_TIME_SETTING}",
                )
            )
        self.transport.close()

    def _refuse_headers_too_large(self) -> None:
        self._cancel_header_timer()
        if self.refused or self.transport.is_closing():
            self.refused = True
            return
        self.transport.write(
            error_response(
                431,
                "request_header_fields_too_large",
                f"request headers are larger than the {self.max_header_bytes:,} bytes "
                "this server accepts",
                f"send fewer or shorter headers (cookies, tokens); the limit is "
                f"{HEADER_SIZE_SETTING}",
            )
        )
        self.refused = True
        self.transport.close()


__all__ = ["HeaderLimitedHttpToolsProtocol", "error_response"]
