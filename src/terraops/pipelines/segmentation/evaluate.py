"""Score a predicted mask or polygons against the truth: pixel IoU/F1 per class, object F1.

Either side may be a mask (a single-band GeoTIFF of class codes, 255 = no
data) or vectors (GeoJSON, GeoPackage, GeoParquet, Shapefile) whose features
carry ``class_id`` or ``class`` (a name), or none of them and take
``default_class`` (e.g. a file of building footprints). The two are brought
onto one grid:

- mask vs mask: the grids must be identical (CRS, transform, size) — a
  resampled comparison would score the resampling, so a mismatch is an error
  that says how to fix it;
- vectors vs mask: the vectors are reprojected to the mask's CRS and
  rasterised onto its grid (a pixel takes a polygon's class when its centre
  is inside; everything else is background);
- vectors vs vectors: both are rasterised onto a common grid in a projected
  CRS at ``resolution`` metres.

Pixel scores come from :func:`~terraops.domain.segmentation.metrics.pixel_metrics`
(truth no-data ignored); object scores from
:func:`~terraops.domain.segmentation.metrics.object_f1` on polygons (vector
features as given; mask regions via ``mask_instances``), SpaceNet style.
Evaluation reads both inputs whole: it is a check, not the streaming path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio import features as rio_features
from rasterio.crs import CRS
from rasterio.transform import Affine, from_origin

from terraops.adapters import raster_files, vector_files
from terraops.domain.segmentation.classes import SEGMENTATION_NODATA, SegClass
from terraops.domain.segmentation.metrics import (
    SPACENET_IOU_THRESHOLD,
    mask_instances,
    mean_iou,
    object_f1,
    pixel_metrics,
)
from terraops.errors import InvalidInputError, NotFoundError
from terraops.services.segmentation import SEGMENTATION

MASK_SUFFIXES = (".tif", ".tiff")
VECTOR_SUFFIXES = (".geojson", ".json", ".gpkg", ".parquet", ".shp")


@dataclass(frozen=True)
class GridSpec:
    crs: CRS
    transform: Affine
    height: int
    width: int

    def describe(self) -> str:
        return (
            f"{self.crs.to_string()} {abs(self.transform.a):g} m, {self.width}×{self.height} px, "
            f"origin ({self.transform.c:g}, {self.transform.f:g})"
        )


@dataclass(frozen=True)
class MaskInput:
    path: Path
    labels: np.ndarray
    grid: GridSpec


def read_mask(path: Path) -> MaskInput:
    """A class-code mask: one integer band with a CRS."""
    band = raster_files.read_first_band(path)
    if band.count != 1 or not np.issubdtype(np.dtype(band.dtype), np.integer):
        raise InvalidInputError(
            f"{path} is not a class mask ({band.count} band(s) of {band.dtype})",
            hint="give a single-band integer GeoTIFF of class codes (255 = no data)",
        )
    if band.crs is None:
        raise InvalidInputError(f"{path} has no CRS", hint="assign one with gdal_edit.py")
    labels, nodata = band.data, band.nodata
    grid = GridSpec(band.crs, band.transform, *labels.shape)
    if nodata is not None and nodata != SEGMENTATION_NODATA:
        labels = np.where(labels == nodata, SEGMENTATION_NODATA, labels)
    return MaskInput(Path(path), labels.astype(np.uint8), grid)


def read_vector(path: Path, default_class: str | None) -> Any:
    """Polygons with a ``class_id`` column (from ``class_id``, ``class`` or the default)."""
    try:
        frame = vector_files.read_vector_file(path)
    except Exception as exc:
        raise InvalidInputError(f"{path} is not a readable vector file: {exc}") from exc
    if frame.crs is None:
        raise InvalidInputError(f"{path} has no CRS", hint="GeoJSON is EPSG:4326 by definition")
    names = {name: c for c, name in SEGMENTATION.classes.items()}
    if "class_id" in frame.columns:
        ids = frame["class_id"].astype(int)
    elif "class" in frame.columns:
        unknown = sorted(set(frame["class"].astype(str)) - set(names))
        if unknown:
            raise InvalidInputError(f"{path}: unknown classes {unknown}", hint=f"known: {names}")
        ids = frame["class"].astype(str).map(names)
    elif default_class is not None:
        if default_class not in names:
            raise InvalidInputError(f"unknown class {default_class!r}", hint=f"known: {names}")
        ids = np.full(len(frame), names[default_class])
    else:
        raise InvalidInputError(
            f"{path}: features have neither class_id nor class",
            hint="pass --default-class building (every feature is a building)",
        )
    frame = frame.assign(class_id=np.asarray(ids, dtype=int))
    return frame[~frame.geometry.is_empty & frame.geometry.notna()]


def _load(path: Path, default_class: str | None) -> MaskInput | Any:
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"not found: {path}")
    suffix = path.suffix.lower()
    if suffix in MASK_SUFFIXES:
        return read_mask(path)
    if suffix in VECTOR_SUFFIXES:
        return read_vector(path, default_class)
    raise InvalidInputError(
        f"{path}: unknown input type {suffix!r}",
        hint=f"masks: {', '.join(MASK_SUFFIXES)}; vectors: {', '.join(VECTOR_SUFFIXES)}",
    )


def _same_grid(a: GridSpec, b: GridSpec) -> bool:
    tol = 1e-6 * abs(a.transform.a)
    return (
        a.crs == b.crs
        and (a.height, a.width) == (b.height, b.width)
        and a.transform.almost_equals(b.transform, precision=tol)
    )


def rasterise(frame: Any, grid: GridSpec) -> np.ndarray:
    """Class codes of the polygons on ``grid`` (pixel centres; background elsewhere)."""
    projected = frame.to_crs(grid.crs)
    shapes = [(g, int(c)) for g, c in zip(projected.geometry, projected["class_id"], strict=True)]
    if not shapes:
        return np.zeros((grid.height, grid.width), dtype=np.uint8)
    return rio_features.rasterize(
        shapes,
        out_shape=(grid.height, grid.width),
        transform=grid.transform,
        fill=int(SegClass.BACKGROUND),
        dtype="uint8",
    )


def _common_grid(pred: Any, truth: Any, resolution: float) -> GridSpec:
    crs = pred.crs if pred.crs.is_projected else pred.estimate_utm_crs()
    bounds = np.array([pred.to_crs(crs).total_bounds, truth.to_crs(crs).total_bounds])
    if not np.isfinite(bounds).all():
        raise InvalidInputError("both vector inputs are empty: nothing to compare")
    west, south = bounds[:, 0].min(), bounds[:, 1].min()
    east, north = bounds[:, 2].max(), bounds[:, 3].max()
    width = max(1, int(np.ceil((east - west) / resolution)))
    height = max(1, int(np.ceil((north - south) / resolution)))
    if width * height > 400_000_000:
        raise InvalidInputError("the common grid is too large", hint="raise --resolution")
    return GridSpec(
        CRS.from_user_input(crs), from_origin(west, north, resolution, resolution), height, width
    )


def _polygons(side: MaskInput | Any, class_id: int, grid: GridSpec) -> list[Any]:
    if isinstance(side, MaskInput):
        return mask_instances(side.labels, class_id, transform=side.grid.transform)
    frame = side[side["class_id"] == class_id].to_crs(grid.crs)
    return list(frame.geometry)


def evaluate(
    pred_path: Path,
    truth_path: Path,
    *,
    object_classes: Sequence[str] = ("building",),
    default_class: str | None = None,
    resolution: float = 1.0,
    iou_threshold: float = SPACENET_IOU_THRESHOLD,
) -> dict[str, Any]:
    """Pixel and object scores of ``pred`` against ``truth`` (JSON-able)."""
    pred, truth = _load(pred_path, default_class), _load(truth_path, default_class)
    if isinstance(pred, MaskInput) and isinstance(truth, MaskInput):
        if not _same_grid(pred.grid, truth.grid):
            raise InvalidInputError(
                f"prediction and truth masks are on different grids: {pred.grid.describe()} vs "
                f"{truth.grid.describe()}",
                hint="resample one onto the other's grid (gdalwarp -t_srs -te -tr -r near), "
                "or compare against a vector file",
            )
        grid, p, t = pred.grid, pred.labels, truth.labels
    elif isinstance(truth, MaskInput):
        grid, p, t = truth.grid, rasterise(pred, truth.grid), truth.labels
    elif isinstance(pred, MaskInput):
        grid, p, t = pred.grid, pred.labels, rasterise(truth, pred.grid)
    else:
        if not resolution > 0:
            raise InvalidInputError("--resolution must be > 0")
        grid = _common_grid(pred, truth, resolution)
        p, t = rasterise(pred, grid), rasterise(truth, grid)
    classes = SEGMENTATION.classes
    scores = pixel_metrics(p, t, classes, ignore=SEGMENTATION_NODATA)
    names = {name: c for c, name in classes.items()}
    unknown = [c for c in object_classes if c not in names]
    if unknown:
        raise InvalidInputError(f"unknown object classes {unknown}", hint=f"known: {list(names)}")
    objects = {}
    for name in object_classes:
        found = object_f1(
            _polygons(pred, names[name], grid),
            _polygons(truth, names[name], grid),
            iou_threshold=iou_threshold,
        )
        objects[name] = {**found.as_dict(), "iou_threshold": iou_threshold}
    foreground = {c: s for c, s in scores.items() if c != int(SegClass.BACKGROUND)}
    return {
        "pred": str(pred_path),
        "truth": str(truth_path),
        "compared": f"{_kind(pred)} vs {_kind(truth)}",
        "grid": {
            "crs": grid.crs.to_string(),
            "pixel_size": abs(grid.transform.a),
            "width": grid.width,
            "height": grid.height,
        },
        "pixel": {
            classes[c]: {
                "iou": s.iou,
                "f1": s.f1,
                "precision": s.precision,
                "recall": s.recall,
                "support": s.support,
                "tp": s.tp,
                "fp": s.fp,
                "fn": s.fn,
            }
            for c, s in scores.items()
        },
        "miou": mean_iou(scores),
        "miou_foreground": mean_iou(foreground),
        "objects": objects,
    }


def _kind(side: MaskInput | Any) -> str:
    return "mask" if isinstance(side, MaskInput) else "vector"
