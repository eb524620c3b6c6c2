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
  (the same bar a promotion must clear on spatial CV).

An objective with too little data in the window (fewer than ``MIN_REQUESTS``
requests, ``MIN_FEEDBACK`` truths) is reported ``no_data`` — not a breach: a
p95 of ten requests or a MAE of three cells says nothing. A breach exits 1;
``rollback_on_breach`` restores the previous champion through the lifecycle
(the history's reason names the SLO). :func:`run_schedule` runs the same
check inside ``terraops serve`` when ``TERRAOPS_SLO_CHECK_INTERVAL_S`` > 0.

:func:`prometheus_rules` writes the same objectives as recording rules and
multi-window, multi-burn-rate alerts (Google SRE workbook, ch. 5) over the
metrics of ``GET /metrics``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import yaml

from terraops.adapters import atomic
from terraops.adapters.feedback_store import FeedbackStore
from terraops.adapters.prediction_log import read_predictions
from terraops.adapters.registry import ModelRegistry
from terraops.errors import InvalidInputError, NothingToRollBackError, TerraopsError
from terraops.pipelines.lifecycle import aliases
from terraops.services import get_service
from terraops.services.base import ServiceDefinition
from terraops.settings import Settings

log = logging.getLogger(__name__)

MIN_REQUESTS = 100
MIN_FEEDBACK = 20
Status = Literal["ok", "breach", "no_data"]


@dataclass(frozen=True)
class ObjectiveResult:
    slo: str  # availability | latency_p95 | live_metric
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


@dataclass
class ServiceReport:
    service: str
    version: int | None
    window_s: float
    objectives: list[ObjectiveResult]
    rollback: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)

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


# ----- evaluating ------------------------------------------------------------------


def _requests(records: Sequence[dict[str, Any]], version: int | None) -> list[dict[str, Any]]:
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
    since = (now or datetime.now(UTC)) - window
    records = list(read_predictions(settings.predictions_dir, definition.name, since=since))
    requests = _requests(records, version)
    live = FeedbackStore(settings.feedback_db).live_error(definition.name, since, version)
    objectives = [
        availability(definition.slo.error_budget, requests),
        latency(definition.slo.p95_latency_ms, requests),
        live_metric(definition, live),
    ]
    return ServiceReport(definition.name, version, window.total_seconds(), objectives, None, errors)


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
    """Check every service; on ``rollback_on_breach`` roll breaching champions back."""
    reports = [check_service(settings, d, window) for d in services]
    if rollback_on_breach:
        for report in reports:
            if report.breached and report.version is not None:
                report.rollback = _rollback(settings, report)
    _save(settings, reports)
    return reports


def _rollback(settings: Settings, report: ServiceReport) -> dict[str, Any]:
    reason = breach_reason(report)
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
                if report.breached:
                    log.warning("%s: %s", report.service, breach_reason(report))
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


# ----- Prometheus rules ---------------------------------------------------------------------

REQUESTS = "terraops_request_duration_seconds"
PREDICT = 'endpoint=~"predict|batch"'
#: (long window, short window, burn-rate factor, severity): SRE workbook, table 5-8.
BURN_WINDOWS: tuple[tuple[str, str, float, str], ...] = (
    ("1h", "5m", 14.4, "page"),
    ("6h", "30m", 6.0, "page"),
    ("1d", "2h", 3.0, "ticket"),
    ("3d", "6h", 1.0, "ticket"),
)
RATE_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


