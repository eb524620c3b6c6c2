"""The rollback policy on SLO breaches: model quality rolls back, host trouble only alerts."""

from __future__ import annotations

import pytest

from terraops.domain.slo_policy import VersionComparison, decide_rollback

TARGET_MS, BUDGET = 1.5, 0.001


def latency(champion_ms: float, previous_ms: float | None, previous_n: int = 150) -> dict:
    return {
        "latency_p95": VersionComparison(
            "latency_p95", TARGET_MS, 2, champion_ms, 1, previous_ms, previous_n
        )
    }


def errors(champion: float, previous: float | None) -> dict:
    return {
        "availability": VersionComparison("availability", BUDGET, 2, champion, 1, previous, 150)
    }


def test_no_breach_no_decision() -> None:
    assert decide_rollback([], {}, min_requests=100, previous_version=1) is None


@pytest.mark.parametrize("breached", [["live_metric"], ["drift"], ["latency_p95", "live_metric"]])
def test_a_model_quality_breach_rolls_back_whatever_the_host_does(breached: list[str]) -> None:
    decision = decide_rollback(breached, latency(4.0, 4.0), min_requests=100, previous_version=1)
    assert decision is not None and decision.decision == "rollback"
    assert "model quality" in decision.reason


@pytest.mark.parametrize(
    ("previous_ms", "expected"),
    [(0.4, "rollback"), (1.2, "rollback"), (1.21, "alert-only"), (4.0, "alert-only")],
)
def test_latency_blames_the_release_only_if_the_previous_version_was_clearly_within(
    previous_ms: float, expected: str
) -> None:
    """Within by the 20 % margin: 1.2 ms under a 1.5 ms target counts, 1.21 ms does not."""
    decision = decide_rollback(
        ["latency_p95"], latency(4.0, previous_ms), min_requests=100, previous_version=1
    )
    assert decision is not None and decision.decision == expected


@pytest.mark.parametrize(
    ("champion", "previous", "expected"),
    [(0.03, 0.0, "rollback"), (0.03, 0.0009, "rollback"), (0.0015, 0.0009, "alert-only"),
     (0.03, 0.02, "alert-only")],
)  # fmt: skip
def test_availability_blames_the_release_at_twice_the_previous_error_share_within_budget(
    champion: float, previous: float, expected: str
) -> None:
    decision = decide_rollback(
        ["availability"], errors(champion, previous), min_requests=100, previous_version=1
    )
    assert decision is not None and decision.decision == expected


def test_a_serving_breach_without_evidence_against_the_release_only_alerts() -> None:
    unjudged = decide_rollback(
        ["latency_p95"], latency(4.0, None, 20), min_requests=100, previous_version=1
    )
    assert unjudged is not None and unjudged.decision == "alert-only"
    assert "served 20 requests" in unjudged.reason
    first = decide_rollback(["latency_p95"], {}, min_requests=100, previous_version=None)
    assert first is not None and first.decision == "alert-only"
    assert "no earlier champion" in first.reason
