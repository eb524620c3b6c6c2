"""Polygon files written as the polygons arrive: GeoJSON streamed, GPKG/GeoParquet at the end.

- :class:`GeoJSONWriter` streams an RFC 7946 FeatureCollection (WGS 84
  longitude/latitude, coordinates snapped to 1e-7° ≈ 1 cm) feature by
  feature into a temporary file, reprojecting each batch in one vectorised
  call (pyproj on coordinate arrays through ``shapely.transform``); memory
  holds one batch, however many polygons the image has.
- :class:`FrameWriter` keeps the records and writes a GeoPackage or
  GeoParquet in the source's own (metric) CRS with geopandas at the end;
  those formats are written whole, so the polygons are held in memory.

Both write to a temporary sibling and rename on :meth:`close`, so a reader
finds the complete file or none; :meth:`abort` removes the temporary file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import shapely
from pyproj import Transformer

from terraops.adapters import atomic
from terraops.domain.segmentation.geojson_coords import polygon_coordinates_text
from terraops.domain.segmentation.vectorise import PolygonRecord
from terraops.errors import InvalidInputError

VECTOR_FORMATS = ("geojson", "gpkg", "parquet")
WGS84_DECIMALS = 7
WGS84_GRID_DEG = 10.0**-WGS84_DECIMALS


class VectorWriter(Protocol):
    path: Path

    def write(self, records: Sequence[PolygonRecord]) -> None: ...

    def close(self) -> Path: ...

    def abort(self) -> None: ...


def _temporary(path: Path) -> Path:
    """The streaming writer's unique hidden sibling (same suffix: GDAL reads it by name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic.temp_sibling(path, suffix=path.suffix)


class WGS84Features:
    """Polygon records (in ``crs``) → GeoJSON Feature dicts in EPSG:4326.

    One conversion for everything that emits GeoJSON: the file writer below and
    the upload endpoint, which answers without touching the disk. Picklable
    (the transformer is rebuilt where it is used), so worker processes can
    encode the polygons they made.
    """

    def __init__(self, crs: str) -> None:
        self.crs = crs
        self._forward: Any = None
        self.collected: list[dict[str, Any]] = []

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_forward": None}

    def _to_wgs84(self, coords: np.ndarray) -> np.ndarray:
        if self._forward is None:
            self._forward = Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True).transform
        lon, lat = self._forward(coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])

    def lonlat(self, records: Sequence[PolygonRecord]) -> np.ndarray:
        """The records' geometries reprojected, snapped to the output grid and wound as
        RFC 7946 asks (exterior rings counterclockwise, holes clockwise), in array calls.

        Snapping rounds each vertex (``pointwise``); the few geometries that rounding
        leaves invalid (a vertex that lay on another edge, moved across it) are snapped
        again with GEOS's topology-repairing mode, which costs far more (it nodes the
        whole geometry) and is why it is not the first choice.
        """
        geoms = shapely.transform(
            np.asarray([r.geometry for r in records], dtype=object), self._to_wgs84
        )
        snapped = shapely.set_precision(geoms, WGS84_GRID_DEG, mode="pointwise")
        broken = ~shapely.is_valid(snapped)
        if broken.any():
            snapped[broken] = shapely.set_precision(geoms[broken], WGS84_GRID_DEG)
        out: np.ndarray = shapely.orient_polygons(snapped)
        return out

    def features(self, records: Sequence[PolygonRecord]) -> list[dict[str, Any]]:
        """The records as Feature dicts: coordinates nested into lists by slicing one flat
        list (``mapping`` per polygon walks every ring in Python; the JSON is the same)."""
        if not records:
            return []
        geometries = geojson_geometries(self.lonlat(records))
        return [
            {"type": "Feature", "geometry": geometry, "properties": record.properties}
            for record, geometry in zip(records, geometries, strict=True)
        ]

    def collect(self, records: Sequence[PolygonRecord]) -> None:
        """A vectoriser sink that keeps the features in memory (small images only)."""
        self.collected.extend(self.features(records))


