"""Real-scene scores: offset-free error, Spearman, the NDVI line, the verdict, the strata."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from terraops.domain import real_eval
from terraops.errors import InvalidInputError

seeds = st.integers(0, 10_000)
shifts = st.floats(-50, 50, allow_nan=False)


def city(seed: int, n: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ndvi, observed lst, a noisy prediction) of a made-up scene."""
    rng = np.random.default_rng(seed)
    ndvi = rng.uniform(-0.2, 0.9, n)
    lst = 38.0 - 7.0 * ndvi + rng.normal(0, 1.5, n)
    return ndvi, lst, lst + rng.normal(0, 1.0, n)


def test_a_perfect_predictor_with_an_offset_ranks_perfectly_and_has_no_error_after_it() -> None:
    _, lst, _ = city(1)
    scores = real_eval.offset_scores(lst, lst + 4.5)
    assert scores.n == lst.size
    assert scores.offset == pytest.approx(4.5)
    assert scores.mae == pytest.approx(4.5)
    assert scores.mae_after_offset == pytest.approx(0.0, abs=1e-9)
    assert scores.rmse_after_offset == pytest.approx(0.0, abs=1e-9)
    assert scores.spearman == pytest.approx(1.0)


def test_a_monotone_but_curved_predictor_still_ranks_perfectly() -> None:
    _, lst, _ = city(2)
    scores = real_eval.offset_scores(lst, np.exp(lst / 10.0))
    assert scores.spearman == pytest.approx(1.0)
    assert scores.mae_after_offset > 0.1  # the scale is wrong, and MAE says so


def test_a_reversed_predictor_ranks_at_minus_one() -> None:
    _, lst, _ = city(3)
    assert real_eval.offset_scores(lst, -lst).spearman == pytest.approx(-1.0)


def test_rmse_after_offset_is_the_residual_standard_deviation() -> None:
    _, lst, predicted = city(4)
    scores = real_eval.offset_scores(lst, predicted)
    assert scores.rmse_after_offset == pytest.approx(np.std(predicted - lst))
    assert scores.offset == pytest.approx(predicted.mean() - lst.mean())
    assert scores.spearman == pytest.approx(stats.spearmanr(predicted, lst).statistic)


@settings(max_examples=50, deadline=None)
@given(seeds, st.integers(3, 300), shifts)
def test_offset_removed_scores_do_not_change_when_a_constant_is_added(
    seed: int, n: int, shift: float
) -> None:
    _, lst, predicted = city(seed, n)
    base = real_eval.offset_scores(lst, predicted)
    moved = real_eval.offset_scores(lst, predicted + shift)
    assert moved.mae_after_offset == pytest.approx(base.mae_after_offset, abs=1e-9)
    assert moved.rmse_after_offset == pytest.approx(base.rmse_after_offset, abs=1e-9)
    assert moved.offset == pytest.approx(base.offset + shift, abs=1e-9)
    assert moved.spearman == pytest.approx(base.spearman, nan_ok=True)
    warmer_day = real_eval.offset_scores(lst + shift, predicted)
    assert warmer_day.mae_after_offset == pytest.approx(base.mae_after_offset, abs=1e-9)


def test_the_ndvi_line_on_exactly_linear_data_has_no_error() -> None:
    ndvi = np.linspace(-0.1, 0.85, 50)
    lst = 36.0 - 8.0 * ndvi
    line = real_eval.fit_ndvi_line(ndvi, lst)
    assert line.mae == pytest.approx(0.0, abs=1e-9)
    assert line.rmse == pytest.approx(0.0, abs=1e-9)
    assert line.intercept == pytest.approx(36.0)
    assert line.slope == pytest.approx(-8.0)
    assert line.slope_k_per_0_1_ndvi == pytest.approx(-0.8)
    assert line.spearman == pytest.approx(1.0)
    assert line.spearman_ndvi_lst == pytest.approx(-1.0)
    assert line.predict(np.array([0.5])) == pytest.approx([32.0])


