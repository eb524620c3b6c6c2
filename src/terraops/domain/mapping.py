"""Map products computed from a prediction grid: heat-island intensity, area polygons.

Pure numpy/shapely (``rasterio.features.shapes`` is used as a pure
polygoniser of an in-memory array; nothing is read or written here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio import features as rio_features
from rasterio.transform import Affine
from scipy import ndimage
from shapely import set_precision
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

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


@dataclass(frozen=True)
class AreaPolygon:
    """One connected area above a threshold, in the raster's CRS."""

    geometry: BaseGeometry
    n_cells: int
    area_m2: float
    mean: float
    max: float


def area_polygons(
    values: np.ndarray,
    threshold: float,
    transform: Affine,
    *,
    min_cells: int = 2,
) -> list[AreaPolygon]:
    """Polygons of the 4-connected areas where ``values >= threshold``.

    Each area is one polygon (holes kept) with its cell count, area and the
    mean/max of the values inside. Areas smaller than ``min_cells`` cells are
    dropped: a single 20 m cell above the line is noise, not a hot spot.
    Area comes from the cell count × cell area (exact on the grid), not from
    the reprojected polygon.
    """
    if not np.isfinite(threshold):
        return []
    mask = np.isfinite(values) & (values >= threshold)
    labels, count = ndimage.label(mask)  # 4-connectivity, as shapes() below
    if count == 0:
        return []
    index = np.arange(1, count + 1)
    cells = np.asarray(ndimage.sum_labels(mask, labels, index))
    safe = np.where(mask, values, 0.0)
    means = np.asarray(ndimage.mean(safe, labels, index))
    maxima = np.asarray(ndimage.maximum(safe, labels, index))
    cell_area = abs(transform.a * transform.e - transform.b * transform.d)
    out: list[AreaPolygon] = []
    for geom, label in rio_features.shapes(
        labels.astype(np.int32), mask=mask, transform=transform, connectivity=4
    ):
        i = int(label) - 1
        if cells[i] < min_cells:
            continue
        out.append(
            AreaPolygon(
                geometry=shape(geom),
                n_cells=int(cells[i]),
                area_m2=float(cells[i] * cell_area),
                mean=float(means[i]),
                max=float(maxima[i]),
            )
        )
    out.sort(key=lambda p: -p.area_m2)
    return out


def feature_collection(
    polygons: list[AreaPolygon],
    *,
    to_wgs84: Any,
    properties: Mapping[str, Any],
    value_name: str,
    decimals: int = 6,
) -> dict[str, Any]:
    """GeoJSON (EPSG:4326) of the polygons; ``to_wgs84`` maps a shapely geometry.

    Every feature carries the shared ``properties`` (lineage, unit, threshold)
    plus its own area and the mean/max of ``value_name`` inside it.
    """
    features = []
    for rank, polygon in enumerate(polygons, start=1):
        geometry = set_precision(to_wgs84(polygon.geometry), 10.0**-decimals)
        features.append(
            {
                "type": "Feature",
                "id": rank,
                "geometry": mapping(geometry),
                "properties": {
                    **properties,
                    "rank": rank,
                    "n_cells": polygon.n_cells,
                    "area_m2": round(polygon.area_m2, 1),
                    f"mean_{value_name}": round(polygon.mean, 4),
                    f"max_{value_name}": round(polygon.max, 4),
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}
