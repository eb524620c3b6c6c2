"""The on-call gauges of ``/metrics``: drift, registry contact, free disk, data quality.

Read at scrape time from what every worker can see — the drift state files and
quality reports under the home, the filesystem, this worker's registry poller —
so whichever worker answers a scrape reports the same drift and quality
figures, and nothing has to be kept in step across processes:

- ``terraops_drift_drifted_share{service}``, ``terraops_drift_critical{service}``
  (1 when the latest check's dataset-level verdict is drift: enough features
  drifted, or one the drift policy marks critical),
  ``terraops_drift_critical_features{service}`` and
  ``terraops_drift_last_check_timestamp_seconds{service}``: the latest drift
  state (:func:`~terraops.pipelines.monitoring.drift_schedule.latest_drift_state`;
  absent until a first check ran);
- ``terraops_registry_up``: 1 when this worker's last registry poll answered,
  0 when it failed (absent before the first poll);
- ``terraops_home_free_ratio``: free / total bytes of the home's filesystem;
- ``terraops_data_quality_failures_total{service}``: refused data-quality
  checks recorded under the home
  (:mod:`~terraops.pipelines.monitoring.quality_tally`; ``service="scene"`` for
  the scene-inputs suite).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from terraops.adapters.state_files import free_ratio
from terraops.pipelines.monitoring.drift_schedule import latest_drift_state
from terraops.pipelines.monitoring.quality_tally import QualityFailureTally
from terraops.settings import Settings

REGISTRY_UP = {"ok": 1.0, "unreachable": 0.0}


class OperationsCollector:
    """prometheus-client custom collector of the on-call gauges (one per app)."""

    def __init__(
        self,
        settings: Settings,
        services: Iterable[str],
        registry_status: Callable[[], str],
    ) -> None:
        self.settings = settings
        self.services = list(services)
        self.registry_status = registry_status
        self.quality = QualityFailureTally(settings.reports_dir)

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        families = list(self._drift())
        registry = GaugeMetricFamily(
            "terraops_registry_up",
            "1 when this worker's last registry poll answered, 0 when it failed.",
        )
        up = REGISTRY_UP.get(self.registry_status())
        if up is not None:
            registry.add_metric([], up)
        disk = GaugeMetricFamily(
            "terraops_home_free_ratio",
            "Free / total bytes of the filesystem holding TERRAOPS_HOME.",
        )
        ratio = free_ratio(self.settings.home_dir)
        if ratio is not None:
            disk.add_metric([], ratio)
        return [*families, registry, disk, self._quality()]

    def _drift(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        labels = ["service"]
        share = GaugeMetricFamily(
            "terraops_drift_drifted_share",
            "Share of tested features drifted in the latest drift check (0-1).",
            labels=labels,
        )
        critical = GaugeMetricFamily(
            "terraops_drift_critical",
            "1 when the latest drift check found dataset drift (enough features drifted, "
            "or one the drift policy marks critical).",
            labels=labels,
        )
        critical_count = GaugeMetricFamily(
            "terraops_drift_critical_features",
            "Critical features drifted in the latest drift check.",
            labels=labels,
        )
        checked = GaugeMetricFamily(
            "terraops_drift_last_check_timestamp_seconds",
            "Unix time of the latest drift check (scheduled or `terraops monitor drift`).",
            labels=labels,
        )
        for service in self.services:
            state = latest_drift_state(self.settings, service)
            if state is None:
                continue
            share.add_metric([service], float(state.get("share_of_drifted_features") or 0.0))
            critical.add_metric([service], 1.0 if state["critical"] else 0.0)
            critical_count.add_metric([service], float(len(state["critical_features"])))
            if state.get("checked_at_s") is not None:
                checked.add_metric([service], float(state["checked_at_s"]))
        return [share, critical, critical_count, checked]

    def _quality(self) -> Any:
        from prometheus_client.core import CounterMetricFamily

        failures = CounterMetricFamily(
            "terraops_data_quality_failures",
            "Data-quality checks refused (failed Great Expectations reports under the "
            "home), by service; service=scene: the scene-inputs suite.",
            labels=["service"],
        )
        for service, count in self.quality.counts(self.services).items():
            failures.add_metric([service], count)
        return failures


__all__ = ["OperationsCollector"]
