"""How each SLO objective is judged over a window, from plain records (no registry, no actions).

:mod:`terraops.pipelines.monitoring.slo` gathers the records (prediction log,
feedback store, last drift result) and acts on the verdicts; the judgements
live here so a check, the dashboard and the rollback policy (which judges the
previous champion in the same window by the very same rules) agree.

An objective with too little data in the window (fewer than ``MIN_REQUESTS``
requests, ``MIN_FEEDBACK`` truths, no drift check of the serving model in the
last ``DRIFT_MAX_AGE``) is ``no_data`` — not a breach: a p95 of ten requests or
a MAE of three cells says nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np

from terraops.services.base import ServiceDefinition

MIN_REQUESTS = 100
MIN_FEEDBACK = 20
DRIFT_MAX_AGE = timedelta(days=1)
"""An older drift result no longer describes the traffic (the scheduled check's default window)."""
Status = Literal["ok", "breach", "no_data"]


@dataclass(frozen=True)
class ObjectiveResult:
    slo: str  # availability | latency_p95 | live_metric | drift
    objective: str
    target: float
    observed: float | None
    n: int
    status: Status
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "slo": self.slo,
            "objective": self.objective,
            "target": self.target,
            "observed": None if self.observed is None else round(self.observed, 6),
            "n": self.n,
            "status": self.status,
            "detail": self.detail,
        }


def version_requests(
    records: Sequence[dict[str, Any]], version: int | None
) -> list[dict[str, Any]]:
    """One entry per request of ``version`` (rows of a batch share a request id)."""
    requests: dict[str, dict[str, Any]] = {}
    for i, record in enumerate(records):
        if version is not None and record.get("version") not in (version, None):
            continue  # another version's traffic (None: no model loaded — counts)
        key = str(record.get("request_id") or f"#{i}")
        seen = requests.setdefault(
            key,
            {"status": int(record.get("status") or 200), "latency_ms": None, "rows": 0},
        )
        seen["rows"] += 1
        if record.get("latency_ms") is not None:
            seen["latency_ms"] = float(record["latency_ms"])
    return list(requests.values())


def availability(slo_budget: float, requests: list[dict[str, Any]]) -> ObjectiveResult:
    n = len(requests)
    objective = f"5xx share <= {slo_budget:g}"
    if n < MIN_REQUESTS:
        return ObjectiveResult(
            "availability", objective, slo_budget, None, n, "no_data",
            f"{n} requests in the window (< {MIN_REQUESTS})",
        )  # fmt: skip
    failed = sum(1 for r in requests if r["status"] >= 500)
    share = failed / n
    status: Status = "breach" if share > slo_budget else "ok"
    return ObjectiveResult(
        "availability", objective, slo_budget, share, n, status,
        f"{failed} of {n} requests failed (5xx share {share:.4f}, budget {slo_budget:g})",
    )  # fmt: skip


def latency(p95_target_ms: float, requests: list[dict[str, Any]]) -> ObjectiveResult:
    point = [r["latency_ms"] for r in requests if r["rows"] == 1 and r["status"] < 500]
    point = [v for v in point if v is not None]
    objective = f"p95 point-predict latency <= {p95_target_ms:g} ms"
    if len(point) < MIN_REQUESTS:
        return ObjectiveResult(
            "latency_p95", objective, p95_target_ms, None, len(point), "no_data",
            f"{len(point)} point requests in the window (< {MIN_REQUESTS})",
        )  # fmt: skip
    p95 = float(np.percentile(point, 95))
    status: Status = "breach" if p95 > p95_target_ms else "ok"
    return ObjectiveResult(
        "latency_p95", objective, p95_target_ms, p95, len(point), status,
        f"p95 {p95:.3f} ms over {len(point)} point requests (target {p95_target_ms:g} ms)",
    )  # fmt: skip


def live_metric(definition: ServiceDefinition, live: dict[str, Any]) -> ObjectiveResult:
    slo = definition.slo
    metric = str(live.get("metric") or slo.metric.removesuffix("_spatial_cv"))
    relation = ">=" if slo.metric_higher_is_better else "<="
    objective = f"live {metric} {relation} {slo.metric_target:g}"
    n = int(live.get("n") or 0)
    value = live.get("value")
    if n < MIN_FEEDBACK or value is None or not math.isfinite(float(value)):
        return ObjectiveResult(
            "live_metric", objective, slo.metric_target, None, n, "no_data",
            f"{n} ground-truth rows in the window (< {MIN_FEEDBACK})",
        )  # fmt: skip
    value = float(value)
    ok = value >= slo.metric_target if slo.metric_higher_is_better else value <= slo.metric_target
    return ObjectiveResult(
        "live_metric", objective, slo.metric_target, value, n, "ok" if ok else "breach",
        f"live {metric} {value:.4g} over {n} ground-truth rows "
        f"(target {relation} {slo.metric_target:g})",
    )  # fmt: skip


def drift(state: dict[str, Any] | None, version: int | None, now: datetime) -> ObjectiveResult:
    """No critical drift, per the last drift check of the serving model (observed: 1 = critical).

    ``state`` is :func:`terraops.pipelines.monitoring.drift_schedule.latest_drift_state`'s
    answer; critical is its dataset-level verdict (enough features drifted, or one
    the policy marks critical). A check that found no data or failed, one of
    another version's reference, or one older than :data:`DRIFT_MAX_AGE` says
    nothing about the champion's traffic now: ``no_data``.
    """
    objective = "no critical drift"
    if state is None:
        return ObjectiveResult("drift", objective, 0, None, 0, "no_data", "no drift check found")
    n = int((state.get("current") or {}).get("n_rows") or 0)
    at = f"drift check of {state.get('created_at')}"
    checked_version = ((state.get("reference") or {}).get("model") or {}).get("version")
    checked_s = state.get("checked_at_s")
    if state.get("status") != "checked":
        why = state.get("error") or f"{n} logged rows to test"
        return ObjectiveResult("drift", objective, 0, None, n, "no_data", f"{at}: {why}")
    if checked_version is not None and version is not None and int(checked_version) != version:
        return ObjectiveResult(
            "drift", objective, 0, None, n, "no_data",
            f"{at} compared v{checked_version}'s training reference, not v{version}'s",
        )  # fmt: skip
    if checked_s is None or now.timestamp() - float(checked_s) > DRIFT_MAX_AGE.total_seconds():
        return ObjectiveResult(
            "drift", objective, 0, None, n, "no_data", f"{at} is older than {DRIFT_MAX_AGE}"
        )
    share = float(state.get("share_of_drifted_features") or 0.0)
    facts = f"{at}: {share:.0%} of features drifted over {n} rows"
    if not state.get("critical"):
        return ObjectiveResult("drift", objective, 0, 0.0, n, "ok", facts)
    named = ", ".join(state.get("critical_features") or []) or "none marked critical"
    return ObjectiveResult(
        "drift", objective, 0, 1.0, n, "breach", f"critical drift ({facts}; critical: {named})"
    )
