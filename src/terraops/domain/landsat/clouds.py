"""Landsat clouds: QA-band decoding, Fmask potential and cold cloud, mask dilation
(sources in :mod:`terraops.domain.landsat`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from terraops.domain.landsat.mtl import REFLECTIVE_BANDS
from terraops.domain.landsat.radiometry import normalized_difference
from terraops.errors import InvalidInputError

# --------------------------------------------------------------------------- constants
# Fmask potential cloud pixels (Zhu & Woodcock 2012, eqs. 1–4), on TOA values.
FMASK_SWIR2_MIN = 0.03
FMASK_BT_MAX_C = 27.0
FMASK_NDVI_MAX = 0.8
FMASK_NDSI_MAX = 0.8
FMASK_WHITENESS_MAX = 0.7
FMASK_HOT_OFFSET = 0.08
FMASK_NIR_SWIR1_MIN = 0.75
COLD_CLOUD_PERCENTILE = 17.5  # Fmask's T_low: 17.5th percentile of clear-land BT (eq. 8)
COLD_CLOUD_MARGIN_K = 4.0  # ... minus 4 K: below it Fmask's temperature probability is > 1
CLOUD_DILATION_PX = 3
"""Cloud edges and thin cloud around what the tests find; 3 px = 90 m at 30 m."""


# --------------------------------------------------------------------------- QA and clouds
@dataclass(frozen=True)
class QaFlags:
    fill: np.ndarray
    cloud: np.ndarray
    cirrus: np.ndarray
    shadow: np.ndarray


QA_DECODING: dict[str, str] = {
    "pre-collection": "BQA: bit 0 fill; bits 14-15 cloud confidence >= 2 (medium/high); "
    "bits 12-13 cirrus confidence = 3 (high); no shadow bits",
    "C1": "BQA: bit 0 fill; bit 4 cloud or bits 5-6 cloud confidence >= 2; bits 7-8 cloud "
    "shadow confidence >= 2; bits 11-12 cirrus confidence = 3",
    "C2": "QA_PIXEL: bit 0 fill; bit 1 dilated cloud, bit 3 cloud or bits 8-9 cloud "
    "confidence >= 2; bit 2 cirrus (high); bit 4 cloud shadow",
}


def _bits(qa: np.ndarray, first: int, width: int = 1) -> np.ndarray:
    return (qa.astype(np.uint32) >> first) & ((1 << width) - 1)


def decode_qa(qa: np.ndarray, scheme: str) -> QaFlags:
    """Fill, cloud (medium/high confidence), high cirrus and shadow from a QA band."""
    fill = _bits(qa, 0) == 1
    if scheme == "pre-collection":
        cloud = _bits(qa, 14, 2) >= 2
        cirrus = _bits(qa, 12, 2) == 3
        shadow = np.zeros(qa.shape, dtype=bool)
    elif scheme == "C1":
        cloud = (_bits(qa, 4) == 1) | (_bits(qa, 5, 2) >= 2)
        shadow = _bits(qa, 7, 2) >= 2
        cirrus = _bits(qa, 11, 2) == 3
    elif scheme == "C2":
        cloud = (_bits(qa, 1) == 1) | (_bits(qa, 3) == 1) | (_bits(qa, 8, 2) >= 2)
        cirrus = _bits(qa, 2) == 1
        shadow = _bits(qa, 4) == 1
    else:
        raise InvalidInputError(f"unknown QA scheme {scheme!r}")
    return QaFlags(fill, cloud & ~fill, cirrus & ~fill, shadow & ~fill)


def potential_cloud(toa: Mapping[int, np.ndarray], bt_c: np.ndarray) -> np.ndarray:
    """Fmask potential cloud pixels (Zhu & Woodcock 2012, eqs. 1–4) on OLI TOA bands.

    basic: ρ7 > 0.03, BT < 27 °C, NDVI < 0.8, NDSI < 0.8; whiteness
    Σ|ρi − mean| / mean over blue/green/red < 0.7; HOT: ρblue − 0.5·ρred − 0.08 > 0;
    ρnir / ρswir1 > 0.75. All four must hold.
    """
    blue, green, red, nir, swir1, swir2 = (toa[n] for n in REFLECTIVE_BANDS)
    ndvi = normalized_difference(nir, red)
    ndsi = normalized_difference(green, swir1)
    basic = (
        (swir2 > FMASK_SWIR2_MIN)
        & (bt_c < FMASK_BT_MAX_C)
        & (ndvi < FMASK_NDVI_MAX)
        & (ndsi < FMASK_NDSI_MAX)
    )
    mean = (blue + green + red) / 3.0
    with np.errstate(divide="ignore", invalid="ignore"):
        whiteness = (np.abs(blue - mean) + np.abs(green - mean) + np.abs(red - mean)) / mean
        ratio = nir / swir1
    hot = blue - 0.5 * red - FMASK_HOT_OFFSET > 0
    return np.asarray(
        basic & (whiteness < FMASK_WHITENESS_MAX) & hot & (ratio > FMASK_NIR_SWIR1_MIN)
    )


COLD_CLOUD_MIN_PX = 100
"""Less clear land than this gives no cold-cloud reference."""


def cold_cloud(
    bt_c: np.ndarray, clear_land: np.ndarray, water: np.ndarray, t_low_c: float | None = None
) -> np.ndarray:
    """Land pixels far colder than the window's clear land: cloud tops the other tests miss.

    After Fmask's land temperature probability (Zhu & Woodcock 2012, eqs. 8–9):
    below T_low − 4 K (T_low = 17.5th percentile of clear-land BT) that
    probability exceeds 1. Water is never flagged (it is cold by nature);
    too little clear land (< 100 px) gives no reference and flags nothing.
    ``t_low_c`` given (an import in strips finds it over the whole area first,
    :mod:`terraops.domain.landsat.scene_constants`): used as is, NaN = no reference.
    """
    if t_low_c is None:
        reference = bt_c[clear_land & np.isfinite(bt_c)]
        enough = reference.size >= COLD_CLOUD_MIN_PX
        t_low_c = float(np.percentile(reference, COLD_CLOUD_PERCENTILE)) if enough else np.nan
    if np.isnan(t_low_c):
        return np.zeros(bt_c.shape, dtype=bool)
    return np.asarray((bt_c < t_low_c - COLD_CLOUD_MARGIN_K) & ~water)


def dilate(mask: np.ndarray, radius_px: int) -> np.ndarray:
    """Grow a mask by a disc of ``radius_px`` (Euclidean distance ≤ radius)."""
    if radius_px <= 0:
        return mask.copy()
    yy, xx = np.mgrid[-radius_px : radius_px + 1, -radius_px : radius_px + 1]
    disc = (xx**2 + yy**2) <= radius_px**2
    return np.asarray(ndimage.binary_dilation(mask, structure=disc))
