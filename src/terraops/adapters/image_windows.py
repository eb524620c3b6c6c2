"""Reflectance read a few rows at a time, from a scene folder or a multiband GeoTIFF.

Segmentation reads the image one *window row* at a time (rasterio
``Window`` reads), so what it holds does not grow with the image's height.
Both sources return the same thing — float32 surface reflectance (0–1) of
the bands red, green, blue, NIR, SWIR, NaN where there is no data — with the
conventions every other reader of the project uses:

- a scene folder: each band's rows go through
  :func:`terraops.domain.features.reflectance_bands` itself (the
  manifest's scale, offset and no-data), the one feature path;
- a user's GeoTIFF: as :func:`terraops.adapters.raster_io.read_multiband_geotiff`
  reads it — bands found by description (case-insensitive) or ``band_order``,
  the file's scale/offset, integers without them taken as reflectance × 10 000
  (with a warning), no-data → NaN, and geographic, rotated or south-up grids
  warped on the fly to a north-up metric grid (UTM for geographic CRSs) by a
  ``WarpedVRT``, which also reads by window.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import rasterio
from rasterio.transform import Affine
from rasterio.windows import Window

from terraops.adapters import raster_io
from terraops.domain.bands import REFLECTANCE_BANDS
from terraops.domain.features import reflectance_bands
from terraops.errors import InvalidInputError, NotFoundError

log = logging.getLogger(__name__)

INTEGER_REFLECTANCE_SCALE = 10_000.0


@dataclass(frozen=True)
class Grid:
    """Where the image's pixels are: size, CRS and a north-up affine transform."""

    height: int
    width: int
    crs: str
    transform: Affine

    @property
    def pixel_size(self) -> float:
        return float(abs(self.transform.a))


class ReflectanceSource:
    """Base: ``read_rows(row_off, rows)`` → float32 (5, rows, width); a context manager."""

    grid: Grid
    name: str
    kind: str

    def read_rows(self, row_off: int, rows: int) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def __enter__(self) -> ReflectanceSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SceneSource(ReflectanceSource):
    """The five band files of a scene folder, scaled by its manifest."""

    kind = "scene"

    def __init__(self, scene_dir: Path) -> None:
        self.scene_dir = Path(scene_dir)
        self.scene = raster_io.read_scene(self.scene_dir)
        self.name = self.scene.name
        layers = self.scene.layer_files
        listed = self.scene.reflectance.bands if self.scene.reflectance else ()
        missing = [b for b in REFLECTANCE_BANDS if b not in layers or b not in listed]
        if missing:
            raise InvalidInputError(
                f"scene {self.name} lacks reflectance bands {missing}",
                hint="segmentation needs red, green, blue, nir and swir",
            )
        self._files = {b: rasterio.open(self.scene_dir / layers[b]) for b in REFLECTANCE_BANDS}
        ref = self._files["red"]
        self.grid = Grid(ref.height, ref.width, ref.crs.to_string(), ref.transform)

    def read_rows(self, row_off: int, rows: int) -> np.ndarray:
        window = Window(0, row_off, self.grid.width, rows)
        raw = {b: f.read(1, window=window) for b, f in self._files.items()}
        bands = reflectance_bands(self.scene, raw)
        return np.stack([bands[b] for b in REFLECTANCE_BANDS]).astype(np.float32)

    def close(self) -> None:
        for f in self._files.values():
            f.close()


class GeoTiffSource(ReflectanceSource):
    """One multiband GeoTIFF (any CRS), read as reflectance on a north-up metric grid."""

    kind = "image"

    def __init__(self, path: Path, band_order: list[str] | None = None) -> None:
        self.path = Path(path)
        self.name = self.path.stem
        if not self.path.is_file():
            raise NotFoundError(f"raster not found: {self.path}")
        try:
            self._src = rasterio.open(self.path)
        except rasterio.errors.RasterioIOError as exc:
            raise InvalidInputError(f"{self.path} is not a readable raster: {exc}") from exc
        try:
            self._indexes = self._band_indexes(band_order)
            self._reader = self._warped_if_needed()
        except BaseException:
            self._src.close()
            raise
        r = self._reader
        self.grid = Grid(r.height, r.width, r.crs.to_string(), r.transform)
        scaling = np.asarray([self._band_scaling(i) for i in self._indexes], np.float32)
        self._scale_offset = (scaling[:, 0, None, None], scaling[:, 1, None, None])

    def _band_indexes(self, band_order: list[str] | None) -> list[int]:
        src = self._src
        if src.crs is None:
            raise InvalidInputError(
                f"{self.path} has no CRS", hint="assign one with gdal_edit.py -a_srs"
            )
        if band_order:
            names = [b.strip().lower() for b in band_order]
            if len(names) != src.count:
                raise InvalidInputError(
                    f"--band-order names {len(names)} bands but {self.path} has {src.count}",
                    hint="name every band of the file in order, e.g. red,green,blue,nir,swir",
                )
        else:
            names = [(d or "").lower() for d in src.descriptions]
        missing = [b for b in REFLECTANCE_BANDS if b not in names]
        if missing:
            raise InvalidInputError(
                f"{self.path}: cannot find bands {missing} (band names: {names})",
                hint="segmentation needs red, green, blue, nir and swir: set band "
                "descriptions or pass --band-order, e.g. red,green,blue,nir,swir",
            )
        return [names.index(b) + 1 for b in REFLECTANCE_BANDS]

    def _warped_if_needed(self) -> Any:
        return raster_io.north_up_reader(self._src)

    def _band_scaling(self, index: int) -> tuple[float, float]:
        src = self._src
        scale, offset = src.scales[index - 1], src.offsets[index - 1]
        if (scale, offset) != (1.0, 0.0):
            return float(scale), float(offset)
        if np.issubdtype(np.dtype(src.dtypes[index - 1]), np.integer):
            log.warning(
                "%s: integer band %d without scale/offset; assuming reflectance x %g",
                self.path,
                index,
                INTEGER_REFLECTANCE_SCALE,
            )
            return 1.0 / INTEGER_REFLECTANCE_SCALE, 0.0
        return 1.0, 0.0

    def read_rows(self, row_off: int, rows: int) -> np.ndarray:
        # All bands in one read: a pixel-interleaved file (GDAL's default for
        # multiband GeoTIFFs) decodes each block once, not once per band.
        window = Window(0, row_off, self.grid.width, rows)
        masked = self._reader.read(self._indexes, window=window, masked=True)
        out = np.ma.filled(masked.astype(np.float32), np.nan)
        scale, offset = self._scale_offset
        if not (np.all(scale == 1.0) and np.all(offset == 0.0)):
            out *= scale
            out += offset
        return out

    def close(self) -> None:
        if self._reader is not self._src:
            self._reader.close()
        self._src.close()


def open_reflectance(
    *, scene: Path | None = None, image: Path | None = None, band_order: list[str] | None = None
) -> ReflectanceSource:
    """The reflectance source of exactly one of ``scene`` (folder) or ``image`` (GeoTIFF)."""
    if (scene is None) == (image is None):
        raise InvalidInputError("give exactly one of --scene DIR and --image FILE.tif")
    if scene is not None:
        return SceneSource(scene)
    assert image is not None
    return GeoTiffSource(image, band_order)
