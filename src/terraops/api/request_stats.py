"""Recent request counts, latency and errors of the prediction routes, in process.

Why in process: the operator dashboard must say how the server is doing *now*
without a Prometheus server in the loop, and a rollback decision wants the
latency and error rate of the last minutes, not of the whole uptime.

The figures are fed by the one request middleware,
:class:`terraops.api.observability.ObservabilityMiddleware`, which times every
measured request once for both this collector and the Prometheus metrics
(``bench/monitoring.py`` measures the whole middleware). Nothing is locked:
the middleware runs on the event loop thread only.

Each worker keeps its own figures (they are per process, like the model
holder); the snapshot says which pid answered so a reader of a multi-worker
server knows what it is looking at.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Latest requests kept per route for percentiles (a bounded ring: memory is
#: flat whatever the traffic; at high rates the window is the last N requests).
RECENT_REQUESTS = 4096
WINDOWS_S = (60, 300)


@dataclass
class RouteStats:
    """Counters since start plus a ring of ``(finished_at, latency_s, status)``."""

    total: int = 0
    client_errors: int = 0
    server_errors: int = 0
    recent: deque[tuple[float, float, int]] = field(
        default_factory=lambda: deque(maxlen=RECENT_REQUESTS)
    )

    def record(self, finished_at: float, latency_s: float, status: int) -> None:
        self.total += 1
        if status >= 500:
            self.server_errors += 1
        elif status >= 400:
            self.client_errors += 1
        self.recent.append((finished_at, latency_s, status))

    def window(self, now: float, seconds: float) -> dict[str, Any]:
        """Requests finished in the last ``seconds``: count, rate, p50/p95/max, errors."""
        rows = np.array(self.recent, dtype=np.float64).reshape(-1, 3)
        rows = rows[rows[:, 0] >= now - seconds]
        count = len(rows)
        out: dict[str, Any] = {
            "requests": count,
            "per_s": round(count / seconds, 3),
            "errors_4xx": int(((rows[:, 2] >= 400) & (rows[:, 2] < 500)).sum()),
            "errors_5xx": int((rows[:, 2] >= 500).sum()),
            "p50_ms": None,
            "p95_ms": None,
            "max_ms": None,
        }
        if count:
            latency_ms = rows[:, 1] * 1e3
            p50, p95 = np.percentile(latency_ms, [50, 95])
            out.update(
                p50_ms=round(float(p50), 3),
                p95_ms=round(float(p95), 3),
                max_ms=round(float(latency_ms.max()), 3),
            )
        return out


class RequestStats:
    """Per-service, per-endpoint figures of the prediction routes of one process."""

    def __init__(self, services: Iterable[str], clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self.started_at = time.time()
        self._started = clock()
        self._stats: dict[tuple[str, str], RouteStats] = {
            (service, endpoint): RouteStats()
            for service in services
            for endpoint in ("predict", "batch")
        }

    def observe(
        self, route: tuple[str, str], version: int | None, status: int, seconds: float, rows: int
    ) -> None:
        """One finished request of a measured route (an observer of the middleware)."""
        stats = self._stats.get(route)
        if stats is not None:
            stats.record(self._clock(), seconds, status)

    def snapshot(self) -> dict[str, Any]:
        """What ``GET /v1/stats`` answers: figures per service and endpoint, per window."""
        now = self._clock()
        services: dict[str, dict[str, Any]] = {}
        for (service, endpoint), stats in self._stats.items():
            services.setdefault(service, {})[endpoint] = {
                "total": stats.total,
                "errors_4xx_total": stats.client_errors,
                "errors_5xx_total": stats.server_errors,
                "windows": {f"{s}s": stats.window(now, s) for s in WINDOWS_S},
            }
        return {
            "pid": os.getpid(),
            "scope": "this worker process only (each worker keeps its own figures)",
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_at)),
            "uptime_s": round(now - self._started, 1),
            "recent_requests_kept": RECENT_REQUESTS,
            "services": services,
        }


__all__ = ["RequestStats", "RouteStats"]
