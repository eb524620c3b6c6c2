"""Checks and figures of a hot-swap load run (``bench/swap_load.py``); no I/O.

Kept apart from the load generator so the checks can be shown to catch what
they claim (``tests/code/test_swap_load_checks.py``) without a server.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: |response − offline| allowed: the server and the check run the same predictor
#: on the same float64 row, and JSON floats round-trip exactly.
VALUE_TOLERANCE = 1e-9


Expected = dict[str, dict[int, list[float]]]  # service → version → value per probe


def smallest_gap(expected: Expected) -> dict[str, float]:
    """Per service, the smallest difference between its two versions over the probes."""
    gaps = {}
    for service, by_version in expected.items():
        first, second = by_version.values()
        gaps[service] = min(abs(a - b) for a, b in zip(first, second, strict=True))
    return gaps


@dataclass(frozen=True)
class Change:
    """One admin call: the champion of ``service`` moved ``old`` → ``new`` within it."""

    service: str
    action: str
    old: int
    new: int
    started: float
    finished: float
    status: int
    serving: int | None


@dataclass(frozen=True, slots=True)
class Sample:
    """One prediction request as the client saw it (``monotonic`` times, s)."""

    service: str
    probe: int
    worker: int  # pid of the worker that owns the connection the request went on
    sent: float
    received: float
    status: int
    version: int | None
    header_version: int | None
    value: float | None


# ----- checks and figures ------------------------------------------------------------
def mismatches(samples: Sequence[Sample], expected: Expected) -> list[Sample]:
    """200 responses whose value is not what the version they name computes offline."""
    wrong = []
    for s in samples:
        if s.status != 200:
            continue
        table = expected[s.service].get(s.version)  # type: ignore[arg-type]
        if (
            table is None
            or s.header_version != s.version
            or s.value is None
            or not math.isclose(s.value, table[s.probe], rel_tol=0, abs_tol=VALUE_TOLERANCE)
        ):
            wrong.append(s)
    return wrong


def champion_windows(
    service: str, initial: int, changes: Sequence[Change]
) -> list[tuple[int, float, float]]:
    """(version, from, to) when each version may have been ``service``'s champion.

    A change is atomic but happens somewhere inside its admin call, so a
    version counts from the start of the call that made it champion to the end
    of the call that replaced it.
    """
    windows, version, since = [], initial, -math.inf
    for change in (c for c in changes if c.service == service and c.status == 200):
        windows.append((version, since, change.finished))
        version, since = change.new, change.started
    windows.append((version, since, math.inf))
    return windows


def late_responses(
    samples: Sequence[Sample], expected: Expected, changes: Sequence[Change], lag_s: float
) -> list[Sample]:
    """200s naming a version that had stopped being champion more than ``lag_s`` before.

    Workers other than the one that handled the admin call follow at their
    next registry poll, so a bounded lag is expected; an unbounded one is a bug.
    """
    late = []
    for service, by_version in expected.items():
        windows = champion_windows(service, next(iter(by_version)), changes)
        for s in samples:
            if s.service != service or s.status != 200:
                continue
            if not any(
                v == s.version and lo <= s.received and s.sent <= hi + lag_s
                for v, lo, hi in windows
            ):
                late.append(s)
    return late


def propagation_s(changes: Sequence[Change], samples: Sequence[Sample]) -> tuple[list[float], int]:
    """Seconds from each change's commit until every worker answered with the new version.

    Each connection belongs to one worker, so a worker's first response naming
    the new version (received before the service's next change starts) bounds
    its switch from above, to within one request. Returns (latencies, changes
    where some worker gave no such response — it may have skipped straight to
    a later version — which give no figure). 0 when the worker that handled
    the admin call is the last: it switches inside the call.
    """
    workers = {s.worker for s in samples}
    ok = [c for c in changes if c.status == 200]
    latencies, unobserved = [], 0
    for i, change in enumerate(ok):
        later = [c.started for c in ok[i + 1 :] if c.service == change.service]
        until = later[0] if later else math.inf
        first: dict[int, float] = {}
        for s in samples:
            if (
                s.service == change.service
                and s.version == change.new
                and s.sent >= change.started
                and s.received < until
            ):
                first[s.worker] = min(first.get(s.worker, math.inf), s.received)
        if first and set(first) >= workers:
            latencies.append(max(0.0, max(first.values()) - change.finished))
        else:
            unobserved += 1
    return latencies, unobserved


def _percentile(values: Sequence[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else math.nan
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _swap_period(changes: Sequence[Change]) -> float:
    """Mean seconds between consecutive admin calls (all services together)."""
    if len(changes) < 2:
        return math.nan
    return (changes[-1].started - changes[0].started) / (len(changes) - 1)


def summarise(
    samples: Sequence[Sample],
    changes: Sequence[Change],
    seconds: float,
    expected: Expected,
    lag_s: float = 5.0,
) -> dict[str, Any]:
    """The figures a report needs (latencies in ms, propagation in s) of one run."""
    latencies = sorted((s.received - s.sent) * 1e3 for s in samples)
    propagation, unobserved = propagation_s(changes, samples)
    admin_s = [c.finished - c.started for c in changes]
    return {
        "requests": len(samples),
        "seconds": round(seconds, 2),
        "throughput_rps": round(len(samples) / seconds, 1),
        "p50_ms": round(_percentile(latencies, 50), 2),
        "p95_ms": round(_percentile(latencies, 95), 2),
        "p99_ms": round(_percentile(latencies, 99), 2),
        "max_ms": round(latencies[-1], 2) if latencies else math.nan,
        "errors": sum(s.status != 200 for s in samples),
        "mismatches": len(mismatches(samples, expected)),
        f"late_over_{lag_s:g}s": len(late_responses(samples, expected, changes, lag_s)),
        "swaps": sum(c.status == 200 for c in changes),
        "failed_swaps": sum(c.status != 200 for c in changes),
        "swap_period_s": round(_swap_period(changes), 2),
        "admin_call_p50_s": round(_percentile(sorted(admin_s), 50), 2),
        "admin_call_max_s": round(max(admin_s), 2) if admin_s else math.nan,
        "swaps_by_service": {
            s: sum(c.service == s and c.status == 200 for c in changes) for s in expected
        },
        "versions_seen": {
            s: sorted({x.version for x in samples if x.service == s and x.version is not None})
            for s in expected
        },
        "responses_per_worker": sorted(Counter(s.worker for s in samples).values()),
        "propagation_p50_s": round(_percentile(sorted(propagation), 50), 3),
        "propagation_max_s": round(max(propagation), 3) if propagation else math.nan,
        "propagation_unobserved": unobserved,
    }