@settings(max_examples=40, deadline=None)
@given(seeds, st.integers(5, 300))
def test_the_ndvi_line_is_least_squares_and_its_spearman_is_that_of_ndvi(seed: int, n: int) -> None:
    ndvi, lst, _ = city(seed, n)
    line = real_eval.fit_ndvi_line(ndvi, lst)
    fit = stats.linregress(ndvi, lst)
    assert line.slope == pytest.approx(fit.slope)
    assert line.intercept == pytest.approx(fit.intercept)
    residual = line.predict(ndvi) - lst
    assert residual.mean() == pytest.approx(0.0, abs=1e-8)  # so its MAE is already offset-free
    assert line.mae == pytest.approx(np.mean(np.abs(residual)))
    rho = stats.spearmanr(ndvi, lst).statistic
    assert line.spearman == pytest.approx(abs(rho))
    assert line.spearman_ndvi_lst == pytest.approx(rho)


def test_constant_inputs_have_no_rank_correlation_and_no_line() -> None:
    flat = np.full(10, 0.3)
    varied = np.arange(10.0)
    assert np.isnan(real_eval.spearman(flat, varied))
    assert np.isnan(real_eval.offset_scores(varied, flat).spearman)
    with pytest.raises(InvalidInputError, match="NDVI is the same"):
        real_eval.fit_ndvi_line(flat, varied)


@pytest.mark.parametrize(
    ("observed", "predicted", "message"),
    [
        (np.arange(5.0), np.arange(4.0), "5 values against 4"),
        (np.array([1.0, np.nan, 3.0, 4.0]), np.arange(4.0), "finite"),
        (np.array([1.0, 2.0]), np.array([1.0, 2.0]), "at least 3"),
    ],
)
def test_bad_pairs_are_refused(observed: np.ndarray, predicted: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        real_eval.offset_scores(observed, predicted)


def test_the_verdict_needs_a_strictly_better_defined_ranking() -> None:
    won = real_eval.verdict(0.7, 0.5)
    assert won.beats_ndvi_line and won.margin == pytest.approx(0.2)
    lost = real_eval.verdict(0.4, 0.5)
    assert not lost.beats_ndvi_line and lost.margin == pytest.approx(-0.1)
    assert not real_eval.verdict(0.5, 0.5).beats_ndvi_line
    assert not real_eval.verdict(float("nan"), 0.1).beats_ndvi_line


def test_strata_split_at_the_edges_and_leave_nan_out() -> None:
    values = np.array([0.0, 0.19, 0.2, 0.49, 0.5, 1.0, np.nan])
    assert real_eval.strata(values).tolist() == [0, 0, 1, 1, 2, 2, -1]
    assert real_eval.stratum_labels() == ["< 0.2", "0.2–0.5", "≥ 0.5"]
    with pytest.raises(InvalidInputError, match="increasing"):
        real_eval.strata(values, (0.5, 0.2))


def test_stratum_scores_count_every_cell_once_and_score_each_stratum() -> None:
    ndvi, lst, predicted = city(7, 400)
    sealed = np.random.default_rng(7).uniform(0, 1, lst.size)
    rows = real_eval.stratum_scores(sealed, lst, ndvi, {"m": predicted})
    assert [r["stratum"] for r in rows] == real_eval.stratum_labels()
    assert sum(int(r["n"] or 0) for r in rows) == lst.size
    for row, k in zip(rows, range(3), strict=True):
        m = real_eval.strata(sealed) == k
        assert row["m_spearman"] == pytest.approx(stats.spearmanr(predicted[m], lst[m]).statistic)
        assert row["ndvi_line_spearman"] == pytest.approx(
            abs(stats.spearmanr(ndvi[m], lst[m]).statistic)
        )


def test_a_stratum_too_small_to_rank_is_nan_not_an_error() -> None:
    ndvi, lst, predicted = city(8, 50)
    sealed = np.zeros(lst.size)
    sealed[:2] = 0.9  # two cells in the top stratum, none in the middle one
    rows = real_eval.stratum_scores(sealed, lst, ndvi, {"m": predicted})
    assert [r["n"] for r in rows] == [48, 0, 2]
    assert np.isfinite(rows[0]["m_spearman"])
    assert np.isnan(rows[1]["m_spearman"]) and np.isnan(rows[2]["ndvi_line_spearman"])
