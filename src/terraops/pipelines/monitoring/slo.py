"""SLO checks from live data, automatic rollback, and the same SLOs as Prometheus rules.

Objectives per service come from its definition (``ServiceDefinition.slo``,
stated in ``SLO.md``) and are judged over a window, for the **model serving
now** (the champion's version), so a rollback is not undone by the traffic of
the version it rolled back from:

- **availability** — share of prediction requests answered 5xx (prediction log
  ``status``; 503 no model, 500 the model raised) ≤ ``error_budget``;
- **latency** — p95 of point-prediction handler latency (log ``latency_ms``)
  ≤ ``p95_latency_ms``;
- **live metric** — the champion's error on ground truth received in the
  window (feedback store: MAE for UHI, Brier for flood) meets ``metric_target``
  (the same bar a promotion must clear on spatial CV);
- **drift** — no critical drift in the last drift check of the champion's traffic.

How each is judged, and when too little data makes it ``no_data`` rather than
a breach, is :mod:`terraops.pipelines.monitoring.slo_objectives`. A breach
exits 1 and gets a decision from the rollback policy
(:mod:`terraops.domain.slo_policy`): a model-quality breach may roll back, a
latency or 5xx breach only alerts unless the champion is slower or failing
where the version it replaced, in the same window of the prediction log, was
not. ``rollback_on_breach`` carries a ``rollback`` decision out through the
lifecycle (the history's reason names the SLO and the decision).
:func:`run_schedule` runs the same check inside ``terraops serve`` when
``TERRAOPS_SLO_CHECK_INTERVAL_S`` > 0.

:func:`~terraops.pipelines.monitoring.slo_rules.prometheus_rules` writes the
same objectives as recording rules and multi-window, multi-burn-rate alerts
(Google SRE workbook, ch. 5) over the metrics of ``GET /metrics``, with the
drift, data-quality, registry and disk alerts beside them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from terraops.adapters import atomic
from terraops.adapters.feedback_store import FeedbackStore
from terraops.adapters.prediction_log import read_predictions
from terraops.adapters.registry import ModelRegistry
from terraops.domain.promotion import rollback_target
from terraops.domain.slo_policy import (
    SERVING_SLOS,
    RollbackDecision,
    VersionComparison,
    decide_rollback,
)
from terraops.errors import InvalidInputError, NothingToRollBackError, TerraopsError
from terraops.pipelines.lifecycle import aliases
from terraops.pipelines.monitoring import slo_objectives
from terraops.pipelines.monitoring.drift_schedule import latest_drift_state
from terraops.pipelines.monitoring.slo_objectives import (
    MIN_FEEDBACK,
    MIN_REQUESTS,
    ObjectiveResult,
    Status,
    availability,
    latency,
    live_metric,
    version_requests,
)
from terraops.pipelines.monitoring.slo_rules import prometheus_rules, write_rules
from terraops.services import get_service
from terraops.services.base import ServiceDefinition
from terraops.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "MIN_FEEDBACK",
    "MIN_REQUESTS",
    "ObjectiveResult",
    "ServiceReport",
    "Status",
    "prometheus_rules",  # the rules live in slo_rules; `terraops slo rules` imports them here
    "write_rules",
]


@dataclass
class ServiceReport:
    service: str
    version: int | None
    window_s: float
    objectives: list[ObjectiveResult]
    rollback: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)
    decision: RollbackDecision | None = None
    """What the rollback policy makes of the breaches (None: no breach)."""

    @property
    def breached(self) -> list[ObjectiveResult]:
        return [o for o in self.objectives if o.status == "breach"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "version": self.version,
            "window_s": self.window_s,
            "breach": bool(self.breached),
            "breached": [o.slo for o in self.breached],
            "objectives": [o.as_dict() for o in self.objectives],
            "decision": self.decision.decision if self.decision else None,
            "reason": self.decision.reason if self.decision else None,
            "comparisons": [c.as_dict() for c in self.decision.comparisons]
            if self.decision
            else [],
            "rollback": self.rollback,
            "errors": self.errors,
        }


def parse_window(text: str) -> timedelta:
    """``30s``, ``15m``, ``1h``, ``2d`` → a timedelta."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number = text[:-1]
    if not text or text[-1] not in units or not number.replace(".", "", 1).isdigit():
        raise InvalidInputError(f"cannot read window {text!r}", hint="e.g. 30m, 1h, 1d")
    seconds = float(number) * units[text[-1]]
    if seconds <= 0:
        raise InvalidInputError("the window must be longer than 0")
    return timedelta(seconds=seconds)


def check_service(
    settings: Settings,
    definition: ServiceDefinition,
    window: timedelta,
    *,
    version: int | None = None,
    now: datetime | None = None,
) -> ServiceReport:
    """Every objective of one service over ``window``, for ``version`` (default: champion)."""
    errors: list[str] = []
    if version is None:
        version = _champion(settings, definition.name, errors)
    now = now or datetime.now(UTC)
    since = now - window
    records = list(read_predictions(settings.predictions_dir, definition.name, since=since))
    requests = version_requests(records, version)
    live = FeedbackStore(settings.feedback_db).live_error(definition.name, since, version)
    objectives = [
        availability(definition.slo.error_budget, requests),
        latency(definition.slo.p95_latency_ms, requests),
        live_metric(definition, live),
        slo_objectives.drift(latest_drift_state(settings, definition.name), version, now),
    ]
    report = ServiceReport(
        definition.name, version, window.total_seconds(), objectives, None, errors
    )
    report.decision = _decide(settings, definition, report, records)
    return report


