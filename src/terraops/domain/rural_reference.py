"""The scene's rural background temperature and the hot-spot threshold: the two numbers
the UHI service's declaration reads.

Apart from the map products (:mod:`terraops.domain.mapping`, which polygonises with
rasterio and shapely) so that declaring a service imports numpy only.
"""

from __future__ import annotations

import numpy as np

RURAL_MIN_NDVI = 0.3
RURAL_MAX_WATER = 0.1
RURAL_SEALED_QUANTILE = 0.25
RURAL_MIN_CELLS = 20
RURAL_FALLBACK_PERCENTILE = 10.0


def rural_reference(
    lst: np.ndarray,
    imperviousness_500m: np.ndarray,
    ndvi: np.ndarray,
    water_fraction: np.ndarray | None = None,
) -> tuple[float, str]:
    """The scene's rural background LST (°C) and how it was found.

    Surface UHI intensity is urban minus rural LST (Peng et al. 2012,
    Environ. Sci. Technol. 46:696–703). "Rural" must be observable on *any*
    scene — a 1.5 km tile of a dense core has no countryside — and mean the
    same thing in each, because the UHI model predicts LST relative to it. So:
    the vegetated land cells (NDVI > 0.3, < 10 % water) whose 500 m
    surroundings are the least sealed quarter of all such cells; their median
    LST is the reference. In a scene with countryside those are rural fields
    and woods; in a city tile, its least built-up parks and gardens. On the
    demo cities this tracks each city's background temperature with a spread
    of 0.7 K, against 2.3 K for "cells < 10 % sealed, else the 10th
    percentile". A scene with fewer than 20 vegetated cells falls back to the
    10th percentile of its land cells, stated in the method string.
    """
    finite = np.isfinite(lst)
    land = finite if water_fraction is None else finite & ~(water_fraction >= RURAL_MAX_WATER)
    vegetated = land & np.isfinite(imperviousness_500m) & (ndvi > RURAL_MIN_NDVI)
    if int(vegetated.sum()) >= RURAL_MIN_CELLS:
        cut = float(np.quantile(imperviousness_500m[vegetated], RURAL_SEALED_QUANTILE))
        rural = vegetated & (imperviousness_500m <= cut)
        method = (
            f"median LST of {int(rural.sum())} vegetated cells (NDVI > {RURAL_MIN_NDVI}) in the "
            f"least-sealed {RURAL_SEALED_QUANTILE:.0%} of surroundings (500 m share <= {cut:.2f})"
        )
        return float(np.median(lst[rural])), method
    if not land.any():
        return float("nan"), "no valid cells"
    value = float(np.percentile(lst[land], RURAL_FALLBACK_PERCENTILE))
    return value, (
        f"{RURAL_FALLBACK_PERCENTILE:g}th percentile of land cells "
        f"(fewer than {RURAL_MIN_CELLS} vegetated cells)"
    )


def percentile_threshold(values: np.ndarray, percentile: float) -> float:
    finite = values[np.isfinite(values)]
    return float(np.percentile(finite, percentile)) if finite.size else float("nan")
