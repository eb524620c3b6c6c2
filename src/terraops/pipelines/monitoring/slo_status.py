"""The on-call view of a service: SLO verdicts with error budget and burn rate, live error, drift.

Read-only, so the operator dashboard can poll it: the verdicts come from
:func:`terraops.pipelines.monitoring.slo.check_service` (the very judgement of
``terraops slo check``), and nothing here rolls back, saves a report or moves an
alias.

Error budget, as in the Google SRE workbook (ch. 2 and 5): an objective allows a
share of bad events over the window — 5xx answers for availability (the
service's ``error_budget``), requests slower than the target for a p95 latency
objective (5 % of them may be). The **burn rate** is the bad share over the
allowed share: 1 spends the budget exactly as fast as the window allows, and
the fast-burn alert pages at 14.4. The **budget left** is ``1 - burn rate``
(floored at 0) of this window's budget. The live metric (error on ground
truth) is a target, not a budget of events: it gets a verdict and a value only.
The drift state is the last drift check's, read back, never recomputed here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from terraops.adapters.prediction_log import read_predictions
from terraops.pipelines.monitoring.drift_schedule import latest_drift_state
from terraops.pipelines.monitoring.slo import ServiceReport, check_service
from terraops.pipelines.monitoring.slo_objectives import ObjectiveResult, version_requests
from terraops.services.base import ServiceDefinition
from terraops.settings import Settings

LATENCY_ALLOWED_SLOW_SHARE = 0.05
"""A p95 objective lets 5 % of point requests be slower than its target."""


def burn(bad_share: float, allowed_share: float) -> dict[str, float]:
    """Burn rate and budget left when ``bad_share`` of events were bad out of ``allowed_share``."""
    rate = bad_share / allowed_share
    return {
        "allowed_share": allowed_share,
        "bad_share": round(bad_share, 6),
        "burn_rate": round(rate, 4),
        "left": round(max(0.0, 1.0 - rate), 4),
    }


def slow_share(
    settings: Settings, service: str, version: int | None, since: datetime, target_ms: float
) -> float | None:
    """Share of the version's answered point requests slower than ``target_ms`` since ``since``.

    The same requests as the latency objective (:func:`version_requests`): one
    row (a batch is one request of many rows), not a 5xx, of ``version``.
    """
    records = read_predictions(settings.predictions_dir, service, since=since)
    requests = version_requests(list(records), version)
    point = [
        r["latency_ms"]
        for r in requests
        if r["rows"] == 1 and r["status"] < 500 and r["latency_ms"] is not None
    ]
    if not point:
        return None
    return sum(1 for ms in point if ms > target_ms) / len(point)


def _budget(
    settings: Settings, report: ServiceReport, objective: ObjectiveResult, since: datetime
) -> dict[str, float] | None:
    """The objective's error budget over the window, or None (no data, or no budget)."""
    if objective.status == "no_data" or objective.observed is None:
        return None
    if objective.slo == "availability":
        return burn(objective.observed, objective.target)
    if objective.slo == "latency_p95":
        share = slow_share(settings, report.service, report.version, since, objective.target)
        return None if share is None else burn(share, LATENCY_ALLOWED_SLOW_SHARE)
    return None


def drift_view(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the dashboard shows of the last drift check (None: no check ran yet).

    ``drifted``: some feature drifted; ``critical``: the policy's dataset-level
    verdict (enough features, or a critical one). ``drift_share_threshold`` is
    the policy's "enough features" share, so the dashboard can say which of the
    two rules fired. ``report_html`` is the Evidently report written with the
    check, if any (the scheduled check writes none: it computes the statistics
    only).
    """
    if state is None:
        return None
    share = state.get("drifted_share", state.get("share_of_drifted_features"))
    policy = state.get("policy")
    threshold = policy.get("drift_share") if isinstance(policy, dict) else None
    html = state.get("report_html")
    return {
        "status": state.get("status", "checked"),
        "error": state.get("error"),
        "checked_at": state.get("checked_at") or state.get("created_at"),
        "window": state.get("window"),
        "n_rows": (state.get("current") or {}).get("n_rows", state.get("n_rows")),
        "drifted_share": None if share is None else float(share),
        "drift_share_threshold": None if threshold is None else float(threshold),
        "drifted": bool(state.get("dataset_drift") or state.get("n_drifted_features")),
        "critical": bool(state.get("critical")),
        "critical_features": [str(f) for f in state.get("critical_features") or []],
        "report_html": str(html) if html else None,
    }


def service_status(
    settings: Settings,
    definition: ServiceDefinition,
    window: timedelta,
    *,
    version: int | None,
    now: datetime,
) -> dict[str, Any]:
    """Every objective of ``definition`` over ``window`` with its budget, plus the live error."""
    report = check_service(settings, definition, window, version=version, now=now)
    since = now - window
    objectives = [
        {**o.as_dict(), "budget": _budget(settings, report, o, since)} for o in report.objectives
    ]
    live = next((o for o in objectives if o["slo"] == "live_metric"), None)
    return {
        "service": report.service,
        "version": report.version,
        "breach": bool(report.breached),
        "objectives": objectives,
        "live_error": None
        if live is None
        else {
            "metric": definition.slo.metric.removesuffix("_spatial_cv"),
            "value": live["observed"],
            "n": live["n"],
            "target": live["target"],
            "status": live["status"],
        },
        "policy": None if report.decision is None else report.decision.as_dict(),
        "drift": drift_view(latest_drift_state(settings, definition.name)),
        "errors": report.errors,
    }


__all__ = ["LATENCY_ALLOWED_SLOW_SHARE", "burn", "drift_view", "service_status", "slow_share"]
