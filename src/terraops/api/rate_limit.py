"""Per-client rate limits: a token bucket per client IP address, as a FastAPI dependency.

Why: some routes are cheap to call and costly to accept — feedback moves the
live error that can roll a model back, and a what-if scenario re-runs a scene
through the model. One client must not be able to flood them. Each client
(``request.client.host``: the peer address, never a header a client can
forge) has a bucket of ``rate_per_min`` tokens, refilled continuously; a
request takes one, and an empty bucket answers ``429`` with ``Retry-After``.

The buckets live in the serving process: with several workers a client may
get up to one bucket per worker. At most ``max_clients`` buckets are kept; a
full bucket says nothing and is the first forgotten.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from fastapi import Request

from terraops.errors import RateLimitedError

MAX_TRACKED_CLIENTS = 10_000
"""Buckets kept per limiter; beyond, the least recently seen client is forgotten."""


class TokenBuckets:
    """A token bucket per key: ``rate_per_min`` tokens a minute, bursts up to ``burst``."""

    def __init__(
        self,
        rate_per_min: float,
        *,
        burst: float | None = None,
        max_clients: int = MAX_TRACKED_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.refill_per_s = rate_per_min / 60.0
        self.capacity = max(1.0, burst if burst is not None else rate_per_min)
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Take a token for ``key``: 0 when granted, else the seconds until one is free."""
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.pop(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.refill_per_s)
            wait_s = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.refill_per_s
            if not wait_s:
                tokens -= 1.0
            self._buckets[key] = (tokens, now)  # most recently seen last
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            return wait_s


def client_key(request: Request) -> str:
    """The peer address of the connection (no ``X-Forwarded-For``: a client writes it)."""
    return request.client.host if request.client is not None else "unknown"


def rate_limit(rate_per_min: float, what: str, setting: str) -> Callable[[Request], Any]:
    """A dependency that allows each client ``rate_per_min`` calls a minute of ``what``.

    ``setting`` names the environment variable that raises the limit, for the
    message. One limiter per call: routes that share a budget share the dependency.
    """
    buckets = TokenBuckets(rate_per_min)

    async def limited(request: Request) -> None:
        wait_s = buckets.take(client_key(request))
        if wait_s:
            raise RateLimitedError(
                f"too many {what} requests from {client_key(request)}: at most "
                f"{rate_per_min:g} a minute; retry in {wait_s:.1f} s",
                retry_after_s=wait_s,
                hint=f"slow down or batch your calls; the limit is {setting} on the server",
            )

    return limited


__all__ = ["TokenBuckets", "client_key", "rate_limit"]
