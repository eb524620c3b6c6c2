"""The what-if summary maths: inside cells, spillover rings, the member interval, drivers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from terraops.domain import features
from terraops.pipelines.whatif.summary import (
    EffectCalibration,
    EffectCase,
    Regions,
    conformal_quantile,
    cross_fitted_coverage,
    delta_stats,
    driver_deltas,
    effect_group,
    member_interval,
    regions,
)

GRID = features.CellGrid(factor=5, rows=40, cols=40, resolution=4.0)  # 20 m cells, 800 m


def block_mask(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """A pixel mask covering cells [r0, r1) × [c0, c1)."""
    mask = np.zeros((200, 200), bool)
    mask[r0 * 5 : r1 * 5, c0 * 5 : c1 * 5] = True
    return mask


def test_inside_is_the_covered_cells_and_rings_are_by_distance_outside() -> None:
    region = regions(block_mask(18, 22, 18, 22), GRID)
    assert region.inside.sum() == 16
    assert not (region.inside & (region.ring_100m | region.ring_250m)).any()
    assert not (region.ring_100m & region.ring_250m).any()
    # Distances run from a cell's centre pixel to the nearest polygon pixel (4 m pixels):
    # the next cells east lie 12, 92, 112, 232 and 252 m away.
    assert region.ring_100m[20, 22] and region.ring_100m[20, 26]
    assert region.ring_250m[20, 27] and region.ring_250m[20, 33]
    assert not region.ring_250m[20, 34]
    assert not region.ring_250m[20, 35] and not region.ring_100m[20, 35]


def test_a_polygon_smaller_than_half_a_cell_keeps_the_cells_it_touches() -> None:
    mask = np.zeros((200, 200), bool)
    mask[101:103, 101:103] = True
    assert regions(mask, GRID).inside.sum() == 1


def test_an_empty_mask_has_no_regions() -> None:
    region = regions(np.zeros((200, 200), bool), GRID)
    assert not region.inside.any() and not region.near.any()


def test_stats_ignore_no_data_and_report_none_for_empty_rings() -> None:
    delta = np.zeros((2, 3))
    delta[0, 0], delta[0, 1], delta[0, 2] = -2.0, -1.0, np.nan
    inside = np.array([[True, True, True], [False, False, False]])
    ring = np.array([[False, False, False], [True, False, False]])
    stats = delta_stats(delta, Regions(inside, ring, np.zeros_like(ring)))
    assert stats["mean_delta"] == -1.5 and stats["min_delta"] == -2.0
    assert stats["max_delta"] == -1.0
    assert stats["ring_100m_mean_delta"] == 0.0 and stats["ring_250m_mean_delta"] is None


def test_member_interval_counts_unmoved_cells_as_zero() -> None:
    # 2 members, 2 moved cells of 4 inside: member means −0.5 and −1.0.
    deltas = np.array([[-1.0, -1.0], [-2.0, -2.0]])
    lo, hi = member_interval(deltas, 4, centre=-0.75, level=1.0) or (0, 0)
    assert (lo, hi) == pytest.approx((-1.0, -0.5))


def test_member_interval_is_none_without_members_or_cells() -> None:
    assert member_interval(np.zeros((0, 3)), 3, centre=0.0) is None
    assert member_interval(np.zeros((2, 0)), 0, centre=0.0) is None


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.floats(-5, 5), min_size=3, max_size=3), min_size=1, max_size=8),
    st.floats(-3, 3),
    st.floats(0.5, 0.99),
)
def test_member_interval_is_ordered_and_holds_the_centre(
    rows: list[list[float]], centre: float, level: float
) -> None:
    interval = member_interval(np.array(rows), 5, centre=centre, level=level)
    assert interval is not None
    lo, hi = interval
    assert lo <= centre + 1e-4 and centre - 1e-4 <= hi


def test_driver_deltas_average_over_every_inside_cell_largest_first() -> None:
    before = np.array([[1.0, 0.0], [1.0, 0.0]])
    after = np.array([[0.0, 0.5], [0.0, 0.5]])
    rows = driver_deltas(("vegetation", "built"), before, after, n_cells=4)
    assert rows == [{"driver": "vegetation", "delta": -0.5}, {"driver": "built", "delta": 0.25}]


def test_conformal_quantile_is_the_finite_sample_rank_and_claims_nothing_with_too_few() -> None:
    scores = [0.1 * i for i in range(1, 10)]  # 9 scores: ⌈10 · 0.9⌉ = 9th smallest
    assert conformal_quantile(scores, 0.9) == pytest.approx(0.9)
    assert conformal_quantile(scores[:8], 0.9) == float("inf")


def test_calibrated_interval_is_relative_for_big_effects_and_absolute_for_small() -> None:
    calibration = EffectCalibration(0.9, 0.3, {"ground": 0.5, "roof": float("inf")}, {"ground": 9})
    assert calibration.interval("park", -4.0, (-4.2, -3.9)) == pytest.approx((-6.2, -1.9))
    assert calibration.interval("depave", -0.1, (-0.1, -0.1)) == pytest.approx((-0.25, 0.05))
    assert calibration.interval("cool_roof", -1.0, (-1.1, -0.9)) is None  # too few roof cases
    assert effect_group("green_roof") == "roof" and effect_group("develop") == "ground"


def test_calibration_survives_its_json_and_rejects_anything_else() -> None:
    cases = [EffectCase("park", -2.0 - 0.1 * i, -2.0, (-2.1, -1.9)) for i in range(12)]
    fitted = EffectCalibration.fit(cases)
    assert EffectCalibration.from_json(fitted.to_json()) == fitted
    assert fitted.n_cases == 12
    assert EffectCalibration.from_json(None) is None
    assert EffectCalibration.from_json({"level": 0.9}) is None


def test_cross_fitted_coverage_is_near_the_level_on_exchangeable_cities() -> None:
    """Effects with a relative error shared by nobody: calibrated on the other cities,
    the held-out city's truth falls in the interval about 90 % of the time."""
    rng = np.random.default_rng(7)
    cases, cities = [], []
    for city in range(20):
        for _ in range(12):
            centre = float(rng.uniform(-4, 4))
            truth = centre * (1 + 0.3 * rng.standard_normal())
            cases.append(EffectCase("tree_planting", truth, centre, (centre - 0.05, centre + 0.05)))
            cities.append(f"city{city}")
    intervals, (hits, n) = cross_fitted_coverage(cases, cities, 0.9)
    assert n == 240 and all(iv is not None for iv in intervals)
    assert 0.85 <= hits / n <= 0.95


@settings(max_examples=60, deadline=None)
@given(
    st.floats(0.0, 5.0),
    st.floats(-6.0, 6.0),
    st.floats(0.0, 1.0),
    st.sampled_from(["park", "cool_roof"]),
)
def test_calibrated_interval_only_widens_the_member_spread(
    quantile: float, centre: float, half: float, kind: str
) -> None:
    calibration = EffectCalibration(0.9, 0.3, {"roof": quantile, "ground": quantile}, {})
    interval = calibration.interval(kind, centre, (centre - half, centre + half))
    assert interval is not None
    assert interval[0] <= centre - half + 1e-4 and centre + half - 1e-4 <= interval[1]
