"""GeoTIFF and scene-folder I/O (rasterio): the only place scene pixels touch disk.

* Layers are written as tiled, deflate-compressed GeoTIFFs with a real UTM
  CRS, an affine transform and a no-data value; nothing time-dependent is
  embedded, so the same arrays give byte-identical files.
* A scene folder (``scene.json`` + one GeoTIFF per layer) is read through
  :func:`read_scene`, which validates the manifest once into a
  :class:`~terraops.domain.scene_record.Scene` that the layer readers then
  take. It is written atomically: into a temporary sibling folder, renamed
  into place at the end, removed on any error.
* Bring-your-own imagery: :func:`read_multiband_geotiff` reads one multiband
  GeoTIFF in any CRS (geographic or rotated grids are warped to UTM), applies
  the scale/offset tags, and turns no-data into NaN.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.errors
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform
from rasterio.warp import transform as warp_points
from rasterio.windows import Window

from terraops.adapters import atomic
from terraops.domain.scene_record import MANIFEST_NAME as MANIFEST_NAME  # re-exported
from terraops.domain.scene_record import Scene
from terraops.errors import InvalidInputError, NotFoundError

log = logging.getLogger(__name__)

_BLOCK = 256


# --------------------------------------------------------------------------- single layers
def write_geotiff(
    path: Path,
    array: np.ndarray,
    *,
    epsg: int,
    transform: Affine,
    nodata: float | None = None,
    description: str | None = None,
    scale: float | None = None,
    offset: float | None = None,
    tags: Mapping[str, str] | None = None,
) -> None:
    """Write one single-band layer as a tiled, deflate-compressed GeoTIFF."""
    height, width = array.shape
    with geotiff_rows_writer(
        path,
        height=height,
        width=width,
        dtype=array.dtype,
        epsg=epsg,
        transform=transform,
        nodata=nodata,
        description=description,
        scale=scale,
        offset=offset,
        tags=tags,
    ) as write_rows:
        write_rows(array, 0)


RowsWriter = Callable[[np.ndarray, int], None]
"""``write(rows, first_row)``: a band of full-width rows into an open layer."""
GeoTiffRows = AbstractContextManager[RowsWriter]


@contextmanager
def geotiff_rows_writer(
    path: Path,
    *,
    height: int,
    width: int,
    dtype: np.dtype[Any],
    epsg: int,
    transform: Affine,
    nodata: float | None = None,
    description: str | None = None,
    scale: float | None = None,
    offset: float | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[RowsWriter]:
    """A layer written band of rows by band of rows, as :func:`write_geotiff` writes
    it whole: an import in strips never holds a whole-scene layer."""
    # A single tile as large as the image is written as a strip by GDAL; keep >= 2 tiles.
    side = min(height, width)
    block = _BLOCK if side > _BLOCK else max(16, (side // 2) // 16 * 16)
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "count": 1,
        "dtype": np.dtype(dtype).name,
        "crs": CRS.from_epsg(epsg),
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": block,
        "blockysize": block,
        "compress": "deflate",
        "predictor": 3 if np.issubdtype(dtype, np.floating) else 2,
        "interleave": "band",
    }
    with rasterio.open(path, "w", **profile) as dst:

        def write_rows(rows: np.ndarray, first_row: int) -> None:
            dst.write(rows, 1, window=Window(0, first_row, width, rows.shape[0]))

        yield write_rows
        if description:
            dst.set_band_description(1, description)
        if scale is not None or offset is not None:
            dst.scales = (scale if scale is not None else 1.0,)
            dst.offsets = (offset if offset is not None else 0.0,)
        if tags:
            dst.update_tags(**tags)


@dataclass(frozen=True)
class LayerInfo:
    epsg: int | None
    transform: Affine
    width: int
    height: int
    nodata: float | None
    dtype: str
    bounds: tuple[float, float, float, float]


def read_geotiff(path: Path) -> tuple[np.ndarray, LayerInfo]:
    """Read band 1 of a GeoTIFF as stored (no scaling) with its georeference."""
    if not path.is_file():
        raise NotFoundError(f"raster not found: {path}")
    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise InvalidInputError(f"{path} is not a readable GeoTIFF: {exc}") from exc
    with src:
        array = src.read(1)
        info = LayerInfo(
            epsg=src.crs.to_epsg() if src.crs else None,
            transform=src.transform,
            width=src.width,
            height=src.height,
            nodata=src.nodata,
            dtype=src.dtypes[0],
            bounds=tuple(src.bounds),
        )
    return array, info


# --------------------------------------------------------------------------- scene folders
@contextmanager
def atomic_directory(out_dir: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder that becomes ``out_dir`` only on success.

    Refuses to replace an existing non-empty folder unless ``overwrite``; on
    any error the temporary folder is removed and ``out_dir`` is untouched.
    """
    out_dir = Path(out_dir).expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInputError(f"{out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise InvalidInputError(
            f"output folder {out_dir} already exists and is not empty",
            hint="choose another --out or pass --overwrite",
        )
    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(
            f"cannot create output folder {parent}: {exc.strerror or exc}",
            hint="choose a writable --out",
        ) from exc
    with ExitStack() as stack:
        try:
            staging = stack.enter_context(atomic.atomic_directory_path(out_dir))
        except OSError as exc:
            raise InvalidInputError(
                f"cannot write to {parent}: {exc.strerror or exc}", hint="choose a writable --out"
            ) from exc
        yield staging


