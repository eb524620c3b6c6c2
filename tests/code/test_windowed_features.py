"""The window forms of the non-local feature steps equal the whole-raster steps, bit for bit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from terraops.domain import features
from terraops.domain.hydrology import build_flood_model, catchment_model
from terraops.domain.hydrology_grid import HydroBlocks, hydro_blocks, upsample_bilinear
from terraops.domain.landcover import LandCover
from terraops.domain.windowed import centre_distances, focal_halo_cells, neighbourhood_window

masks = st.integers(1, 40).flatmap(
    lambda h: st.integers(1, 40).flatmap(
        lambda w: arrays(np.bool_, (h, w), elements=st.booleans() | st.just(False))
    )
)


@settings(max_examples=150, deadline=None)
@given(
    mask=masks,
    resolution=st.sampled_from([1.0, 2.0, 30.0, 700.0, 4000.0]),
    row_step=st.integers(1, 5),
    col_step=st.integers(1, 5),
    sparse=st.booleans(),
)
def test_centre_distances_equal_the_whole_distance_transform(
    mask: np.ndarray, resolution: float, row_step: int, col_step: int, sparse: bool
) -> None:
    if sparse:  # at most one pixel: distances beyond the cap, or no mask at all
        keep = np.zeros_like(mask)
        keep.flat[: int(mask.flat[0])] = True
        mask = keep & mask
    rows = np.arange(0, mask.shape[0], row_step)
    cols = np.arange(0, mask.shape[1], col_step)
    whole = features.distance_to(mask, resolution)[rows][:, cols]
    assert np.array_equal(centre_distances(mask, rows, cols, resolution), whole)


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    shape=st.tuples(st.integers(1, 60), st.integers(1, 12)),
    cell_size=st.sampled_from([10.0, 20.0, 30.0, 60.0, 200.0]),
    start=st.integers(0, 59),
    length=st.integers(1, 60),
    valid_share=st.sampled_from([0.0, 0.3, 0.9, 1.0]),
)
def test_neighbourhood_windows_equal_the_whole_grid(
    seed: int,
    shape: tuple[int, int],
    cell_size: float,
    start: int,
    length: int,
    valid_share: float,
) -> None:
    rng = np.random.default_rng(seed)
    rows = shape[0]
    a = min(start, rows - 1)
    b = min(rows, a + length)
    # Fractions of 1..9 pixels, as cell means of land-cover masks are.
    sources = {
        name: rng.integers(0, 10, shape) / rng.choice([1, 4, 9])
        for name in ("imperviousness", "tree_cover")
    }
    keep = rng.random(shape) < valid_share
    grid = features.CellGrid(factor=1, rows=shape[0], cols=shape[1], resolution=cell_size)
    whole = features.neighbourhood_cell_features(grid, sources, keep)
    halo = focal_halo_cells(cell_size)
    h0, h1 = max(0, a - halo), min(rows, b + halo)
    bounds = None
    if keep.any():
        bounds = {n: (float(v[keep].min()), float(v[keep].max())) for n, v in sources.items()}
    window = neighbourhood_window(
        grid,
        {n: v[h0:h1] for n, v in sources.items()},
        keep[h0:h1],
        slice(a - h0, b - h0),
        bounds,
    )
    for name, values in whole.items():
        assert np.array_equal(window[name], values[a:b], equal_nan=True), name


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    factor=st.integers(1, 7),
    shape=st.tuples(st.integers(4, 50), st.integers(4, 50)),
    band=st.integers(1, 5),
    row0=st.integers(0, 49),
)
def test_hydrology_by_bands_equals_the_whole_flood_model(
    seed: int, factor: int, shape: tuple[int, int], band: int, row0: int
) -> None:
    rng = np.random.default_rng(seed)
    dem = rng.normal(5.0, 3.0, shape).cumsum(axis=0) / 4.0
    dem[rng.random(shape) < 0.03] = np.nan
    classes = [int(c) for c in LandCover]
    landcover = rng.choice(classes, shape).astype(np.uint8)
    whole = build_flood_model(dem, landcover, 10.0)
    f = whole.factor
    step = f * band
    blocks = HydroBlocks.stack(
        [
            hydro_blocks(dem[r : r + step], landcover[r : r + step], f)
            for r in range(0, shape[0], step)
        ]
    )
    model = catchment_model(blocks, f, shape, 10.0)
    r0 = min(row0, shape[0] - 1)
    r1 = min(shape[0], r0 + factor * 3)
    part = model.window(r0, dem[r0:r1], landcover[r0:r1])
    for name in ("hand", "drainage", "upstream_km2", "drainage_upstream_km2", "fill_depth"):
        assert np.array_equal(getattr(part, name), getattr(whole, name)[r0:r1], equal_nan=True)
    for storm in (10.0, 75.0):
        assert np.array_equal(part.depth(storm), whole.depth(storm)[r0:r1])
    assert np.array_equal(
        upsample_bilinear(model.drain_elevation, f, (r1 - r0, shape[1]), r0),
        whole.drain_surface[r0:r1],
        equal_nan=True,
    )
