"""Drift on a schedule: the prediction log against the champion's training reference.

``terraops serve`` with ``TERRAOPS_DRIFT_CHECK_INTERVAL_S`` set runs
:func:`check_drift_from_log` for every served service each interval, over the
inputs logged in the last ``TERRAOPS_DRIFT_WINDOW``, in one background thread
of the ``serve`` process (started before the workers, as the SLO schedule, so
several workers never check twice). Each check replaces one small JSON state
per service, ``<home>/reports/drift/<service>/latest.json``, atomically, in the
shape of the drift report's JSON summary; the ``/metrics`` gauges, the
dashboard and the SLO check read it through :func:`latest_drift_state`, so
every worker reports the same state.

The scheduled check computes the drift statistics only — the very tests the
Evidently report is given (:mod:`terraops.domain.drift`) — and not the HTML
report: Evidently takes ~10 s to import and seconds of CPU per report, which a
serving process would pay in request latency. The HTML comes from the cron
alternative, ``terraops monitor drift <service> --from-log --since 24h --out
<home>/reports/drift/<service>/latest.html``: its JSON summary lands at the
same ``latest.json``, so either source feeds the same gauges. Each state also
says ``status``: ``checked``, ``no_data`` (too few logged rows to test any
feature: no verdict, not a drift); a check that cannot run (no champion, no
reference, the registry unreachable) is logged and keeps the last state.

**Critical** drift is the policy's dataset-level verdict
(:func:`terraops.domain.drift.summarize`): the share of drifted features
reaches ``drift_share``, or a feature the policy marks critical drifted (UHI's
``reference_temperature``: a day beyond the training days' range shifts every
prediction). ``critical_features`` names the drifted features marked critical.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from terraops.adapters import atomic
from terraops.adapters.registry import ModelRegistry
from terraops.adapters.state_files import read_json_object
from terraops.domain import drift
from terraops.errors import TerraopsError
from terraops.pipelines.lifecycle.resolve import resolve_version
from terraops.pipelines.monitoring.drift_report import (
    CURRENT_MAX_ROWS,
    champion_reference,
    log_features,
    parse_since,
    policy_for,
)
from terraops.services import all_services
from terraops.services.base import ServiceDefinition
from terraops.settings import Settings

log = logging.getLogger(__name__)

STATE_NAME = "latest.json"


def drift_state_path(settings: Settings, service: str) -> Path:
    """Where the latest drift state of ``service`` lives (scheduled check or cron report)."""
    return settings.reports_dir / "drift" / service / STATE_NAME


def latest_drift_state(settings: Settings, service: str) -> dict[str, Any] | None:
    """The last drift check of ``service`` with its verdict, or ``None`` if none ran.

    Adds what a report written by ``terraops monitor drift`` lacks: ``status``
    (``checked`` | ``no_data``), ``critical`` (the dataset-level verdict),
    ``critical_features`` and ``checked_at_s`` (Unix seconds of ``created_at``;
    ``None`` if unreadable).
    """
    state = read_json_object(drift_state_path(settings, service))
    if state is None:
        return None
    return with_verdict(state)


def with_verdict(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` plus the derived fields of :func:`latest_drift_state` (a new dict)."""
    out = {
        "status": "checked" if "dataset_drift" in state else "no_data",
        "critical": bool(state.get("dataset_drift")),
        "critical_features": critical_features(state),
        **state,
    }
    try:
        moment = datetime.fromisoformat(str(out.get("created_at")))
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        out["checked_at_s"] = moment.timestamp()
    except ValueError:
        out["checked_at_s"] = None
    return out


def critical_features(state: dict[str, Any]) -> list[str]:
    """The drifted features the policy marks critical, in a state or drift summary."""
    features = state.get("features")
    if not isinstance(features, dict):
        return []
    return sorted(
        name
        for name, f in features.items()
        if isinstance(f, dict) and f.get("drifted") and f.get("critical")
    )


