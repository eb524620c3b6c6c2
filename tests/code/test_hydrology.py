"""Hydrology on tiny hand-made DEMs, and its invariants as properties."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from terraops.domain import hydrology as hy
from terraops.domain.landcover import LandCover


def valley(n: int = 9) -> np.ndarray:
    """A V-shaped valley draining west → east, channel along the middle row."""
    rows, cols = np.indices((n, n))
    return 10.0 + 1.0 * np.abs(rows - n // 2) + 0.1 * (n - 1 - cols)


def test_pit_is_filled_to_its_spill_level() -> None:
    dem = np.full((5, 5), 10.0)
    dem[2, 2] = 2.0  # a pit in a plateau
    filled = hy.fill_depressions(dem)
    assert filled[2, 2] == pytest.approx(10.0, abs=1e-3)
    assert filled[2, 2] > 10.0  # raised a hair above the rim: flow can leave
    np.testing.assert_allclose(filled[0, :], dem[0, :])  # edges untouched


def test_flow_goes_downhill_and_accumulates_on_the_channel() -> None:
    dem = valley()
    analysis = hy.analyse_terrain(dem, 10.0, drainage_threshold_km2=0.0005)
    down = analysis.downstream.reshape(dem.shape)
    filled = analysis.filled.ravel()
    for idx, target in enumerate(analysis.downstream):
        if target >= 0:
            assert filled[target] < filled[idx]
    # The channel row collects everything: its outlet (east edge) drains the whole grid.
    upstream_cells = analysis.upstream_km2 / (10.0 * 10.0 / 1e6)
    assert upstream_cells[4, -1] == pytest.approx(dem.size)
    assert np.all(np.diff(upstream_cells[4, :]) > 0)  # grows downstream
    assert down[4, 3] == 4 * 9 + 4  # flows east along the channel


def test_hand_is_zero_on_the_channel_and_grows_up_the_slopes() -> None:
    dem = valley()
    analysis = hy.analyse_terrain(dem, 10.0, drainage_threshold_km2=0.0005)
    assert np.all(analysis.hand[4, :] == 0.0)
    assert np.all(analysis.is_drainage[4, :])
    assert analysis.hand[0, 4] > analysis.hand[2, 4] > analysis.hand[3, 4] > 0


def test_scs_runoff_matches_tr55_worked_values() -> None:
    # CN 98: S = 5.18 mm, Ia = 1.04 mm; P = 50 mm → Q = 48.96² / 54.15 = 44.27 mm
    assert hy.scs_runoff_mm(50.0, 98.0) == pytest.approx(44.27, abs=0.05)
    # CN 61: S = 162.4 mm, Ia = 32.5 mm; P = 30 mm < Ia → no runoff
    assert hy.scs_runoff_mm(30.0, 61.0) == 0.0


def _flood_model(dem: np.ndarray) -> hy.FloodModel:
    landcover = np.full(dem.shape, int(LandCover.GRASS), dtype=np.uint8)
    landcover[dem.shape[0] // 2, :] = int(LandCover.WATER)
    return hy.build_flood_model(
        dem, landcover, 10.0, inflow=hy.RiverInflow(dem.shape[0] // 2, 0, 50.0, 75.0)
    )


def test_flooded_cells_have_low_hand_and_floods_grow_with_rain() -> None:
    dem = valley(15)
    model = _flood_model(dem)
    depth = model.depth(100.0)
    flooded = depth > 0.05
    assert flooded.any()
    assert model.hand[flooded].max() < model.hand[~flooded & (dem > 0)].max()
    assert model.depth(150.0).sum() > depth.sum() > model.depth(10.0).sum()


def test_catchment_curve_number_is_the_area_weighted_mean_of_its_sources() -> None:
    # Two cells × two sources (CN 98 sealed, CN 55 trees); the second drains no area.
    areas = np.array([[2.0, 1.0], [0.0, 0.0]])
    cn = hy.catchment_curve_number(areas, np.array([98.0, 55.0]))
    assert cn[0] == pytest.approx((2 * 98 + 55) / 3)
    assert np.isnan(cn[1])


def test_hillslopes_see_the_catchment_of_the_channel_they_drain_to() -> None:
    """V-shaped valley: sealed north slope, wooded south slope, grass channel, and a
    1 km² river (CN 70) entering at the west end. Every slope cell drains straight
    to the channel cell of its column, whose catchment is the river plus every
    column up to it — so its area and area-weighted CN are known by hand."""
    n, cell_km2 = 9, 10.0 * 10.0 / 1e6
    dem = valley(n)
    landcover = np.full(dem.shape, int(LandCover.GRASS), dtype=np.uint8)
    landcover[: n // 2] = int(LandCover.BUILDING)
    landcover[n // 2 + 1 :] = int(LandCover.TREE)
    inflow = hy.RiverInflow(row=n // 2, col=0, area_km2=1.0, curve_number=70.0)
    model = hy.build_flood_model(dem, landcover, 10.0, inflow=inflow)
    area = model.drainage_upstream_km2
    cn = model.drainage_curve_number
    column_cn_km2 = (4 * 98.0 + 4 * 55.0 + 61.0) * cell_km2  # one column: Σ CN × area
    for col in range(n):
        columns_above = col + 1
        expected_area = 1.0 + columns_above * n * cell_km2
        expected_cn = (1.0 * 70.0 + columns_above * column_cn_km2) / expected_area
        np.testing.assert_allclose(area[:, col], expected_area, rtol=1e-9)
        np.testing.assert_allclose(cn[:, col], expected_cn, rtol=1e-9)
    # The cell's own accumulation is tiny on the ridge; what its channel drains is not.
    assert model.upstream_km2[0, 4] == pytest.approx(cell_km2)
    # Upstream land cover weighs in: an all-sealed valley has a higher catchment CN.
    sealed = hy.build_flood_model(
        dem, np.full(dem.shape, int(LandCover.ROAD), np.uint8), 10.0, inflow=inflow
    )
    assert np.all(sealed.drainage_curve_number > cn)


def test_cells_draining_to_no_channel_see_no_catchment() -> None:
    # Without the river nothing reaches the channel threshold: no stage, so no area.
    model = hy.build_flood_model(valley(), np.full((9, 9), int(LandCover.GRASS), np.uint8), 10.0)
    assert np.all(model.drainage_upstream_km2 == 0.0)
    np.testing.assert_allclose(model.drainage_curve_number, 61.0)
    assert np.all(model.stage_grid(150.0) == 0.0)


@settings(max_examples=25, deadline=None)
@given(arrays(np.float64, (8, 8), elements=st.floats(0.0, 50.0)))
def test_fill_never_lowers_the_dem_and_leaves_no_pit(dem: np.ndarray) -> None:
    filled = hy.fill_depressions(dem)
    assert np.all(filled >= dem)
    down = hy.d8_downstream(filled, 1.0).reshape(dem.shape)
    interior = down[1:-1, 1:-1]
    assert np.all(interior >= 0)  # every interior cell has a downhill neighbour


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    storms=st.lists(st.floats(0.0, 300.0), min_size=2, max_size=5),
)
def test_flood_depth_is_monotone_in_rainfall(seed: int, storms: list[float]) -> None:
    rng = np.random.default_rng(seed)
    dem = valley(12) + rng.uniform(0, 1.5, (12, 12))
    model = _flood_model(dem)
    depths = [model.depth(p) for p in sorted(storms)]
    for lower, higher in itertools.pairwise(depths):
        assert np.all(higher >= lower)


def test_design_storms_are_increasing() -> None:
    assert list(hy.DESIGN_STORMS_MM) == sorted(set(hy.DESIGN_STORMS_MM))
    assert 50 in hy.DESIGN_STORMS_MM