def _structure(
    polygons: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates of (multi)polygons and where each ring, polygon and geometry ends."""
    parts, part_owner = shapely.get_parts(polygons, return_index=True)
    rings, ring_owner = shapely.get_rings(parts, return_index=True)  # exterior, then holes
    ring_ends = np.cumsum(shapely.get_num_coordinates(rings))
    part_ring_ends = np.cumsum(np.bincount(ring_owner, minlength=len(parts)))
    geom_part_ends = np.cumsum(np.bincount(part_owner, minlength=len(polygons)))
    multi = shapely.get_type_id(polygons) == 6
    return shapely.get_coordinates(rings), ring_ends, part_ring_ends, geom_part_ends, multi


def geojson_geometries(polygons: np.ndarray) -> list[dict[str, Any]]:
    """GeoJSON geometry dicts of polygons and multipolygons (what ``shapely.geometry.mapping``
    gives, with lists for tuples), from one flat coordinate list sliced ring by ring."""
    coords, ring_ends, part_ring_ends, geom_part_ends, multi = _structure(polygons)
    flat, ends = coords.tolist(), ring_ends.tolist()
    rings = [flat[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]
    ends = part_ring_ends.tolist()
    parts = [rings[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]
    ends = geom_part_ends.tolist()
    return [
        {"type": "MultiPolygon", "coordinates": parts[a:b]}
        if is_multi
        else {"type": "Polygon", "coordinates": parts[a]}
        for a, b, is_multi in zip([0, *ends[:-1]], ends, multi.tolist(), strict=True)
    ]


class GeoJSONText(WGS84Features):
    """An encoder for :class:`~terraops.pipelines.segmentation.vectors.StripVectoriser`:
    records → their Features as JSON text, ``", "``-separated (a slice of a
    FeatureCollection's ``features`` array, exactly as ``json.dumps`` writes it),
    so the worker processes that made the polygons also write their JSON."""

    def __call__(self, records: Sequence[PolygonRecord]) -> str:
        if not records:
            return ""
        lonlat = self.lonlat(records)
        texts = polygon_coordinates_text(*_structure(lonlat), decimals=WGS84_DECIMALS)
        if texts is None:  # a coordinate off the grid's exact range: json.dumps writes it
            return json.dumps(self.features(records))[1:-1]
        multi = (shapely.get_type_id(lonlat) == 6).tolist()
        return ", ".join(
            '{"type": "Feature", "geometry": {"type": '
            + ('"MultiPolygon"' if is_multi else '"Polygon"')
            + ', "coordinates": '
            + text
            + '}, "properties": '
            + json.dumps(record.properties)
            + "}"
            for record, text, is_multi in zip(records, texts, multi, strict=True)
        )


def feature_collection_json(chunks: Sequence[str], members: dict[str, Any]) -> str:
    """A FeatureCollection's JSON from :class:`GeoJSONText` chunks and further top-level
    ``members``: the text ``json.dumps`` gives for the same collection, built without
    decoding the chunks."""
    features = ", ".join(c for c in chunks if c)
    rest = json.dumps(members)[1:] if members else "}"
    return (
        '{"type": "FeatureCollection", "features": ['
        + features
        + "]"
        + (", " + rest if members else rest)
    )


class GeoJSONWriter:
    """A FeatureCollection in EPSG:4326, written batch by batch."""

    def __init__(self, path: Path, crs: str) -> None:
        self.path = Path(path)
        self._tmp = _temporary(self.path)
        self._wgs84 = WGS84Features(crs)
        self._file = self._tmp.open("w", encoding="utf-8")
        self._file.write('{"type":"FeatureCollection","features":[\n')
        self._first = True

    def write(self, records: Sequence[PolygonRecord]) -> None:
        for feature in self._wgs84.features(records):
            self._file.write(("" if self._first else ",\n") + json.dumps(feature))
            self._first = False

    def close(self) -> Path:
        self._file.write("\n]}\n")
        self._file.close()
        try:
            atomic.commit(self._tmp, self.path)
        finally:
            self._tmp.unlink(missing_ok=True)
        return self.path

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._tmp.unlink(missing_ok=True)


class FrameWriter:
    """GeoPackage (layer ``footprints``) or GeoParquet in ``crs``, written on close."""

    def __init__(self, path: Path, fmt: str, crs: str) -> None:
        self.path, self.fmt, self.crs = Path(path), fmt, crs
        self._records: list[PolygonRecord] = []

    def write(self, records: Sequence[PolygonRecord]) -> None:
        self._records.extend(records)

    def close(self) -> Path:
        import geopandas as gpd

        frame = gpd.GeoDataFrame(
            [r.properties for r in self._records],
            geometry=[r.geometry for r in self._records],
            crs=self.crs,
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_path(self.path, suffix=self.path.suffix) as tmp:
            if self.fmt == "gpkg":
                frame.to_file(tmp, driver="GPKG", layer="footprints")
            else:
                frame.to_parquet(tmp, index=False)
        return self.path

    def abort(self) -> None:
        self._records = []


def read_vector_file(path: Path) -> Any:
    """A GeoDataFrame from GeoParquet (by the ``.parquet`` suffix) or any file GDAL reads."""
    import geopandas as gpd

    path = Path(path)
    return gpd.read_parquet(path) if path.suffix == ".parquet" else gpd.read_file(path)


def open_writer(path: Path, fmt: str, crs: str) -> VectorWriter:
    if fmt not in VECTOR_FORMATS:
        raise InvalidInputError(
            f"unknown vector format {fmt!r}", hint=f"use one of: {', '.join(VECTOR_FORMATS)}"
        )
    return GeoJSONWriter(path, crs) if fmt == "geojson" else FrameWriter(path, fmt, crs)


class Writers:
    """Several writers fed the same batches (the user's file and the map's GeoJSON)."""

    def __init__(self, writers: Sequence[VectorWriter]) -> None:
        self.writers = list(writers)

    def write(self, records: Sequence[PolygonRecord]) -> None:
        for w in self.writers:
            w.write(records)

    def close(self) -> list[Path]:
        return [w.close() for w in self.writers]

    def abort(self) -> None:
        for w in self.writers:
            w.abort()

    def __enter__(self) -> Writers:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is not None:
            self.abort()
