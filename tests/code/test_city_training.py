"""Training on a city's own observations: block sizing, held-out blocks, feature checks, rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree

from terraops.domain import spatial_cv
from terraops.errors import InvalidInputError
from terraops.pipelines.lifecycle.card_real_city import city_rows_section
from terraops.pipelines.training import city
from terraops.services import get_service

UHI = get_service("uhi")


def grid_table(width: int, height: int, cell: float = 30.0, scene: str = "LC08_A") -> pd.DataFrame:
    """Cell centres of a ``width`` × ``height`` scene, one row per cell."""
    xs, ys = np.meshgrid(np.arange(width) * cell, np.arange(height) * cell)
    return pd.DataFrame({"scene": scene, "x": xs.ravel() + 15.0, "y": ys.ravel() + 15.0})


@pytest.mark.parametrize(("width", "height"), [(40, 30), (100, 20), (433, 267)])
def test_blocks_are_sized_so_each_scene_gives_at_least_ten(width: int, height: int) -> None:
    table = grid_table(width, height)
    side = city.scene_block_size(table, ["LC08_A"], 500.0)
    blocks = spatial_cv.block_ids(table["x"].to_numpy(), table["y"].to_numpy(), side)
    assert side <= 500.0
    assert len(np.unique(blocks)) >= city.MIN_BLOCKS_PER_SCENE


def test_a_large_scene_keeps_the_requested_block_side() -> None:
    assert city.scene_block_size(grid_table(433, 267), ["LC08_A"], 500.0) == 500.0


@settings(max_examples=25, deadline=None)
@given(
    width=st.integers(12, 40),
    height=st.integers(12, 40),
    block=st.sampled_from([90.0, 150.0, 240.0]),
    buffer=st.sampled_from([0.0, 30.0, 100.0]),
    seed=st.integers(0, 50),
)
def test_held_out_blocks_are_whole_and_the_pool_keeps_its_distance(
    width: int, height: int, block: float, buffer: float, seed: int
) -> None:
    table = pd.concat([grid_table(width, height), grid_table(15, 15, scene="synthetic")])
    table = table.reset_index(drop=True)
    training = {"cv_block_size_m": block, "cv_buffer_m": buffer, "seed": seed}
    held, pool = city.holdout_mask(table, ["LC08_A"], training)
    x, y, scenes = (table[c].to_numpy() for c in ("x", "y", "scene"))
    blocks = spatial_cv.block_ids(x, y, block, scenes)
    assert not (held & pool).any()
    assert not held[scenes == "synthetic"].any() and pool[scenes == "synthetic"].all()
    for b in np.unique(blocks[held]):  # whole blocks only
        assert held[blocks == b].all()
    n_blocks = len(np.unique(blocks[scenes == "LC08_A"]))
    assert len(np.unique(blocks[held])) == max(1, round(city.HOLDOUT_FRACTION * n_blocks))
    tree = cKDTree(np.column_stack([x[held], y[held]]))
    distance, _ = tree.query(np.column_stack([x[pool], y[pool]]))
    assert (distance[scenes[pool] == "LC08_A"] > buffer).all()


def test_a_scene_of_one_block_is_refused_with_a_hint() -> None:
    table = grid_table(5, 5)
    with pytest.raises(InvalidInputError, match="held-out blocks need at least 2") as err:
        city.holdout_mask(
            table, ["LC08_A"], {"cv_block_size_m": 500.0, "cv_buffer_m": 0.0, "seed": 0}
        )
    assert "cv_block_size_m" in (err.value.hint or "")


def test_city_training_respects_explicit_parameters() -> None:
    table = grid_table(40, 30)
    training = {"cv_block_size_m": 500.0, "cv_buffer_m": 0.0, "seed": 0}
    sized = city.city_training(training, {}, table, ["LC08_A"])
    assert sized["cv_block_size_m"] < 500.0 and sized["cv_buffer_m"] == city.CITY_BUFFER_M
    kept = city.city_training(training, {"cv_block_size_m": "500", "cv_buffer_m": "0"}, table, [])
    assert (kept["cv_block_size_m"], kept["cv_buffer_m"]) == (500.0, 0.0)


def test_mismatched_features_are_refused_clearly() -> None:
    names = UHI.feature_names
    city.check_features(UHI, 3, list(names))  # the same list passes
    with pytest.raises(InvalidInputError, match="v3 was trained on other features") as err:
        city.check_features(UHI, 3, [*names[:-1], "old_feature"])
    assert f"it lacks {names[-1]}" in str(err.value)
    assert "it has old_feature the service no longer computes" in str(err.value)
    assert "leave out --init-from" in (err.value.hint or "")
    with pytest.raises(InvalidInputError, match="same names in another order"):
        city.check_features(UHI, 3, list(reversed(names)))


def test_comparison_rows_score_all_cells_and_land_cells() -> None:
    rng = np.random.default_rng(0)
    held = pd.DataFrame({"lst": rng.normal(30, 3, 200), "water_fraction": 0.0})
    held.loc[:49, "water_fraction"] = 1.0
    held.loc[:49, "lst"] = 15.0  # a cold sea
    perfect = held["lst"].to_numpy() + 2.0
    rows = city.compare(UHI, held, {"adapted": perfect, "noise": rng.normal(30, 3, 200)})
    adapted = rows[0]
    assert (adapted["n"], adapted["land_n"]) == (200, 150)
    assert adapted["mae"] == pytest.approx(2.0) and adapted["mae_after_offset"] == pytest.approx(0)
    assert adapted["spearman"] == pytest.approx(1.0)
    metrics = city.comparison_metrics(rows)
    assert metrics["holdout_mae_adapted"] == pytest.approx(2.0)
    assert "holdout_land_spearman_noise" in metrics


def test_training_kind_names_what_the_run_was() -> None:
    class S:
        def __init__(self, generator_version: str | None) -> None:
            self.generator_version = generator_version

    real, synthetic = S(None), S("2.0.0")
    assert city.training_kind([real], adapted=True) == "adapted"
    assert city.training_kind([real, real], adapted=False) == "from-scratch"
    assert city.training_kind([synthetic], adapted=False) == "synthetic"
    assert city.training_kind([real, synthetic], adapted=False) == "mixed"


def test_the_card_shows_four_rows_on_land_and_on_all_cells() -> None:
    def row(n: int, rho: float) -> dict[str, object]:
        return {"n": n, "mae_after_offset": 1.25, "spearman": rho}

    rows = {
        "base_version": 4,
        "adapted_note": None,
        "block_size_m": 500.0,
        "buffer_m": 100.0,
        "folds": 5,
        "land": {k: row(300, 0.6) for k in ("synthetic", "adapted", "from_scratch", "ndvi_line")},
        "all": {k: row(900, 0.8) for k in ("synthetic", "adapted", "from_scratch", "ndvi_line")},
    }
    text = "\n".join(city_rows_section({"unit": "°C", "city_rows": rows}))
    assert (
        "| registered synthetic model v4 (as is) | 300 | 1.250 | 0.600 | 900 | 1.250 | 0.800 |"
        in text
    )
    for label in ("v4 adapted to this city", "trained from scratch", "NDVI line (spatial CV)"):
        assert label in text
    assert "--init-from 4" in text
    assert city_rows_section({"unit": "°C"}) == []


def test_two_dates_of_one_place_hold_out_the_same_blocks() -> None:
    """A block held out on one date is held out on the other; no cell of either date
    within the buffer of a held-out cell is fitted to (the dates' pixels coincide)."""
    table = pd.concat([grid_table(30, 24, scene="LC08_A"), grid_table(30, 24, scene="LC08_B")])
    table = table.reset_index(drop=True)
    training = {"cv_block_size_m": 150.0, "cv_buffer_m": 60.0, "seed": 3}
    x, y, scenes = (table[c].to_numpy() for c in ("x", "y", "scene"))

    def cells(mask: np.ndarray, date: str) -> set[tuple[float, float]]:
        on = mask & (scenes == date)
        return set(zip(x[on].tolist(), y[on].tolist(), strict=True))

    places = {"LC08_A": "EPSG:32630", "LC08_B": "EPSG:32630"}
    held, pool = city.holdout_mask(table, ["LC08_A", "LC08_B"], training, places)
    assert cells(held, "LC08_A") and cells(held, "LC08_A") == cells(held, "LC08_B")
    tree = cKDTree(np.column_stack([x[held], y[held]]))
    distance, _ = tree.query(np.column_stack([x[pool], y[pool]]))
    assert (distance > 60.0).all() and not (held & pool).any()
    # each date its own place (no mapping): independent draws, a place trained on
    apart, _ = city.holdout_mask(table, ["LC08_A", "LC08_B"], training)
    assert cells(apart, "LC08_A") != cells(apart, "LC08_B")
