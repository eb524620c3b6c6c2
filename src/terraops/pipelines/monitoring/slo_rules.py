"""The SLOs and the on-call signals as Prometheus rules (``terraops slo rules``).

Recording rules (error ratio, p95 latency, live error per service) and alerts
over the metrics of ``GET /metrics``:

- per service: the multi-window, multi-burn-rate error-budget alerts (Google
  SRE workbook, ch. 5), p95 latency, live error, and critical drift;
- per server: data-quality refusals, registry contact, free space of the home.

Every alert has a ``severity`` (``page`` wakes someone, ``ticket`` waits for
working hours), ``service`` where it concerns one, and the annotations
``summary``, ``description`` and ``runbook_url`` — the page of
``docs/runbooks/`` to open for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from terraops.services.base import ServiceDefinition

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
RUNBOOKS = "docs/runbooks"
DRIFT_MAX_AGE_S = 86_400
"""A drift verdict older than a day (the scheduled check's default window) no longer
describes the traffic: the drift alert ignores it."""
DISK_FREE_MIN = 0.10
"""Free share of the home's filesystem below which the disk alert pages: at 10 % a
training run (MLflow artifacts, cell tables) or a day of prediction logs may fill it."""


def runbook_url(slug: str) -> str:
    return f"{RUNBOOKS}/{slug}.md"


def prometheus_rules(services: Sequence[ServiceDefinition]) -> dict[str, Any]:
    """Recording rules, then per-service and per-server alerts, as one rules file."""
    alerts: list[dict[str, Any]] = []
    for d in services:
        alerts += _service_alerts(d)
    alerts += _server_alerts()
    return {
        "groups": [
            {"name": "terraops-slo-recording", "interval": "30s", "rules": _recording_rules()},
            {"name": "terraops-slo-alerts", "rules": alerts},
        ]
    }


def _recording_rules() -> list[dict[str, Any]]:
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
    return recording


def _alert(
    name: str,
    expr: str,
    labels: dict[str, str],
    summary: str,
    description: str,
    runbook: str,
    for_: str | None = None,
) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if for_:
        rule["for"] = for_
    rule["labels"] = labels
    rule["annotations"] = {
        "summary": summary,
        "description": description,
        "runbook_url": runbook_url(runbook),
    }
    return rule


def _service_alerts(d: ServiceDefinition) -> list[dict[str, Any]]:
    s, slo = d.name, d.slo
    sel = f'{{service="{s}"}}'
    alerts = []
    for severity in ("page", "ticket"):
        fast = severity == "page"
        clauses = [
            f"(terraops:request_errors:ratio_rate{long}{sel} > {factor * slo.error_budget:g} "
            f"and terraops:request_errors:ratio_rate{short}{sel} > {factor * slo.error_budget:g})"
            for long, short, factor, sev in BURN_WINDOWS
            if sev == severity
        ]
        alerts.append(
            _alert(
                f"TerraopsErrorBudgetBurn{'Fast' if fast else 'Slow'}",
                " or ".join(clauses),
                {"severity": severity, "service": s, "slo": "availability"},
                f"{s}: 5xx error budget ({slo.error_budget:g}) burning "
                f"{'fast' if fast else 'steadily'}",
                f"{s} answers {{{{ $value | humanizePercentage }}}} of prediction requests "
                f"with 5xx; at this rate the budget of {slo.error_budget:g} is gone in "
                f"{'about two days' if fast else 'about ten days'}.",
                "errors",
            )
        )
    p95_s = slo.p95_latency_ms / 1000.0
    alerts.append(
        _alert(
            "TerraopsLatencyP95High",
            f"terraops:request_latency_seconds:p95_rate5m{sel} > {p95_s:g} "
            f"and terraops:request_latency_seconds:p95_rate1h{sel} > {p95_s:g}",
            {"severity": "ticket", "service": s, "slo": "latency_p95"},
            f"{s}: p95 point-predict latency above {slo.p95_latency_ms:g} ms",
            f"{s}: p95 of point predictions is {{{{ $value | humanizeDuration }}}} over the "
            f"last 5 minutes and hour (objective {slo.p95_latency_ms:g} ms).",
            "latency",
            for_="5m",
        )
    )
    relation = "<" if slo.metric_higher_is_better else ">"
    alerts.append(
        _alert(
            "TerraopsLiveErrorAboveTarget",
            f"terraops:live_error:rate1h{sel} {relation} {slo.metric_target:g}",
            {"severity": "page", "service": s, "slo": "live_metric"},
            f"{s}: live error misses the target {slo.metric_target:g} "
            "(ground truth of the last hour)",
            f'{s}: live error {{{{ $value | printf "%.4g" }}}} on the ground truth received '
            f"in the last hour (target {'>=' if slo.metric_higher_is_better else '<='} "
            f"{slo.metric_target:g}).",
            "model-quality",
            for_="15m",
        )
    )
    alerts.append(_drift_alert(s))
    return alerts


def _drift_alert(s: str) -> dict[str, Any]:
    sel = f'{{service="{s}"}}'
    fresh = f"(time() - terraops_drift_last_check_timestamp_seconds{sel}) < {DRIFT_MAX_AGE_S}"
    return _alert(
        "TerraopsDriftCritical",
        f"max by (service) (terraops_drift_critical{sel}) == 1 "
        f"and on (service) max by (service) ({fresh})",
        {"severity": "ticket", "service": s, "slo": "drift"},
        f"{s}: critical drift of the served inputs",
        f"The latest drift check of {s}'s prediction log against the champion's training "
        "data found dataset drift (a critical feature, or too many features, drifted).",
        "drift",
        for_="5m",
    )


def _server_alerts() -> list[dict[str, Any]]:
    """Alerts about the server and its home, not one service."""
    return [
        _alert(
            "TerraopsDataQualityFailing",
            "max by (service) (increase(terraops_data_quality_failures_total[1h])) > 0",
            {"severity": "ticket"},
            "{{ $labels.service }}: data refused by a data-quality check",
            '{{ $value | printf "%.0f" }} data-quality check(s) of {{ $labels.service }} '
            "failed in the last hour (reports under the home's reports/quality).",
            "data-quality",
        ),
        _alert(
            "TerraopsRegistryUnavailable",
            "terraops_registry_up == 0",
            {"severity": "page"},
            "{{ $labels.instance }}: model registry unreachable",
            "The server at {{ $labels.instance }} has not reached the model registry for "
            "5 minutes: it serves the models it has, but cannot follow promotions or rollbacks.",
            "registry-outage",
            for_="5m",
        ),
        _alert(
            "TerraopsDiskAlmostFull",
            f"terraops_home_free_ratio < {DISK_FREE_MIN:g}",
            {"severity": "page"},
            "{{ $labels.instance }}: terraops home almost full",
            "Only {{ $value | humanizePercentage }} of the filesystem holding TERRAOPS_HOME "
            f"is free (alert below {DISK_FREE_MIN:.0%}).",
            "disk-full",
            for_="5m",
        ),
    ]


def write_rules(services: Sequence[ServiceDefinition]) -> str:
    header = (
        "# terraops SLOs as Prometheus rules — generated by `terraops slo rules`; see SLO.md.\n"
    )
    return header + yaml.safe_dump(prometheus_rules(services), sort_keys=False, width=120)


__all__ = ["BURN_WINDOWS", "RATE_WINDOWS", "prometheus_rules", "runbook_url", "write_rules"]
