"""Whole-area constants of a Landsat import from histograms: the same as on the pixels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from terraops.domain.landsat.scene_constants import (
    LstTally,
    dn_counts,
    percentile_of_counts,
)
from terraops.domain.mask_tally import MaskTally
from terraops.errors import InvalidInputError


@settings(max_examples=200, deadline=None)
@given(
    dn=arrays(np.uint16, st.integers(1, 300), elements=st.integers(0, 2000)),
    q=st.floats(0.0, 100.0),
    scale=st.floats(1e-5, 1e-2),
)
def test_percentile_of_counts_is_numpys_percentile_of_the_values(
    dn: np.ndarray, q: float, scale: float
) -> None:
    """The values are an increasing function of the DN: counting DN gives the
    percentile numpy finds on the values themselves."""
    levels = np.arange(1 << 16, dtype=np.float64) * scale - 0.1
    counts = dn_counts(dn, np.ones(dn.shape, dtype=bool))
    expected = float(np.percentile(levels[dn], q))
    assert percentile_of_counts(levels, counts, q) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_percentile_of_nothing_is_nan() -> None:
    assert np.isnan(percentile_of_counts(np.arange(4.0), np.zeros(4, dtype=np.int64), 50.0))


def test_dn_counts_refuse_values_that_are_not_16_bit_integers() -> None:
    with pytest.raises(InvalidInputError, match="16-bit"):
        dn_counts(np.ones((2, 2), dtype=np.float32), np.ones((2, 2), dtype=bool))


def test_tallies_summed_over_strips_equal_the_whole() -> None:
    rng = np.random.default_rng(3)
    lst = rng.normal(25.0, 4.0, (60, 50)).astype(np.float32)
    lst[rng.random(lst.shape) < 0.1] = np.nan
    clear = rng.random(lst.shape) < 0.8
    whole, strips = LstTally(), LstTally()
    whole.add(lst, clear)
    masks = MaskTally()
    for r0 in range(0, 60, 7):
        strips.add(lst[r0 : r0 + 7], clear[r0 : r0 + 7])
        masks.add({"masked": ~clear[r0 : r0 + 7]})
    values = lst[clear & np.isfinite(lst)]
    summary = strips.summary()
    assert summary == whole.summary()
    assert summary["lst_min_c"] == round(float(values.min()), 2)
    assert summary["lst_max_c"] == round(float(values.max()), 2)
    assert summary["lst_median_c"] == pytest.approx(float(np.median(values)), abs=0.006)
    assert masks.fractions()["masked"] == round(float((~clear).mean()), 6)
