"""Class masks → clean polygons: holes kept, slivers dropped, simplified without breaking topology.

The path from a label map to vectors a GIS analyst can use:

1. **Regions.** Every 4-connected region of one class becomes one polygon
   with its holes (``rasterio.features.shapes``, GDAL's polygoniser, used as
   a pure function of an in-memory array). 4-connectivity matches
   ``scipy.ndimage.label``'s default, which gives each region its pixel
   count and mean score.
2. **Simplification as a coverage.** Raster polygons have staircase edges.
   Simplifying each polygon on its own (Douglas–Peucker, even shapely's
   topology-preserving variant) moves a shared border differently on its
   two sides, so neighbours overlap or open gaps; two regions of a class that
   touch at a pixel corner can come to overlap. Instead the whole label map
   is polygonised as one *coverage* (every pixel in exactly one polygon) and
   simplified with GEOS's coverage simplifier (``shapely.coverage_simplify``,
   Visvalingam–Whyatt on shared edges; Visvalingam & Whyatt 1993, Cartogr.
   J. 30:46–51): shared edges stay shared, rings keep their holes, nothing
   crosses. Its tolerance is roughly the square root of the triangle area
   removed; the default, :data:`DEFAULT_SIMPLIFY_PIXELS` = 0.75 pixel, is
   just above a single-pixel stair step (a triangle of ½ px², √ ≈ 0.71 px),
   so staircase artefacts go and every feature of two pixels or more stays.
   The work is done in pixel coordinates, where the polygoniser's vertices are
   exact integers, so the edges of neighbouring polygons can be matched
   exactly (``shapely.segmentize`` at one pixel puts a vertex on every pixel
   corner, which the coverage simplifier requires); the affine transform is
   applied last, to all polygons alike, so shared edges stay shared.
3. **Cleaning.** Holes smaller than ``min_area_m2`` are filled and polygons
   smaller than that are dropped. Anything inside a filled hole is smaller
   than the hole and therefore dropped too, so the output polygons never
   overlap, within a class or across classes. A polygon that still comes out
   invalid is repaired with ``shapely.make_valid`` (only then).

Every step works on arrays of polygons (shapely's vectorised functions: ring
and polygon construction, hole areas, validity, areas, the affine mapping), so
the Python work per polygon is building its record, not its geometry.

The caller must give a transform in a projected CRS with metre units
(areas and tolerances are in m²/m); adapters reproject to EPSG:4326 when
writing GeoJSON. Pure code: nothing is read or written here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np
import shapely
from rasterio import features as rio_features
from rasterio.transform import Affine
from scipy import ndimage
from shapely.geometry import MultiPolygon, Polygon, mapping
from shapely.geometry.base import BaseGeometry

from terraops.domain.segmentation.classes import CLASS_NAMES, FOREGROUND_CLASSES
from terraops.errors import InvalidInputError

DEFAULT_SIMPLIFY_PIXELS = 0.75
DEFAULT_CLASSES: dict[int, str] = {int(c): CLASS_NAMES[int(c)] for c in FOREGROUND_CLASSES}
RESERVED_PROPERTIES = ("class", "class_id", "score", "area_m2", "pixels")
_POLYGONAL = (3, 6)  # shapely type ids of Polygon and MultiPolygon


@dataclass(frozen=True)
class PolygonRecord:
    """One polygon (in the transform's CRS) and its properties.

    Exposes ``__geo_interface__`` as a GeoJSON Feature, so
    ``geopandas.GeoDataFrame.from_features(records)`` reads a list of them.
    """

    geometry: Polygon | MultiPolygon
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def __geo_interface__(self) -> dict[str, Any]:
        return {
            "type": "Feature",
            "geometry": mapping(self.geometry),
            "properties": self.properties,
        }


def repair_polygonal(geometry: BaseGeometry) -> Polygon | MultiPolygon | None:
    """``geometry`` if valid, else its polygonal part after ``make_valid``; None if nothing is left.

    ``make_valid`` with the "structure" method rebuilds areas from the rings
    (a bow-tie becomes two triangles) and drops collapsed lines and points,
    which ``buffer(0)`` would also do but can lose one lobe of a bow-tie.
    """
    if geometry.is_valid and isinstance(geometry, Polygon | MultiPolygon):
        return geometry
    fixed = shapely.make_valid(geometry, method="structure", keep_collapsed=False)
    parts = [g for g in shapely.get_parts(fixed) if isinstance(g, Polygon) and not g.is_empty]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def fill_small_holes(polygon: Polygon, min_area: float) -> Polygon:
    """The polygon with every hole of area < ``min_area`` (same units) filled."""
    kept = [ring for ring in polygon.interiors if Polygon(ring).area >= min_area]
    if len(kept) == len(polygon.interiors):
        return polygon
    return Polygon(polygon.exterior, kept)


def fill_small_holes_all(polygons: np.ndarray, min_area: float) -> np.ndarray:
    """:func:`fill_small_holes` over an array of polygons, in a few array calls.

    Polygons that keep all their holes are returned as they are (the same
    objects); the others are rebuilt from their exterior and the holes kept.
    """
    polygons = np.asarray(polygons, dtype=object)
    if min_area <= 0 or polygons.size == 0:
        return polygons
    holed = np.flatnonzero(shapely.get_num_interior_rings(polygons) > 0)
    if holed.size == 0:
        return polygons
    rings, owner = shapely.get_rings(polygons[holed], return_index=True)
    first = np.r_[True, owner[1:] != owner[:-1]]  # each polygon's exterior comes first
    small = ~first & (shapely.area(shapely.polygons(rings)) < min_area)
    changed = np.unique(owner[small])
    if changed.size == 0:
        return polygons
    keep = ~small & np.isin(owner, changed)
    out = polygons.copy()
    rebuilt = shapely.polygons(rings[keep], indices=np.searchsorted(changed, owner[keep]))
    out[holed[changed]] = rebuilt
    return out


def repair_all(polygons: np.ndarray) -> np.ndarray:
    """:func:`repair_polygonal` over an array: valid polygons pass through unchanged,
    the (rare) others are repaired one by one; None where nothing is left."""
    polygons = np.asarray(polygons, dtype=object)
    ok = shapely.is_valid(polygons) & np.isin(shapely.get_type_id(polygons), _POLYGONAL)
    out = polygons.copy()
    for i in np.flatnonzero(~ok):
        out[i] = repair_polygonal(polygons[i])
    return out


def affine_all(geometries: np.ndarray, transform: Affine) -> np.ndarray:
    """Every geometry mapped by ``transform`` in one vectorised call.

    The arithmetic is :func:`shapely.affinity.affine_transform`'s, term for
    term, so the coordinates are bit-identical to mapping them one by one.
    """
    a, b, xoff, d, e, yoff = transform[:6]

    def mapped(coords: np.ndarray) -> np.ndarray:
        x, y = coords.T
        return np.column_stack([a * x + b * y + xoff, d * x + e * y + yoff])

    out: np.ndarray = shapely.transform(np.asarray(geometries, dtype=object), mapped)
    return out


def _component_ids(labels: np.ndarray, classes: Mapping[int, str]) -> tuple[np.ndarray, np.ndarray]:
    """Unique id per 4-connected region of a vectorised class (0 elsewhere), and each id's class."""
    ids = np.zeros(labels.shape, dtype=np.int32)
    id_class = [0]
    for class_id in sorted(classes):
        components, count = ndimage.label(labels == class_id)
        inside = components > 0
        ids[inside] = components[inside] + (len(id_class) - 1)
        id_class.extend([class_id] * count)
    return ids, np.asarray(id_class, dtype=np.int64)


def _mean_scores(ids: np.ndarray, scores: np.ndarray | None, n_ids: int) -> np.ndarray:
    """Mean finite score per id (NaN where an id has none, or no score map)."""
    if scores is None:
        return np.full(n_ids, np.nan)
    finite = np.isfinite(scores)
    sums = np.bincount(ids[finite], weights=scores[finite].astype(np.float64), minlength=n_ids)
    counts = np.bincount(ids[finite], minlength=n_ids)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def _polygonise(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GDAL's polygons of ``ids`` as shapely polygons and their values.

    The GeoJSON-like rings GDAL yields are flattened into one coordinate
    array and turned into rings and polygons by two array calls, instead of
    one ``shape()`` (and a Python list per ring) per polygon.
    """
    rings: list[list[tuple[float, float]]] = []
    owners: list[int] = []
    values: list[int] = []
    for geom, value in rio_features.shapes(ids, connectivity=4):
        owners.extend([len(values)] * len(geom["coordinates"]))
        rings.extend(geom["coordinates"])
        values.append(int(value))
    if not values:
        return np.empty(0, dtype=object), np.empty(0, dtype=np.int64)
    lengths = np.fromiter(map(len, rings), dtype=np.int64, count=len(rings))
    flat = chain.from_iterable(chain.from_iterable(rings))
    coords = np.fromiter(flat, dtype=np.float64, count=2 * int(lengths.sum())).reshape(-1, 2)
    ring_geoms = shapely.linearrings(coords, indices=np.repeat(np.arange(len(rings)), lengths))
    polygons = shapely.polygons(ring_geoms, indices=np.asarray(owners, dtype=np.int64))
    return np.asarray(polygons, dtype=object), np.asarray(values, dtype=np.int64)


def _pixel_coverage(ids: np.ndarray, tolerance_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Polygons of every region of ``ids`` in pixel coordinates, simplified as one coverage."""
    polygons, values = _polygonise(ids)
    if tolerance_px > 0:
        # A vertex on every pixel corner makes shared edges vertex-identical
        # (the coverage simplifier needs that); integer coordinates keep it exact.
        polygons = shapely.segmentize(polygons, 1.0)
        polygons = shapely.coverage_simplify(polygons, tolerance_px, simplify_boundary=False)
    return polygons, values


def _check_inputs(
    labels: np.ndarray, scores: np.ndarray | None, properties: Mapping[str, Any]
) -> None:
    if labels.ndim != 2 or labels.size == 0:
        raise InvalidInputError(f"labels must be a non-empty 2-D array, got shape {labels.shape}")
    if scores is not None and scores.shape != labels.shape:
        raise InvalidInputError(f"scores {scores.shape} and labels {labels.shape} differ in shape")
    clash = sorted(set(properties) & set(RESERVED_PROPERTIES))
    if clash:
        raise InvalidInputError(
            f"properties {clash} are computed per polygon and cannot be supplied",
            hint=f"reserved names: {', '.join(RESERVED_PROPERTIES)}",
        )


def vectorise(
    labels: np.ndarray,
    transform: Affine,
    *,
    classes: Mapping[int, str] = DEFAULT_CLASSES,
    scores: np.ndarray | None = None,
    min_area_m2: float = 0.0,
    simplify_m: float | None = None,
    properties: Mapping[str, Any] | None = None,
) -> list[PolygonRecord]:
    """Polygons of the ``classes`` regions of a label map, with class, score and area.

    ``labels`` is a 2-D integer map; only values that are keys of ``classes``
    are vectorised (background and no-data are not). ``scores`` (optional,
    same shape) is a per-pixel confidence, e.g. the winning class's
    probability; a polygon's ``score`` is its mean over the region's pixels
    (NaN-free pixels only; None without a score map). ``simplify_m`` is the
    coverage-simplification tolerance in metres (default
    :data:`DEFAULT_SIMPLIFY_PIXELS` pixels; 0 keeps the exact pixel edges).
    ``properties`` (e.g. model name and version) are copied onto every record.

    Each record's properties: ``class`` (name), ``class_id``, ``score``,
    ``area_m2`` (of the delivered polygon), ``pixels`` (of the region,
    without filled holes), then the caller's. Records are ordered by class
    id, then largest first.
    """
    labels = np.asarray(labels)
    extra = dict(properties or {})
    _check_inputs(labels, scores, extra)
    pixel_area = abs(transform.determinant)
    if pixel_area == 0:
        raise InvalidInputError("the transform is degenerate (zero pixel area)")
    pixel_size = math.sqrt(pixel_area)
    tolerance_px = DEFAULT_SIMPLIFY_PIXELS if simplify_m is None else simplify_m / pixel_size
    min_area_px = min_area_m2 / pixel_area

    ids, id_class = _component_ids(labels, classes)
    if len(id_class) == 1:
        return []
    pixels = np.bincount(ids.ravel(), minlength=len(id_class))
    means = _mean_scores(ids, scores, len(id_class))
    polygons, values = _pixel_coverage(ids, tolerance_px)
    regions = values != 0
    polygons, values = polygons[regions], values[regions]
    cleaned = repair_all(fill_small_holes_all(polygons, min_area_px))
    present = np.array([g is not None for g in cleaned], dtype=bool)
    areas = np.zeros(len(cleaned))
    areas[present] = shapely.area(cleaned[present])
    kept = np.flatnonzero(present & (areas >= min_area_px))
    mapped = affine_all(cleaned[kept], transform)

    records: list[PolygonRecord] = []
    for geometry, region, area in zip(mapped, values[kept], areas[kept], strict=True):
        class_id = int(id_class[region])
        score = float(means[region])
        records.append(
            PolygonRecord(
                geometry=geometry,
                properties={
                    "class": classes[class_id],
                    "class_id": class_id,
                    "score": None if math.isnan(score) else score,
                    "area_m2": float(area * pixel_area),
                    "pixels": int(pixels[region]),
                    **extra,
                },
            )
        )
    records.sort(key=lambda r: (r.properties["class_id"], -r.properties["area_m2"]))
    return records