class ChampionReferences:
    """The champion's training reference, downloaded once per training run.

    A check every minute must not download the same parquet every minute; the
    registry is still asked for the champion each time, so a promotion or a
    rollback is followed at the next check.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._registry: ModelRegistry | None = None
        self._by_run: dict[str, tuple[pd.DataFrame, dict[str, Any]]] = {}

    def get(self, definition: ServiceDefinition) -> tuple[pd.DataFrame, dict[str, Any]]:
        if self._registry is None:
            timeout_s = self.settings.registry_timeout_s
            self._registry = ModelRegistry(self.settings, timeout_s=timeout_s)
        info = resolve_version(
            self._registry,
            definition.name,
            None,
            purpose="to check drift against",
            hint=f"promote one: terraops models promote {definition.name} N",
        )
        cached = self._by_run.get(info.run_id)
        if cached is None:
            cached = champion_reference(self.settings, definition, info.version)
            self._by_run[info.run_id] = cached
        reference, model = cached
        return reference, {**model, "version": info.version}


def check_drift_from_log(
    settings: Settings,
    definition: ServiceDefinition,
    window: str,
    references: ChampionReferences | None = None,
) -> dict[str, Any]:
    """Drift of the inputs logged in the last ``window`` (``24h``); writes the state file.

    Never raises for a missing champion, reference or registry: it returns a
    state with ``status: error`` and the reason, and leaves the last verdict in
    place — a registry blip must not clear a drift alert.
    """
    since = parse_since(window)
    state: dict[str, Any] = {
        "service": definition.name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "window": window,
        "current": {"source": f"prediction log, last {window}", "n_rows": 0},
        "report_html": None,
    }
    try:
        reference, model = (references or ChampionReferences(settings)).get(definition)
    except TerraopsError as exc:
        return {**state, "status": "error", "error": exc.message}
    policy = policy_for(definition)
    current = drift.sample_rows(log_features(settings, definition, since), CURRENT_MAX_ROWS, seed=0)
    summary = drift.compare(reference, current, definition.feature_names, policy)
    state.update(
        status="checked" if summary.n_tested else "no_data",
        reference={"model": model, "n_rows": len(reference)},
        current={**state["current"], "n_rows": len(current)},
        **summary.as_dict(),
        policy=policy.describe(),
    )
    atomic.atomic_write_json(
        drift_state_path(settings, definition.name), state, default=str, parents=True
    )
    return with_verdict(state)


# ----- the schedule inside ``terraops serve`` --------------------------------------------


def run_drift_schedule(
    settings: Settings,
    services: Sequence[ServiceDefinition],
    *,
    interval_s: float,
    window: str,
    stop: threading.Event,
) -> None:
    """Check every ``interval_s`` until ``stop`` is set; never raises (logs instead).

    Logs only changes of the verdict, so a drift lasting days is one line, not thousands.
    """
    references = ChampionReferences(settings)
    critical: dict[str, bool] = {}
    while not stop.wait(interval_s):
        for definition in services:
            try:
                state = check_drift_from_log(settings, definition, window, references)
            except Exception:  # keep checking: a full disk or a bad log must not stop it
                log.exception("scheduled drift check of %s failed", definition.name)
                continue
            if state["status"] == "error":
                log.warning("drift check of %s skipped: %s", definition.name, state["error"])
                continue
            now_critical = bool(state.get("dataset_drift"))
            if now_critical != critical.get(definition.name, False):
                level = logging.WARNING if now_critical else logging.INFO
                log.log(level, "%s drift: %s", definition.name, state.get("reasons") or "cleared")
            critical[definition.name] = now_critical


def start_drift_schedule(settings: Settings) -> threading.Event | None:
    """Start the scheduled drift check in a daemon thread if the settings ask for it.

    Call it once per server (``terraops serve`` does, before the workers start).
    """
    interval = settings.drift_check_interval_s
    if not interval:
        return None
    parse_since(settings.drift_window)  # a bad window fails at start, not in the thread
    known = all_services()
    services = [known[name] for name in dict.fromkeys(settings.services) if name in known]
    stop = threading.Event()
    thread = threading.Thread(
        target=run_drift_schedule,
        kwargs={
            "settings": settings,
            "services": services,
            "interval_s": interval,
            "window": settings.drift_window,
            "stop": stop,
        },
        name="drift-check",
        daemon=True,
    )
    thread.start()
    return stop


__all__ = [
    "ChampionReferences",
    "check_drift_from_log",
    "critical_features",
    "drift_state_path",
    "latest_drift_state",
    "run_drift_schedule",
    "start_drift_schedule",
    "with_verdict",
]
