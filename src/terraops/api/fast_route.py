"""The fast-path plumbing of the prediction routes: a route class that offers each
request to a fast handler first, and a response from ready bytes.

Why a route class: the fast handler answers a request it vouches for before
FastAPI's generic handler (content-type parsing, dependency solving, Pydantic)
runs; a request it declines goes to FastAPI's handler unchanged, so the
documented behaviour (and every 422's wording) stays FastAPI's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any, ClassVar

from fastapi import Request, Response
from fastapi.routing import APIRoute

FastHandler = Callable[[Request], Awaitable[Response | None]]
_CONTENT_TYPE = b"content-type"
_JSON_TYPES = frozenset({b"application/json", b"application/json; charset=utf-8"})


class FastPredictRoute(APIRoute):
    """An ``APIRoute`` whose handler first offers the request to ``fast_handler``.

    The handler answers (a response) or declines (``None``); a declined request
    goes to FastAPI's own handler for this route, unchanged. Subclassed per
    route by :func:`route_class` (FastAPI instantiates route classes itself).
    """

    fast_handler: ClassVar[FastHandler]

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        documented = super().get_route_handler()
        fast = type(self).fast_handler

        async def handler(request: Request) -> Response:
            response = await fast(request)
            return response if response is not None else await documented(request)

        return handler


def route_class(fast: FastHandler) -> type[APIRoute]:
    return type("FastPredictRoute", (FastPredictRoute,), {"fast_handler": staticmethod(fast)})


class PreEncodedJSON(Response):
    """A 200 JSON response from ready bytes and ready raw headers.

    Skips ``Response.__init__``'s header normalisation (a few µs a request):
    the model headers are encoded once per model version (:class:`Prepared`).
    """

    media_type = "application/json"

    def __init__(self, body: bytes, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = 200
        self.background = None
        self.body = body
        self.raw_headers = [*raw_headers, (b"content-length", str(len(body)).encode("ascii"))]


def is_json(scope: MutableMapping[str, Any]) -> bool:
    """Whether the request declares a plain JSON body (anything else: documented path)."""
    for name, value in scope["headers"]:
        if name == _CONTENT_TYPE:
            return value.lower() in _JSON_TYPES
    return False


__all__ = ["FastHandler", "FastPredictRoute", "PreEncodedJSON", "is_json", "route_class"]