def prometheus_rules(services: Sequence[ServiceDefinition]) -> dict[str, Any]:
    """Recording rules (error ratio, slow-request ratio, live error) and burn-rate alerts."""
    recording: list[dict[str, Any]] = []
    for w in RATE_WINDOWS:
        total = f"sum by (service) (rate({REQUESTS}_count{{{PREDICT}}}[{w}]))"
        failed = f'sum by (service) (rate({REQUESTS}_count{{{PREDICT},status=~"5.."}}[{w}]))'
        # "or 0 * total": a service without a single 5xx has a ratio of 0, not no ratio
        recording.append(
            {
                "record": f"terraops:request_errors:ratio_rate{w}",
                "expr": f"({failed} or 0 * {total}) / {total}",
            }
        )
    for w in ("5m", "1h"):
        point = 'endpoint="predict",status=~"2.."'
        recording.append(
            {
                "record": f"terraops:request_latency_seconds:p95_rate{w}",
                "expr": "histogram_quantile(0.95, sum by (service, le) "
                f"(rate({REQUESTS}_bucket{{{point}}}[{w}])))",
            }
        )
    recording.append(
        {
            "record": "terraops:live_error:rate1h",
            "expr": "sum by (service) (rate(terraops_feedback_error_total[1h])) / "
            "sum by (service) (rate(terraops_feedback_total[1h]))",
        }
    )
    alerts: list[dict[str, Any]] = []
    for d in services:
        alerts += _service_alerts(d)
    return {
        "groups": [
            {"name": "terraops-slo-recording", "interval": "30s", "rules": recording},
            {"name": "terraops-slo-alerts", "rules": alerts},
        ]
    }


def _service_alerts(d: ServiceDefinition) -> list[dict[str, Any]]:
    s, slo = d.name, d.slo
    sel = f'{{service="{s}"}}'
    alerts = []
    for severity in ("page", "ticket"):
        clauses = [
            f"(terraops:request_errors:ratio_rate{long}{sel} > {factor * slo.error_budget:g} "
            f"and terraops:request_errors:ratio_rate{short}{sel} > {factor * slo.error_budget:g})"
            for long, short, factor, sev in BURN_WINDOWS
            if sev == severity
        ]
        alerts.append(
            {
                "alert": f"TerraopsErrorBudgetBurn{'Fast' if severity == 'page' else 'Slow'}",
                "expr": " or ".join(clauses),
                "labels": {"severity": severity, "service": s, "slo": "availability"},
                "annotations": {
                    "summary": f"{s}: 5xx error budget ({slo.error_budget:g}) burning "
                    f"{'fast' if severity == 'page' else 'steadily'}",
                    "runbook": "RUNBOOK_ROLLBACK.md#slo-breach",
                },
            }
        )
    p95_s = slo.p95_latency_ms / 1000.0
    alerts.append(
        {
            "alert": "TerraopsLatencyP95High",
            "expr": f"terraops:request_latency_seconds:p95_rate5m{sel} > {p95_s:g} "
            f"and terraops:request_latency_seconds:p95_rate1h{sel} > {p95_s:g}",
            "for": "5m",
            "labels": {"severity": "ticket", "service": s, "slo": "latency_p95"},
            "annotations": {
                "summary": f"{s}: p95 point-predict latency above {slo.p95_latency_ms:g} ms",
                "runbook": "RUNBOOK_ROLLBACK.md#slo-breach",
            },
        }
    )
    relation = "<" if slo.metric_higher_is_better else ">"
    alerts.append(
        {
            "alert": "TerraopsLiveErrorAboveTarget",
            "expr": f"terraops:live_error:rate1h{sel} {relation} {slo.metric_target:g}",
            "for": "15m",
            "labels": {"severity": "page", "service": s, "slo": "live_metric"},
            "annotations": {
                "summary": f"{s}: live error misses the target {slo.metric_target:g} "
                "(ground truth of the last hour)",
                "runbook": "RUNBOOK_ROLLBACK.md#slo-breach",
            },
        }
    )
    return alerts


def write_rules(services: Sequence[ServiceDefinition]) -> str:
    header = (
        "# terraops SLOs as Prometheus rules — generated by `terraops slo rules`; see SLO.md.\n"
    )
    return header + yaml.safe_dump(prometheus_rules(services), sort_keys=False, width=120)
