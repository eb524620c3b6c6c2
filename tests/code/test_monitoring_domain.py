"""Pure monitoring decisions: drift rules, promotion target gate, gate history, SLO parsing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from terraops.domain import drift
from terraops.domain.promotion import (
    REQUIRED_ARTIFACTS,
    CandidateFacts,
    GatePolicy,
    decide_promotion,
)

POLICY = drift.DriftPolicy(
    per_feature={"t": drift.FeatureRule("abs_wasserstein", 3.0, critical=True)}
)


def tables(shift_a: float = 0.0, t_current: float = 32.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    n = 500
    reference = pd.DataFrame(
        {"a": rng.normal(0, 1, n), "b": rng.normal(5, 2, n), "t": np.repeat([31.0, 33.0], n // 2)}
    )
    current = pd.DataFrame(
        {"a": rng.normal(shift_a, 1, n), "b": rng.normal(5, 2, n), "t": np.full(n, t_current)}
    )
    return reference, current


def test_share_rule_and_critical_feature() -> None:
    same = drift.compare(*tables(), ["a", "b", "t"], POLICY)
    assert not same.dataset_drift and same.drifted_features == []
    shifted = drift.compare(*tables(shift_a=1.0), ["a", "b", "t"], POLICY)
    assert shifted.drifted_features == ["a"] and not shifted.dataset_drift  # 1 of 3 < 0.5
    hot = drift.compare(*tables(t_current=41.0), ["a", "b", "t"], POLICY)
    assert hot.drifted_features == ["t"] and hot.dataset_drift
    assert "critical feature t drifted" in hot.reasons[0]


def test_too_few_rows_are_not_tested() -> None:
    reference, current = tables()
    summary = drift.compare(reference, current.head(5), ["a"], POLICY)
    assert summary.features[0].score is None and summary.n_tested == 0


def test_tile_scores_mark_only_cells_outside_the_training_range() -> None:
    reference, current = tables()
    current = current.head(400).copy()
    current["row"] = np.repeat(np.arange(20), 20)
    current["col"] = np.tile(np.arange(20), 20)
    current.loc[current["row"] < 10, "a"] = 50.0  # the top half is unlike training
    scores, flags = drift.tile_drift_scores(
        reference, current, ["a", "b", "t"], POLICY, shape=(20, 20), tile_cells=10
    )
    assert scores.shape == (2, 2)
    assert scores[0].tolist() == [1.0, 1.0] and scores[1].max() < 0.1
    assert flags.tolist() == [[1, 1], [0, 0]]


def facts(mae: float) -> CandidateFacts:
    return CandidateFacts(
        version=2,
        tags={"terraops.data_quality": "passed"},
        metrics={"mae_spatial_cv": mae},
        artifacts=frozenset(REQUIRED_ARTIFACTS),
    )


TARGETED = GatePolicy(
    "mae_spatial_cv", False, 0.05, target_metric="mae_spatial_cv", metric_target=1.0
)


def test_the_service_target_binds_the_first_champion_too() -> None:
    refused = decide_promotion(facts(1.3), None, TARGETED)
    assert not refused.allowed
    assert refused.blocking == [
        "mae_spatial_cv 1.3 misses the service target <= 1 (SLO.metric_target)"
    ]
    assert decide_promotion(facts(0.9), None, TARGETED).allowed
    forced = decide_promotion(facts(1.3), None, TARGETED, force=True)
    assert forced.allowed and forced.overridden == refused.blocking
    failed = [g.gate for g in forced.gates if not g.passed]
    assert failed == ["metric_target"]


def test_shared_evaluation_set_beats_own_cv_numbers() -> None:
    policy = GatePolicy("mae_spatial_cv", False, 0.05, evaluation_metric="mae")
    champion = CandidateFacts(1, {}, {"mae_spatial_cv": 0.9}, frozenset(), None, {"mae": 1.0}, "s1")
    good_cv_bad_set = CandidateFacts(
        2, {"terraops.data_quality": "passed"}, {"mae_spatial_cv": 0.5},
        frozenset(REQUIRED_ARTIFACTS), None, {"mae": 2.0}, "s1",
    )  # fmt: skip
    decision = decide_promotion(good_cv_bad_set, champion, policy)
    assert not decision.allowed
    assert decision.blocking[0].startswith("mae 2 is worse than champion v1's 1")
    assert decision.blocking[0].endswith("on evaluation set s1")


def test_history_keeps_gates_and_migrates_an_old_journal(tmp_path: Path) -> None:
    from terraops.adapters.alias_history import AliasHistory

    path = tmp_path / "lifecycle.db"
    with sqlite3.connect(path) as conn:  # a journal written before gates existed
        conn.executescript(
            """CREATE TABLE alias_history (id INTEGER PRIMARY KEY AUTOINCREMENT, service TEXT
            NOT NULL, alias TEXT NOT NULL, action TEXT NOT NULL, from_version INTEGER,
            to_version INTEGER, actor TEXT NOT NULL, reason TEXT, forced INTEGER NOT NULL
            DEFAULT 0, status TEXT NOT NULL, created_at TEXT NOT NULL, resolved_at TEXT);
            INSERT INTO alias_history (service, alias, action, to_version, actor, status,
            created_at) VALUES ('uhi', 'champion', 'promote', 1, 'old', 'committed',
            '2025-01-01T00:00:00+00:00');"""
        )
    journal = AliasHistory(path)
    decision = decide_promotion(facts(0.9), None, TARGETED)
    entry = journal.begin(
        service="uhi", alias="champion", action="promote", from_version=1, to_version=2,
        actor="t", reason="r", forced=False, gates=tuple(decision.gates),
    )  # fmt: skip
    old, new = journal.entries("uhi")
    assert old.gates == () and old.as_dict()["gates"] == []
    assert new.gates == entry.gates and {g.gate for g in new.gates} >= {"metric_target"}
    assert all(g["passed"] for g in new.as_dict()["gates"])  # type: ignore[union-attr]


def test_slo_window_parsing() -> None:
    from terraops.errors import InvalidInputError
    from terraops.pipelines.monitoring.slo import parse_window

    assert parse_window("90s").total_seconds() == 90
    assert parse_window("1.5h").total_seconds() == 5400
    with pytest.raises(InvalidInputError):
        parse_window("soon")


def test_beyond_range_is_zero_inside_the_training_days_and_grows_outside() -> None:
    days = np.repeat([24.0, 31.0, 37.0], 100)
    assert drift.beyond_range(days, np.full(50, 34.0)) == 0.0  # a new day, inside the range
    assert drift.beyond_range(days, np.full(50, 42.0)) == pytest.approx(5.0)  # a heat wave
    assert drift.beyond_range(days, np.full(50, 20.0)) == pytest.approx(4.0)
    rule = drift.FeatureRule("beyond_range", 3.0, critical=True)
    assert not drift.feature_drift("t", days, np.full(50, 34.0), rule, 10).drifted
    assert drift.feature_drift("t", days, np.full(50, 42.0), rule, 10).drifted
