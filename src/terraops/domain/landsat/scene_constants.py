"""The product-wide constants of a Landsat import, gathered strip by strip.

Two steps of :func:`terraops.domain.landsat.product.derive_layers` look at the
whole imported area, not at one pixel: the DOS1 dark object (a low percentile
of each band's TOA reflectance) and the cold-cloud line (a percentile of
clear-land brightness temperature). A whole Landsat scene (60 M px) is
imported in strips, so both are found first, from histograms of the digital
numbers the strips hold: a band's reflectance and the brightness temperature
are increasing functions of one 16-bit number, so the percentile of the
values is the same order statistic of the numbers — exact, not binned, and
independent of how the area is cut into strips.

Two passes are needed because the clear land of the cold-cloud line excludes
pixels whose LST is undefined, and LST depends on the DOS1-corrected bands.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from terraops.domain.landsat.clouds import COLD_CLOUD_MIN_PX, COLD_CLOUD_PERCENTILE
from terraops.domain.landsat.mtl import REFLECTIVE_BANDS, ProductMetadata
from terraops.domain.landsat.radiometry import (
    DOS1_DARK_PERCENTILE,
    KELVIN,
    brightness_temperature,
    haze_from_dark_object,
    rescale,
    toa_reflectance,
)
from terraops.errors import InvalidInputError

DN_LEVELS = 1 << 16
"""Landsat Collection 1/2 bands are unsigned 16-bit numbers."""


@dataclass(frozen=True)
class SceneConstants:
    """What :func:`derive_layers` would otherwise take from the window it is given.

    ``haze``: DOS1 path reflectance per OLI band (0 without DOS1). ``t_low_c``:
    the cold-cloud reference (°C); NaN when the area has too little clear land
    to give one (nothing is then flagged as cold cloud), None without a QA band.
    """

    haze: Mapping[int, float]
    t_low_c: float | None


def percentile_of_counts(levels: np.ndarray, counts: np.ndarray, q: float) -> float:
    """numpy's default (linear) ``q``-th percentile of a sample given as the value of
    each level and how many times it occurs (levels with no count are ignored)."""
    used = counts > 0
    values, weights = levels[used].astype(np.float64), counts[used]
    order = np.argsort(values, kind="stable")
    values, cumulative = values[order], np.cumsum(weights[order])
    n = int(cumulative[-1]) if cumulative.size else 0
    if n == 0:
        return math.nan
    rank = q / 100.0 * (n - 1)
    low = math.floor(rank)
    lo = values[np.searchsorted(cumulative, low, side="right")]
    hi = values[np.searchsorted(cumulative, min(low + 1, n - 1), side="right")]
    return float(lo + (rank - low) * (hi - lo))


def dn_counts(dn: np.ndarray, where: np.ndarray) -> np.ndarray:
    """How many pixels under ``where`` hold each 16-bit digital number."""
    if dn.dtype.kind not in "ui" or dn.dtype.itemsize > 2:
        raise InvalidInputError(
            f"a Landsat band holds {dn.dtype} values; Collection 1/2 bands are 16-bit integers",
            hint="import the product as USGS delivers it, not a converted copy",
        )
    return np.bincount(dn[where].astype(np.intp, copy=False), minlength=DN_LEVELS)


def _dn_range() -> np.ndarray:
    return np.arange(DN_LEVELS, dtype=np.uint16)


def haze_of_counts(counts: Mapping[int, np.ndarray], meta: ProductMetadata) -> dict[int, float]:
    """DOS1 path reflectance per band from each band's valid-pixel DN counts."""
    elevation = float(meta.sun_elevation or 90.0)
    haze = {}
    for n in REFLECTIVE_BANDS:
        levels = toa_reflectance(_dn_range(), meta.reflective[n], elevation)
        dark = percentile_of_counts(levels, counts[n], DOS1_DARK_PERCENTILE)
        haze[n] = 0.0 if math.isnan(dark) else haze_from_dark_object(dark)
    return haze


def t_low_of_counts(counts: np.ndarray, meta: ProductMetadata, *, from_band10: bool) -> float:
    """The cold-cloud reference (°C) from the clear-land counts of the thermal DN:
    band 10's when the product has it, else Level-2 ST_B10's."""
    if int(counts.sum()) < COLD_CLOUD_MIN_PX:
        return math.nan
    if from_band10:
        assert meta.thermal is not None
        radiance = rescale(_dn_range(), meta.thermal.radiance)
        levels = brightness_temperature(radiance, meta.thermal.k1, meta.thermal.k2) - KELVIN
    else:
        assert meta.surface_temperature is not None
        levels = rescale(_dn_range(), meta.surface_temperature) - KELVIN
    return percentile_of_counts(levels, counts, COLD_CLOUD_PERCENTILE)


LST_BIN_K = 1e-4
LST_RANGE_C = (-100.0, 100.0)


@dataclass
class LstTally:
    """Minimum, median and maximum LST of the clear pixels, summed over strips.

    The median comes from a histogram of 0.0001 K bins (2 M counts, 16 MB): the
    manifest rounds it to 0.01 K, so a whole scene needs no 60 M-value sort.
    """

    counts: np.ndarray = field(
        default_factory=lambda: np.zeros(
            round((LST_RANGE_C[1] - LST_RANGE_C[0]) / LST_BIN_K), dtype=np.int64
        )
    )
    low: float = math.inf
    high: float = -math.inf

    def add(self, lst_c: np.ndarray, clear: np.ndarray) -> None:
        values = lst_c[clear & np.isfinite(lst_c)]
        if not values.size:
            return
        self.low, self.high = (
            min(self.low, float(values.min())),
            max(self.high, float(values.max())),
        )
        bins = np.floor((values.astype(np.float64) - LST_RANGE_C[0]) / LST_BIN_K).astype(np.intp)
        self.counts += np.bincount(
            np.clip(bins, 0, self.counts.size - 1), minlength=self.counts.size
        )

    def summary(self) -> dict[str, float | None]:
        n = int(self.counts.sum())
        if n == 0:
            return {"lst_min_c": None, "lst_median_c": None, "lst_max_c": None}
        centres = LST_RANGE_C[0] + (np.arange(self.counts.size) + 0.5) * LST_BIN_K
        median = percentile_of_counts(centres, self.counts, 50.0)
        median = min(max(median, self.low), self.high)
        return {
            "lst_min_c": round(self.low, 2),
            "lst_median_c": round(median, 2),
            "lst_max_c": round(self.high, 2),
        }


__all__ = [
    "DN_LEVELS",
    "LstTally",
    "SceneConstants",
    "dn_counts",
    "haze_of_counts",
    "percentile_of_counts",
    "t_low_of_counts",
]
