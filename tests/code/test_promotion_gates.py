"""Promotion gates and rollback targets: pure decisions, no MLflow."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from terraops.domain.promotion import (
    CHALLENGER,
    CHAMPION,
    REQUIRED_ARTIFACTS,
    CandidateFacts,
    GatePolicy,
    HistoryEntry,
    champion_lineage,
    decide_promotion,
    ever_champion,
    last_known_version,
    resolve_pending,
    rollback_target,
)

POLICY = GatePolicy(primary_metric="mae_spatial_cv", higher_is_better=False, tolerance=0.05)


def facts(version: int = 2, mae: float | None = 1.0, **kw: object) -> CandidateFacts:
    metrics = {} if mae is None else {"mae_spatial_cv": mae}
    base: dict[str, object] = {
        "version": version,
        "tags": {"terraops.data_quality": "passed"},
        "metrics": metrics,
        "artifacts": frozenset(REQUIRED_ARTIFACTS),
    }
    base.update(kw)
    return CandidateFacts(**base)  # type: ignore[arg-type]


def test_good_candidate_is_allowed_without_a_champion() -> None:
    decision = decide_promotion(facts(), None, POLICY)
    assert decision.allowed and decision.blocking == [] and decision.overridden == []


def test_failed_data_quality_blocks_and_force_overrides_it() -> None:
    bad = facts(tags={"terraops.data_quality": "failed"})
    refused = decide_promotion(bad, None, POLICY)
    assert not refused.allowed
    assert "data quality" in refused.blocking[0] and "'failed'" in refused.blocking[0]
    forced = decide_promotion(bad, None, POLICY, force=True)
    assert forced.allowed and forced.blocking == []
    assert forced.overridden == refused.blocking


def test_every_reason_is_listed() -> None:
    bad = facts(mae=None, tags={}, artifacts=frozenset({"model"}))
    reasons = decide_promotion(bad, None, POLICY).blocking
    assert len(reasons) == 3
    assert "unknown" in reasons[0]
    assert "mae_spatial_cv" in reasons[1]
    assert "feature_schema.json" in reasons[2] and "data_fingerprint.json" in reasons[2]


def test_required_metrics_beyond_the_primary_are_checked() -> None:
    policy = GatePolicy("mae_spatial_cv", False, 0.05, required_metrics=("rmse_spatial_cv",))
    reasons = decide_promotion(facts(), None, policy).blocking
    assert reasons == ["required metric 'rmse_spatial_cv' is missing or not finite"]


def test_unloadable_model_blocks_even_with_force() -> None:
    broken = facts(load_error="LightGBMError: cannot parse model")
    decision = decide_promotion(broken, None, POLICY, force=True)
    assert not decision.allowed
    assert decision.blocking == ["model v2 cannot be loaded: LightGBMError: cannot parse model"]


@pytest.mark.parametrize(
    ("candidate", "champion", "higher_is_better", "allowed"),
    [
        (1.04, 1.0, False, True),  # 4 % worse: within 5 %
        (1.06, 1.0, False, False),  # 6 % worse
        (0.5, 1.0, False, True),  # better
        (0.96, 1.0, True, True),  # R²-like: 4 % lower is within tolerance
        (0.94, 1.0, True, False),
        (1.2, 1.0, True, True),
    ],
)
def test_metric_gate_direction_and_tolerance(
    candidate: float, champion: float, higher_is_better: bool, allowed: bool
) -> None:
    policy = GatePolicy("mae_spatial_cv", higher_is_better, 0.05)
    decision = decide_promotion(facts(2, candidate), facts(1, champion), policy)
    assert decision.allowed is allowed
    if not allowed:
        assert "worse than champion v1" in decision.blocking[0]


def entry(
    i: int,
    to: int | None,
    *,
    action: str = "promote",
    alias: str = CHAMPION,
    status: str = "committed",
    frm: int | None = None,
) -> HistoryEntry:
    return HistoryEntry(
        id=i,
        service="uhi",
        alias=alias,
        action=action,  # type: ignore[arg-type]
        from_version=frm,
        to_version=to,
        actor="t",
        reason=None,
        forced=False,
        status=status,  # type: ignore[arg-type]
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_rollback_walks_back_and_does_not_bounce() -> None:
    history = [entry(1, 1), entry(2, 2), entry(3, 3)]
    assert rollback_target(history, 3) == 2
    history.append(entry(4, 2, action="rollback"))
    assert rollback_target(history, 2) == 1  # not back to 3, which was rolled back from
    history.append(entry(5, 1, action="rollback"))
    assert rollback_target(history, 1) is None


def test_lineage_ignores_other_aliases_and_unresolved_rows() -> None:
    history = [
        entry(1, 1),
        entry(2, 5, alias=CHALLENGER),
        entry(3, 2, status="aborted"),
        entry(4, 3, status="pending"),
        entry(5, 4, action="external"),
    ]
    assert champion_lineage(history) == [1, 4]
    assert rollback_target(history, 4) == 1
    assert ever_champion(history, 4) and not ever_champion(history, 2)


def test_explicit_rollback_to_an_older_version_is_pushed() -> None:
    history = [entry(1, 1), entry(2, 2), entry(3, 3), entry(4, 1, action="rollback")]
    assert champion_lineage(history) == [1]
    history += [entry(5, 4), entry(6, 3, action="rollback")]  # 3 is not on the stack
    assert champion_lineage(history) == [1, 4, 3]


@given(st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=30))
def test_rollback_target_is_the_previous_distinct_champion(promoted: list[int]) -> None:
    history = [entry(i, v) for i, v in enumerate(promoted)]
    distinct = [v for i, v in enumerate(promoted) if i == 0 or promoted[i - 1] != v]
    expected = distinct[-2] if len(distinct) > 1 else None
    assert rollback_target(history, promoted[-1]) == expected


def test_pending_rows_resolve_by_the_actual_alias() -> None:
    intent = entry(1, 7, status="pending", frm=6)
    assert resolve_pending(intent, 7) == "committed"
    assert resolve_pending(intent, 6) == "aborted"
    assert resolve_pending(intent, None) == "aborted"


def test_last_known_version_uses_committed_rows_only() -> None:
    history = [entry(1, 1), entry(2, 2, status="aborted"), entry(3, 9, alias=CHALLENGER)]
    assert last_known_version(history, CHAMPION) == 1
    assert last_known_version(history, CHALLENGER) == 9
    assert last_known_version([], CHAMPION) is None
