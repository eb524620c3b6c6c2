"""The on-call view's arithmetic: error budget and burn rate, slow share, the drift summary.

Hand-built inputs, so each boundary is pinned: no events, all events bad, a
burn of exactly 1, a budget spent several times over (floored at 0), and every
shape of drift state the dashboard meets (none, no verdict, failed, stale).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from terraops.adapters.prediction_log import PredictionLog
from terraops.pipelines.monitoring.drift_schedule import with_verdict
from terraops.pipelines.monitoring.slo_status import (
    LATENCY_ALLOWED_SLOW_SHARE,
    burn,
    drift_view,
    slow_share,
)
from terraops.settings import Settings

# ----- error budget ----------------------------------------------------------------


def test_no_bad_events_burn_nothing_and_leave_the_whole_budget() -> None:
    assert burn(0.0, 0.001) == {
        "allowed_share": 0.001, "bad_share": 0.0, "burn_rate": 0.0, "left": 1.0,
    }  # fmt: skip


def test_a_burn_rate_of_exactly_one_spends_the_whole_budget() -> None:
    budget = burn(0.05, LATENCY_ALLOWED_SLOW_SHARE)
    assert budget["burn_rate"] == 1.0 and budget["left"] == 0.0


def test_half_the_allowed_share_leaves_half_the_budget() -> None:
    budget = burn(0.0005, 0.001)
    assert budget["burn_rate"] == 0.5 and budget["left"] == 0.5


def test_all_events_bad_burns_far_past_the_budget_which_floors_at_zero() -> None:
    budget = burn(1.0, 0.001)
    assert budget["burn_rate"] == 1000.0
    assert budget["left"] == 0.0  # never negative, however fast it burns
    assert budget["bad_share"] == 1.0


def test_the_fast_burn_page_threshold_is_a_burn_rate_of_14_4() -> None:
    assert burn(0.0144, 0.001)["burn_rate"] == pytest.approx(14.4)


# ----- slow share (the latency budget's bad events) ----------------------------------


def _log_requests(home: Path, latencies_ms: list[float], status: int = 200) -> None:
    log = PredictionLog(home / "predictions", retention_s=None)
    for i, ms in enumerate(latencies_ms):
        log.record(f"r{status}-{i}", "uhi", 3, ["x"], [[1.0]], [0.5], ms, status)
    log.flush()


def test_no_logged_requests_have_no_slow_share(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    since = datetime.now(UTC) - timedelta(hours=1)
    assert slow_share(settings, "uhi", 3, since, 100.0) is None


def test_slow_share_counts_answered_point_requests_slower_than_the_target(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path)
    _log_requests(tmp_path, [10.0, 20.0, 150.0, 300.0])
    _log_requests(tmp_path, [900.0, 900.0], status=503)  # 5xx: the availability budget's
    since = datetime.now(UTC) - timedelta(hours=1)
    assert settings.predictions_dir == tmp_path / "predictions"
    assert slow_share(settings, "uhi", 3, since, 100.0) == 0.5
    assert slow_share(settings, "uhi", 3, since, 1000.0) == 0.0
    assert slow_share(settings, "uhi", 3, since, 1.0) == 1.0
    assert slow_share(settings, "uhi", 4, since, 100.0) is None  # another version's window


# ----- drift summary -------------------------------------------------------------------


def _state(**fields: Any) -> dict[str, Any]:
    """A drift state as the scheduled check writes it, then read back with its verdict."""
    return with_verdict(
        {
            "service": "uhi",
            "created_at": "2026-12-07T01:00:00+00:00",
            "window": "24h",
            "current": {"n_rows": 120},
            "report_html": None,
            "policy": {"drift_share": 0.5},
            **fields,
        }
    )


def _feature(drifted: bool, critical: bool = False) -> dict[str, Any]:
    return {"drifted": drifted, "critical": critical, "score": 1.0}


def test_no_drift_check_yet_has_no_view() -> None:
    assert drift_view(None) is None


def test_a_dataset_share_verdict_names_the_share_and_its_threshold() -> None:
    view = drift_view(
        _state(
            dataset_drift=True,
            share_of_drifted_features=1.0,
            n_drifted_features=2,
            features={"lst": _feature(True), "ndvi": _feature(True)},
        )
    )
    assert view is not None
    assert view["status"] == "checked" and view["critical"] and view["drifted"]
    assert view["drifted_share"] == 1.0 and view["drift_share_threshold"] == 0.5
    assert view["critical_features"] == []  # the share rule fired, not a critical feature
    assert view["n_rows"] == 120 and view["window"] == "24h"
    assert view["checked_at"] == "2026-12-07T01:00:00+00:00"


def test_a_critical_feature_verdict_names_the_feature_below_the_share_threshold() -> None:
    view = drift_view(
        _state(
            dataset_drift=True,
            share_of_drifted_features=0.25,
            n_drifted_features=1,
            features={
                "reference_temperature": _feature(True, critical=True),
                "ndvi": _feature(False),
                "lst": _feature(False),
                "albedo": _feature(False),
            },
        )
    )
    assert view is not None and view["critical"]
    assert view["drifted_share"] == 0.25 < view["drift_share_threshold"]
    assert view["critical_features"] == ["reference_temperature"]


def test_some_drift_below_both_rules_is_drifted_but_not_critical() -> None:
    view = drift_view(
        _state(
            dataset_drift=False,
            share_of_drifted_features=0.25,
            n_drifted_features=1,
            features={"ndvi": _feature(True), "lst": _feature(False)},
        )
    )
    assert view is not None and view["drifted"] and not view["critical"]


def test_a_check_with_too_few_rows_has_no_verdict() -> None:
    view = drift_view(_state(status="no_data", current={"n_rows": 3}))
    assert view is not None
    assert view["status"] == "no_data" and view["n_rows"] == 3
    assert not view["critical"] and not view["drifted"] and view["drifted_share"] is None


def test_a_failed_check_carries_its_error_and_no_verdict() -> None:
    view = drift_view(_state(status="error", error="no champion for uhi", policy=None))
    assert view is not None
    assert view["status"] == "error" and view["error"] == "no champion for uhi"
    assert not view["critical"] and view["drift_share_threshold"] is None


def test_a_stale_state_is_shown_as_it_was_checked_not_recomputed() -> None:
    """A check days old keeps its verdict and its own time: the dashboard says how old."""
    view = drift_view(
        _state(
            created_at="2026-11-01T00:00:00+00:00",
            dataset_drift=True,
            share_of_drifted_features=0.75,
            n_drifted_features=3,
        )
    )
    assert view is not None and view["critical"]
    assert view["checked_at"] == "2026-11-01T00:00:00+00:00"


def test_an_old_report_without_a_policy_still_reads() -> None:
    """A summary from before the policy was recorded: no threshold, the verdict still shows."""
    view = drift_view(with_verdict({"dataset_drift": True, "share_of_drifted_features": 0.6}))
    assert view is not None and view["critical"] and view["drift_share_threshold"] is None
    assert view["checked_at"] is None and view["report_html"] is None
