"""Land-cover classes shared by the generator, hydrology, features and maps.

One legend for everything: the generator writes these codes into its
``landcover`` layer (the truth, used only to evaluate), the flood model maps
them to SCS curve numbers, and the feature extractor turns the land cover
*classified from the imagery* (:func:`classify_spectral`, or the
segmentation champion completed by it) into fractions per cell — the same
way for a synthetic city, an imported Landsat product and a user's GeoTIFF,
so a model never learns from inputs a real city cannot give.
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


SPECTRAL_RULES: dict[str, float] = {
    "water_ndwi_min": 0.1,
    "vegetation_ndvi_min": 0.3,
    "tree_ndbi_max": -0.25,
    "paved_visible_max": 0.1,
    "bare_red_green_min": 1.15,
    "bare_red_green_max": 1.5,
}
"""Thresholds of :func:`classify_spectral` (recorded with every cell table built from it)."""


def classify_spectral(
    *,
    red: np.ndarray,
    green: np.ndarray,
    blue: np.ndarray,
    nir: np.ndarray,
    swir: np.ndarray,
) -> np.ndarray:
    """Land cover from reflectance alone: the land-cover source for every feature.

    Rules on standard indices, applied in order of reliability (later rules
    override earlier ones):

    1. non-vegetated surfaces are ``building``; dark ones (mean visible
       reflectance < 0.1: asphalt, and anything in shadow) are ``road``;
       reddish non-vegetated surfaces that are not dark (red/green 1.15–1.5:
       soil, whose iron oxides redden it, unlike grey concrete or paving, while
       clay tiles are redder still) are ``bare``;
    2. vegetation by NDVI > 0.3 — ``grass`` — and among it ``tree`` where the
       canopy holds more water, i.e. SWIR is low against NIR: NDBI < −0.25
       (NDBI = −NDMI, the moisture index, which is higher for tree crowns than
       for grass: Gao 1996, Remote Sens. Environ. 58:257–266; Hunt & Rock 1989);
    3. open water by NDWI = (green − NIR)/(green + NIR) > 0.1 (McFeeters 1996).

    Roofs and roads cannot be fully told apart from five bands (a dark bitumen
    roof looks like asphalt), so ``building`` means "bright built surface";
    imperviousness (building + road) is the robust quantity. On the synthetic
    cities the rules agree with the true land cover on 86–96 % of pixels and on
    imperviousness on 95–99 % (measured on the four demo cities). When a
    segmentation champion is registered it supplies building, water and tree
    and these rules fill in the rest
    (:mod:`terraops.pipelines.scenes.landcover_source`,
    :func:`terraops.domain.segmentation.classes.landcover_from_segmentation`).
    """
    eps = 1e-9
    r = SPECTRAL_RULES
    ndwi = (green - nir) / (green + nir + eps)
    ndvi = (nir - red) / (nir + red + eps)
    ndbi = (swir - nir) / (swir + nir + eps)
    red_green = red / (green + eps)
    visible = (red + green + blue) / 3.0
    out = np.full(red.shape, int(LandCover.BUILDING), dtype=np.uint8)
    out[visible < r["paved_visible_max"]] = int(LandCover.ROAD)
    soil = (red_green >= r["bare_red_green_min"]) & (red_green <= r["bare_red_green_max"])
    out[soil & (visible >= r["paved_visible_max"])] = int(LandCover.BARE)
    vegetation = ndvi > r["vegetation_ndvi_min"]
    out[vegetation] = int(LandCover.GRASS)
    out[vegetation & (ndbi < r["tree_ndbi_max"])] = int(LandCover.TREE)
    out[ndwi > r["water_ndwi_min"]] = int(LandCover.WATER)
    valid = np.isfinite(red) & np.isfinite(green) & np.isfinite(blue)
    valid &= np.isfinite(nir) & np.isfinite(swir)
    out[~valid] = NODATA_CODE
    return out
