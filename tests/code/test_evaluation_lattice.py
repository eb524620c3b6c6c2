"""predict-raster scores a scene against its own target on a bounded lattice of cells."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from terraops.pipelines.maps.raster_predict import EVALUATION_CELLS, evaluation_lattice


@given(st.integers(1, 12_000), st.integers(1, 12_000))
def test_every_cell_is_scored_up_to_the_bound_and_about_the_bound_beyond(
    rows: int, cols: int
) -> None:
    step = evaluation_lattice((rows, cols))
    scored = math.ceil(rows / step) * math.ceil(cols / step)
    if rows * cols <= EVALUATION_CELLS:
        assert step == 1
    else:
        assert step > 1
        assert scored <= EVALUATION_CELLS + (rows + cols) // step + 1
        # one step finer would hold more than the bound: the lattice is as dense as allowed
        assert rows * cols > EVALUATION_CELLS * (step - 1) ** 2


def test_a_whole_landsat_scene_scores_about_a_million_cells() -> None:
    step = evaluation_lattice((7_800, 7_800))
    assert step == 8 and math.ceil(7_800 / step) ** 2 == 950_625