def write_manifest(scene_dir: Path, scene: Scene) -> None:
    """Write ``scene.json`` (sorted keys, so equal scenes give byte-identical files)."""
    text = json.dumps(scene.to_manifest(), indent=2, sort_keys=True) + "\n"
    (Path(scene_dir) / MANIFEST_NAME).write_text(text, encoding="utf-8")


def read_scene(scene_dir: Path) -> Scene:
    """The scene folder's manifest, read once and validated (:meth:`Scene.from_manifest`)."""
    path = Path(scene_dir) / MANIFEST_NAME
    if not path.is_file():
        raise NotFoundError(
            f"no scene at {scene_dir} ({MANIFEST_NAME} missing)",
            hint="create one with `terraops scene generate --seed 1 --out DIR`",
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path} is not valid UTF-8 JSON: {exc}") from exc
    return Scene.from_manifest(manifest, Path(scene_dir))


def layer_path(scene: Scene, name: str) -> Path:
    """The file of one of the scene's layers; NotFoundError when the scene has none."""
    if not scene.has_layer(name):
        raise NotFoundError(f"scene {scene.folder} has no layer {name!r}")
    return scene.folder / scene.layer_files[name]


def read_layer(scene: Scene, name: str) -> np.ndarray:
    """One layer of the scene as stored (no scaling)."""
    array, _ = read_geotiff(layer_path(scene, name))
    return array


