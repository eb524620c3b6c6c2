"""Map products computed from a prediction grid: heat-island intensity, area polygons.

Pure numpy/shapely (``rasterio.features.shapes`` is used as a pure
polygoniser of an in-memory array; nothing is read or written here).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from rasterio import features as rio_features
from rasterio.transform import Affine
from scipy import ndimage
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
    """Polygons of the 4-connected areas where ``values >= threshold``, largest first.

    Each area is one polygon (holes kept) with its cell count, area and the
    mean/max of the values inside. Areas smaller than ``min_cells`` cells are
    dropped: a single 20 m cell above the line is noise, not a hot spot.
    Area comes from the cell count × cell area (exact on the grid), not from
    the reprojected polygon.
    """
    return list(iter_area_polygons(values, threshold, transform, min_cells=min_cells))


def iter_area_polygons(
    values: np.ndarray,
    threshold: float,
    transform: Affine,
    *,
    min_cells: int = 2,
) -> Iterator[AreaPolygon]:
    """:func:`area_polygons` one at a time, largest first (ties: top-left first).

    Each area is polygonised from its own bounding box, so what is held at once
    is one area's outline: on a whole-scene grid (60 M cells) a hot spot's
    stair-step outline can have hundreds of thousands of vertices.
    """
    if not np.isfinite(threshold):
        return
    mask = np.isfinite(values) & (values >= threshold)
    labels, count = ndimage.label(mask, output=np.int32)  # 4-connectivity, as shapes() below
    if count == 0:
        return
    # Statistics from the cells above the line only (a tenth of a whole-scene grid),
    # never from full-grid float64 copies.
    inside = labels[mask]
    picked = values[mask].astype(np.float64)
    del mask
    cells = np.bincount(inside, minlength=count + 1)
    means = np.bincount(inside, weights=picked, minlength=count + 1) / np.maximum(cells, 1)
    maxima = np.full(count + 1, -np.inf)
    np.maximum.at(maxima, inside, picked)
    del inside, picked
    cell_area = abs(transform.a * transform.e - transform.b * transform.d)
    boxes = ndimage.find_objects(labels)
    order = np.argsort(-cells[1:], kind="stable") + 1
    for label in order[cells[order] >= min_cells]:
        rows, cols = boxes[label - 1]
        inside_area = labels[rows, cols] == label
        corner = transform @ Affine.translation(cols.start, rows.start)
        ((geom, _),) = rio_features.shapes(
            inside_area.view(np.uint8), mask=inside_area, transform=corner, connectivity=4
        )
        yield AreaPolygon(
            geometry=shape(geom),
            n_cells=int(cells[label]),
            area_m2=float(cells[label] * cell_area),
            mean=float(means[label]),
            max=float(maxima[label]),
        )


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
    features = [
        area_feature(
            rank,
            polygon,
            to_wgs84=to_wgs84,
            properties=properties,
            value_name=value_name,
            decimals=decimals,
        )
        for rank, polygon in enumerate(polygons, start=1)
    ]
    return {"type": "FeatureCollection", "features": features}


def area_feature(
    rank: int,
    polygon: AreaPolygon,
    *,
    to_wgs84: Any,
    properties: Mapping[str, Any],
    value_name: str,
    decimals: int = 6,
) -> dict[str, Any]:
    """One feature of :func:`feature_collection` (written one by one for a whole scene)."""
    # Rounding, not shapely.set_precision: the vertices of a 20 m grid's outline lie
    # metres apart, far beyond 1e-6°, so rounding keeps every ring valid — and
    # set_precision's noding took seconds on a whole-scene hot spot (760 k vertices).
    geometry = shapely.transform(
        to_wgs84(polygon.geometry), lambda coords: np.round(coords, decimals)
    )
    return {
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
