"""Land-cover classes shared by the generator, hydrology, features and maps.

One legend for everything: the generator writes these codes into the
``landcover`` layer, the flood model maps them to SCS curve numbers and the
feature extractor turns them into fractions per cell. Imagery that comes
without a land-cover layer gets a simple spectral classification
(:func:`classify_spectral`) into the same classes.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

NODATA_CODE = 0


class LandCover(IntEnum):
    """uint8 land-cover codes (0 = no data)."""

    BUILDING = 1
    ROAD = 2
    TREE = 3
    GRASS = 4
    WATER = 5
    BARE = 6


LANDCOVER_LEGEND: dict[int, str] = {int(c): c.name.lower() for c in LandCover}
IMPERVIOUS_CLASSES: tuple[LandCover, ...] = (LandCover.BUILDING, LandCover.ROAD)

# SCS curve numbers per class (USDA NRCS 1986, TR-55 "Urban Hydrology for Small
# Watersheds", Table 2-2a/2-2c). Hydrologic soil group B is assumed for every
# scene (loam / silt loam, the most common group in Central European lowlands):
#   impervious areas (roofs, paved roads)              98
#   woods, good condition (group B)                    55
#   open space, grass cover > 75 % (good, group B)     61
#   newly graded / bare soil, no vegetation (group B)  86
# Open water has no TR-55 entry; it is treated like an impervious surface (98),
# i.e. rain falling on it runs off entirely after a ~1 mm initial abstraction.
CURVE_NUMBER_SOIL_B: dict[LandCover, float] = {
    LandCover.BUILDING: 98.0,
    LandCover.ROAD: 98.0,
    LandCover.TREE: 55.0,
    LandCover.GRASS: 61.0,
    LandCover.WATER: 98.0,
    LandCover.BARE: 86.0,
}


def curve_number_map(landcover: np.ndarray) -> np.ndarray:
    """Per-pixel SCS curve number (float64); NaN where the class is unknown."""
    lut = np.full(256, np.nan)
    for cls, cn in CURVE_NUMBER_SOIL_B.items():
        lut[int(cls)] = cn
    return lut[landcover.astype(np.uint8)]


def class_fraction(landcover: np.ndarray, *classes: LandCover) -> np.ndarray:
    """Boolean mask of the pixels belonging to any of ``classes``."""
    return np.isin(landcover, [int(c) for c in classes])


def classify_spectral(
    *,
    green: np.ndarray,
    red: np.ndarray,
    nir: np.ndarray,
    swir: np.ndarray,
) -> np.ndarray:
    """A crude land cover from reflectance, for imagery that comes without one.

    Thresholds on three standard indices, applied in order of reliability:
    water by NDWI = (green − nir)/(green + nir) > 0.1 (McFeeters 1996), dense
    vegetation by NDVI > 0.55 (→ tree) and moderate vegetation NDVI > 0.3
    (→ grass), built-up by NDBI = (swir − nir)/(swir + nir) > 0 (Zha et al.
    2003; roofs and roads cannot be told apart spectrally, so everything built
    is called ``building``) and the rest ``bare``. Good enough for fractions
    per 20 m cell, not for maps of individual objects.
    """
    eps = 1e-9
    ndwi = (green - nir) / (green + nir + eps)
    ndvi = (nir - red) / (nir + red + eps)
    ndbi = (swir - nir) / (swir + nir + eps)
    out = np.full(red.shape, int(LandCover.BARE), dtype=np.uint8)
    out[ndbi > 0.0] = int(LandCover.BUILDING)
    out[ndvi > 0.3] = int(LandCover.GRASS)
    out[ndvi > 0.55] = int(LandCover.TREE)
    out[ndwi > 0.1] = int(LandCover.WATER)
    invalid = ~(np.isfinite(red) & np.isfinite(nir) & np.isfinite(swir) & np.isfinite(green))
    out[invalid] = NODATA_CODE
    return out
