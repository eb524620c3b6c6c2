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
    labels, count = ndimage.label(mask, output=np.int32)  # 4-connectivity, as shapes() below
    if count == 0:
        return []
    # Statistics from the cells above the line only (a tenth of a whole-scene grid),
    # never from full-grid float64 copies.
    inside = labels[mask]
    picked = values[mask].astype(np.float64)
    cells = np.bincount(inside, minlength=count + 1)
    means = np.bincount(inside, weights=picked, minlength=count + 1) / np.maximum(cells, 1)
    maxima = np.full(count + 1, -np.inf)
    np.maximum.at(maxima, inside, picked)
    kept = cells >= min_cells
    kept[0] = False
    cell_area = abs(transform.a * transform.e - transform.b * transform.d)
    out: list[AreaPolygon] = []
    for geom, label in rio_features.shapes(
        labels, mask=kept[labels], transform=transform, connectivity=4
    ):
        i = int(label)
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