def read_layers(scene: Scene, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The named layers (all by default) as stored (no scaling)."""
    wanted = list(scene.layer_files) if names is None else list(names)
    return {name: read_layer(scene, name) for name in wanted}


class LayerRows:
    """A scene's layer files read by bands of whole rows.

    What a windowed pass over a scene holds is one band of rows per layer,
    whatever the scene's height (:mod:`terraops.pipelines.scenes.windowed_cells`).
    Each read opens and closes its file: GDAL keeps every block an open
    dataset has read in its cache (up to 5 % of the RAM by default), which
    would hold the whole scene after one pass.
    """

    def __init__(self, scene: Scene, names: Sequence[str]) -> None:
        self._paths = {name: layer_path(scene, name) for name in names}

    def read(self, name: str, row0: int, row1: int) -> np.ndarray:
        """Rows ``row0 … row1 - 1`` of layer ``name``, as stored."""
        with rasterio.open(self._paths[name]) as src:
            return np.asarray(src.read(1, window=Window(0, row0, src.width, row1 - row0)))

    def close(self) -> None:
        """Nothing is held open between reads (kept for the context manager)."""


@contextmanager
def layer_rows(scene: Scene, names: Sequence[str]) -> Iterator[LayerRows]:
    """The named layers of ``scene`` open for reads by rows (closed on exit)."""
    reader = LayerRows(scene, names)
    try:
        yield reader
    finally:
        reader.close()


# --------------------------------------------------------------------------- bring your own
@dataclass(frozen=True)
class MultibandImage:
    bands: dict[str, np.ndarray]  # reflectance 0–1, NaN = no data
    resolution: float
    origin: tuple[float, float]
    epsg: int | None
    crs_wkt: str


def utm_for(src: Any) -> CRS:
    """The WGS 84 UTM zone containing the raster's centre."""
    left, bottom, right, top = src.bounds
    lon, lat = warp_points(src.crs, "EPSG:4326", [(left + right) / 2], [(bottom + top) / 2])
    zone = int((lon[0] + 180) // 6) + 1
    return CRS.from_epsg((32600 if lat[0] >= 0 else 32700) + zone)


def north_up_reader(src: Any) -> Any:
    """``src`` itself, or a bilinear ``WarpedVRT`` of it on a north-up metric grid.

    Geographic rasters are warped to the UTM zone of their centre, rotated or
    south-up ones to a north-up grid in their own CRS; both read by window like
    the file. The caller closes a returned VRT (it is not ``src``).
    """
    t = src.transform
    if not (src.crs.is_geographic or not t.is_rectilinear or t.e > 0):
        return src
    dst_crs = utm_for(src) if src.crs.is_geographic else src.crs
    transform, width, height = calculate_default_transform(
        src.crs, dst_crs, src.width, src.height, *src.bounds
    )
    return WarpedVRT(
        src,
        crs=CRS.from_user_input(dst_crs),
        transform=transform,
        width=width,
        height=height,
        resampling=Resampling.bilinear,
        src_nodata=src.nodata,
        nodata=src.nodata,
    )


def read_multiband_geotiff(
    path: Path, *, band_order: Sequence[str] | None = None
) -> MultibandImage:
    """Read a user's multiband GeoTIFF as reflectance bands on a north-up metric grid.

    Bands are found by their descriptions (``red``, ``green``, ``blue``,
    ``nir``, ``swir``; case-insensitive) or by ``band_order``. Integer data
    are scaled by the file's scale/offset; integers without them are assumed
    to be reflectance × 10 000 (Sentinel-2 / Landsat C2 convention after
    their own offsets) and a warning says so.
    """
    wanted = ("red", "green", "blue", "nir", "swir")
    if not Path(path).is_file():
        raise NotFoundError(f"raster not found: {path}")
    with rasterio.open(path) as src:
        if src.crs is None:
            raise InvalidInputError(
                f"{path} has no CRS", hint="assign one with gdal_edit.py -a_srs"
            )
        names = list(band_order) if band_order else [(d or "").lower() for d in src.descriptions]
        missing = [b for b in wanted if b not in names]
        if missing:
            raise InvalidInputError(
                f"{path}: cannot find bands {missing} (band names: {names})",
                hint="set band descriptions or pass the band order, e.g. red,green,blue,nir,swir",
            )
        reader = north_up_reader(src)
        try:
            bands = _read_reflectance(reader, src, names, wanted, path)
            res = abs(reader.transform.a)
            origin = (reader.transform.c, reader.transform.f)
            crs = reader.crs
        finally:
            if reader is not src:
                reader.close()
    return MultibandImage(bands, float(res), origin, crs.to_epsg(), crs.to_wkt())


def _read_reflectance(
    reader: Any, src: Any, names: list[str], wanted: Sequence[str], path: Path
) -> dict[str, np.ndarray]:
    bands: dict[str, np.ndarray] = {}
    warned = False
    for name in wanted:
        idx = names.index(name) + 1
        masked = reader.read(idx, masked=True)
        data = np.ma.filled(masked.astype(np.float64), np.nan)
        scale, offset = src.scales[idx - 1], src.offsets[idx - 1]
        if (scale, offset) != (1.0, 0.0):
            data = data * scale + offset
        elif np.issubdtype(np.dtype(src.dtypes[idx - 1]), np.integer):
            data = data / 10_000.0
            if not warned:
                log.warning(
                    "%s: integer bands without scale/offset; assuming reflectance x 10000", path
                )
                warned = True
        bands[name] = data
    return bands


def raster_crs_and_bounds(path: Path) -> tuple[str, tuple[float, float, float, float]]:
    """A raster file's CRS (as a string) and its bounds in that CRS (left, bottom, right, top)."""
    with rasterio.open(path) as src:
        left, bottom, right, top = src.bounds
        return src.crs.to_string(), (left, bottom, right, top)