def _decide(
    settings: Settings,
    definition: ServiceDefinition,
    report: ServiceReport,
    records: Sequence[dict[str, Any]],
) -> RollbackDecision | None:
    """The rollback policy's verdict: serving breaches are compared with the previous
    champion's traffic in the same window (``records``), by the same rules."""
    breached = [o.slo for o in report.breached]
    if not breached:
        return None
    if report.version is None:
        return RollbackDecision("alert-only", "champion unknown: nothing to roll back")
    entries = aliases.open_history(settings).entries(definition.name)
    previous = rollback_target(entries, report.version)
    comparisons: dict[str, VersionComparison] = {}
    if previous is not None:
        theirs = version_requests(records, previous)
        judged = {
            "availability": availability(definition.slo.error_budget, theirs),
            "latency_p95": latency(definition.slo.p95_latency_ms, theirs),
        }
        for mine in report.breached:
            if mine.slo in SERVING_SLOS and mine.observed is not None:
                other = judged[mine.slo]
                comparisons[mine.slo] = VersionComparison(
                    mine.slo, mine.target, report.version, mine.observed,
                    previous, other.observed, other.n,
                )  # fmt: skip
    return decide_rollback(
        breached, comparisons, min_requests=MIN_REQUESTS, previous_version=previous
    )


def _champion(settings: Settings, service: str, errors: list[str]) -> int | None:
    try:
        registry = ModelRegistry(settings, timeout_s=settings.registry_timeout_s)
        return registry.get_alias(service, "champion")
    except TerraopsError as exc:
        errors.append(f"champion unknown ({exc.message}); judged over every version")
        return None


def breach_reason(report: ServiceReport) -> str:
    window = _window_text(report.window_s)
    parts = [f"{o.slo}: {o.detail}" for o in report.breached]
    return f"SLO breach over {window} — " + "; ".join(parts)


def _window_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def check(
    settings: Settings,
    services: Sequence[ServiceDefinition],
    window: timedelta,
    *,
    rollback_on_breach: bool = False,
) -> list[ServiceReport]:
    """Check every service; on ``rollback_on_breach`` roll back the champions the policy
    blames (:mod:`terraops.domain.slo_policy`): a latency or 5xx breach the host explains
    only alerts."""
    reports = [check_service(settings, d, window) for d in services]
    if rollback_on_breach:
        for report in reports:
            if report.decision is not None and report.decision.decision == "rollback":
                report.rollback = _rollback(settings, report)
    _save(settings, reports)
    return reports


def _rollback(settings: Settings, report: ServiceReport) -> dict[str, Any]:
    reason = breach_reason(report)
    if report.decision is not None:
        reason += f" — {report.decision.reason}"
    try:
        entry = aliases.rollback(settings, ModelRegistry(settings), report.service, reason=reason)
    except NothingToRollBackError as exc:
        return {"done": False, "reason": reason, "error": exc.message}
    except TerraopsError as exc:
        return {"done": False, "reason": reason, "error": exc.message}
    return {
        "done": True,
        "from_version": entry.from_version,
        "to_version": entry.to_version,
        "reason": reason,
        "history_id": entry.id,
        "at": entry.created_at.isoformat(),
    }


def _save(settings: Settings, reports: Sequence[ServiceReport]) -> None:
    payload = {
        "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "services": [r.as_dict() for r in reports],
    }
    last = settings.reports_dir / "slo" / "last.json"
    atomic.atomic_write_json(last, payload, indent=2, default=str, parents=True)


# ----- the schedule inside ``terraops serve`` --------------------------------------------


def run_schedule(
    settings: Settings,
    services: Sequence[ServiceDefinition],
    *,
    interval_s: float,
    window: timedelta,
    rollback_on_breach: bool,
    stop: threading.Event,
) -> None:
    """Check every ``interval_s`` until ``stop`` is set; never raises (logs instead)."""
    while not stop.wait(interval_s):
        try:
            for report in check(settings, services, window, rollback_on_breach=rollback_on_breach):
                if report.decision is not None:
                    log.warning(
                        "%s: %s; decision %s: %s",
                        report.service,
                        breach_reason(report),
                        report.decision.decision,
                        report.decision.reason,
                    )
                if report.rollback:
                    log.warning("%s: automatic rollback %s", report.service, report.rollback)
        except Exception:  # keep checking: a registry blip must not stop the schedule
            log.exception("scheduled SLO check failed")


def start_schedule(settings: Settings) -> threading.Event | None:
    """Start the scheduled check in a daemon thread if the settings ask for it."""
    interval = float(getattr(settings, "slo_check_interval_s", 0.0) or 0.0)
    if interval <= 0:
        return None
    services = [get_service(name) for name in settings.services]
    stop = threading.Event()
    thread = threading.Thread(
        target=run_schedule,
        kwargs={
            "settings": settings,
            "services": services,
            "interval_s": interval,
            "window": parse_window(str(getattr(settings, "slo_window", "1h"))),
            "rollback_on_breach": bool(getattr(settings, "slo_rollback_on_breach", False)),
            "stop": stop,
        },
        name="slo-check",
        daemon=True,
    )
    thread.start()
    return stop
