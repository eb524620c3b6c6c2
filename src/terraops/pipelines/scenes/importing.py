"""Import real imagery as terraops scenes: Landsat 8/9 products and any multispectral GeoTIFF.

An imported scene folder has the layout of a generated one, so the one
feature path reads it unchanged: ``red, green, blue, nir, swir`` as uint16
reflectance × 10 000 (0 = no data), ``lst`` in °C and ``dem`` in m (float32,
NaN = no data), plus a ``clear`` layer (1 = usable pixel). There is no land
cover and no ``physics`` block: a real city has no hidden truth.
``scene.json``'s ``source`` records every file (with its sha256), constant
and method used, so an imported scene can be traced back and recomputed.

Everything is read and computed before the output folder exists; the
folder is then written atomically, so a bad input never leaves half a scene
and never touches an existing one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.crs import CRS
from rasterio.transform import Affine

from terraops.adapters import landsat_product, raster_io
from terraops.adapters.landsat_product import Grid
from terraops.domain.landsat.product import CORRECTIONS
from terraops.domain.landsat.radiometry import KELVIN
from terraops.domain.landsat.scene_constants import LstTally
from terraops.domain.scene.generator import (
    REFLECTANCE_NODATA,
    REFLECTANCE_SCALE,
    to_scaled_reflectance_or_nodata,
)
from terraops.domain.scene.spectra import BANDS
from terraops.domain.scene_record import Scene
from terraops.errors import InvalidInputError
from terraops.pipelines.progress import status_line
from terraops.pipelines.scenes.landsat_strips import StripArea, scene_constants, write_strips

log = logging.getLogger(__name__)

THERMAL_UNITS = ("auto", "celsius", "kelvin")
KELVIN_MEDIAN_ABOVE = 200.0
"""``--thermal-unit auto``: a median above this is kelvin (no city's surface is 200 °C)."""
_PLAUSIBLE_LST_C = (-80.0, 90.0)
_NO_CLEAR_PIXEL = "no clear pixel in the imported area (all of it is no-data or cloud)"
_NO_CLEAR_PIXEL_HINT = "choose another --bbox, or a clearer acquisition"


# --------------------------------------------------------------------------- shared
def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """``"minx,miny,maxx,maxy"`` → four floats, validated."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or not all(np.isfinite(values)):
        raise InvalidInputError(
            f"bad --bbox {text!r}", hint="four numbers: minx,miny,maxx,maxy (e.g. lon,lat,lon,lat)"
        )
    minx, miny, maxx, maxy = values
    if minx >= maxx or miny >= maxy:
        raise InvalidInputError(
            f"bad --bbox {text!r}: min must be below max", hint="order: minx,miny,maxx,maxy"
        )
    return minx, miny, maxx, maxy


def _refuse_unsafe_output(out_dir: Path, overwrite: bool, inputs: Sequence[Path]) -> None:
    """Fail before any work when --out exists, or would replace one of the inputs."""
    out = Path(out_dir).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InvalidInputError(
            f"output folder {out} already exists and is not empty",
            hint="choose another --out or pass --overwrite",
        )
    for path in inputs:
        resolved = Path(path).expanduser().absolute()
        if resolved == out or out in resolved.parents:
            raise InvalidInputError(
                f"--out {out} holds the input {path}; writing there would delete it",
                hint="choose an --out outside the input folders",
            )


def _stats(lst_c: np.ndarray | None, clear: np.ndarray) -> dict[str, Any]:
    stats: dict[str, Any] = {"clear_fraction": round(float(clear.mean()), 4)}
    values = lst_c[clear & np.isfinite(lst_c)] if lst_c is not None else np.empty(0)
    for key, fn in (("lst_min_c", np.min), ("lst_median_c", np.median), ("lst_max_c", np.max)):
        stats[key] = round(float(fn(values)), 2) if values.size else None
    return stats


def _units(reflectance_kind: str, layers: Iterable[str]) -> dict[str, str]:
    units = {b: f"{reflectance_kind} x {REFLECTANCE_SCALE}" for b in BANDS}
    units |= {"lst": "degC", "dem": "m", "clear": "1 = clear, 0 = masked"}
    return {name: units[name] for name in layers}


def _manifest(
    *, name: str, kind: str, grid: Grid, units: dict[str, str], source: dict[str, Any], stats: Any
) -> dict[str, Any]:
    t = grid.transform
    return {
        "name": name,
        "kind": kind,
        "crs": f"EPSG:{grid.epsg}",
        "resolution": float(abs(t.a)),
        "width": grid.width,
        "height": grid.height,
        "transform": [float(v) for v in (t.a, t.b, t.c, t.d, t.e, t.f)],
        "bounds": [float(v) for v in grid.bounds],
        "reflectance": {
            "bands": list(BANDS),
            "scale": 1.0 / REFLECTANCE_SCALE,
            "offset": 0.0,
            "nodata": REFLECTANCE_NODATA,
        },
        "layers": {layer: f"{layer}.tif" for layer in units},
        "units": units,
        "source": source,
        "stats": stats,
    }


def write_imported_scene(
    out_dir: Path,
    *,
    name: str,
    kind: str,
    reflectance: str,
    grid: Grid,
    layers: Mapping[str, np.ndarray],
    clear: np.ndarray,
    source: dict[str, Any],
    overwrite: bool,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """The last step of every importer: the manifest (``reflectance`` names the kind of
    reflectance the bands hold), then the GeoTIFFs and manifest written at once."""
    manifest = _manifest(
        name=name,
        kind=kind,
        grid=grid,
        units=_units(reflectance, layers),
        source=source,
        stats=_stats(layers.get("lst"), clear),
    )
    say("writing GeoTIFFs")
    _write_scene(out_dir, overwrite=overwrite, grid=grid, layers=layers, manifest=manifest)
    return manifest


def _write_scene(
    out_dir: Path,
    *,
    overwrite: bool,
    grid: Grid,
    layers: Mapping[str, np.ndarray],
    manifest: dict[str, Any],
) -> None:
    with raster_io.atomic_directory(Path(out_dir), overwrite=overwrite) as tmp:
        for name, array in layers.items():
            _write_layer(tmp, name, array, grid, manifest["units"][name])
        raster_io.write_manifest(tmp, Scene.from_manifest(manifest, Path(out_dir)))


def _write_layer(folder: Path, name: str, array: np.ndarray, grid: Grid, unit: str) -> None:
    reflectance = name in BANDS
    nodata: float | None = REFLECTANCE_NODATA if reflectance else float("nan")
    raster_io.write_geotiff(
        folder / f"{name}.tif",
        array,
        epsg=grid.epsg,
        transform=grid.transform,
        nodata=None if name == "clear" else nodata,
        description=name,
        scale=1.0 / REFLECTANCE_SCALE if reflectance else None,
        offset=0.0 if reflectance else None,
        tags=_layer_tags(name, unit),
    )


def _layer_tags(name: str, unit: str) -> dict[str, str]:
    return {"terraops_layer": name, "unit": unit}


def _scene_layers(
    reflectance: Mapping[str, np.ndarray],
    clear: np.ndarray,
    lst_c: np.ndarray | None,
    dem: np.ndarray | None,
) -> dict[str, np.ndarray]:
    if not clear.any():
        raise InvalidInputError(_NO_CLEAR_PIXEL, hint=_NO_CLEAR_PIXEL_HINT)
    nan = np.float32(np.nan)
    layers = {
        b: to_scaled_reflectance_or_nodata(np.where(clear, reflectance[b], np.nan)) for b in BANDS
    }
    if lst_c is not None:
        layers["lst"] = np.where(clear, lst_c, nan).astype(np.float32)
    if dem is not None:
        layers["dem"] = dem.astype(np.float32)
    layers["clear"] = clear.astype(np.uint8)
    return layers


# --------------------------------------------------------------------------- Landsat
def _landsat_source(
    product: landsat_product.LandsatProduct, record: dict[str, Any]
) -> dict[str, Any]:
    meta = product.meta
    files = {"MTL": product.mtl, **product.files}
    return {
        "product_id": meta.product_id,
        "scene_id": meta.scene_id,
        "spacecraft": meta.spacecraft,
        "sensor": meta.sensor,
        "processing_level": meta.processing_level,
        "collection": meta.collection,
        "acquired": meta.acquired,
        "wrs_path": meta.wrs_path,
        "wrs_row": meta.wrs_row,
        "sun_elevation_deg": meta.sun_elevation,
        "sun_azimuth_deg": meta.sun_azimuth,
        "earth_sun_distance_au": meta.earth_sun_distance,
        "lst_source": "Level-2 ST_B10" if product.thermal == "st" else "computed from band 10",
        "grid": product.grid_from_mtl or "from the band files",
        "notes": [note for note in (product.grid_from_mtl, *product.notes) if note],
        "warnings": list(product.notes),
        "files": {
            role: {"name": path.name, "sha256": landsat_product.file_sha256(path)}
            for role, path in files.items()
        },
        **record,
    }


def import_landsat(
    product_dir: Path,
    out_dir: Path,
    *,
    dem: Path | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    bbox_crs: str = "EPSG:4326",
    correction: str = "dos1",
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """A Landsat 8/9 Level-1/Level-2 product folder → a scene folder; returns its manifest."""
    if correction not in CORRECTIONS:
        raise InvalidInputError(
            f"unknown correction {correction!r}",
            hint=f"use one of {', '.join(CORRECTIONS)}",
        )
    inputs = [Path(product_dir), *([Path(dem)] if dem else [])]
    _refuse_unsafe_output(out_dir, overwrite, inputs)
    with status_line(progress, "importing Landsat product") as say:
        product = landsat_product.open_product(Path(product_dir))
        grid, window = product.grid, None
        if bbox is not None:
            crs = landsat_product.parse_crs(bbox_crs, product.grid.crs)
            window = landsat_product.bbox_window(product.grid, bbox, crs)
            grid = landsat_product.window_grid(product.grid, window)
        area = StripArea(product, window, grid)
        say(f"{grid.width}x{grid.height} px in {len(area.strips())} strips")
        constants = scene_constants(area, correction=correction, say=say)
        dem_layer, dem_info = _dem(dem, grid)
        names = [*BANDS, "lst", *(["dem"] if dem_layer is not None else []), "clear"]
        units = _units(f"{_landsat_reflectance_kind(product, correction)} reflectance", names)
        with raster_io.atomic_directory(Path(out_dir), overwrite=overwrite) as tmp:
            written = write_strips(
                tmp,
                area,
                correction=correction,
                constants=constants,
                layer_tags={n: _layer_tags(n, units[n]) for n in names if n != "dem"},
                say=say,
            )
            source = _landsat_source(product, written.record)
            source |= area_record(bbox, bbox_crs, window, grid, dem_info)
            manifest = finish_strip_import(
                tmp,
                Path(out_dir),
                name=product.meta.product_id,
                kind="landsat",
                grid=grid,
                units=units,
                source=source,
                clear_pixels=written.clear_pixels,
                lst=written.lst,
                dem_layer=dem_layer,
            )
        return manifest


def area_record(
    bbox: tuple[float, float, float, float] | None,
    bbox_crs: str,
    window: Any,
    grid: Grid,
    dem_info: dict[str, Any] | None,
) -> dict[str, Any]:
    """The manifest's record of what part of a product was imported, and the DEM's."""
    record: dict[str, Any] = {}
    if window is not None:
        record["bbox"] = {"bounds": list(bbox or ()), "crs": bbox_crs}
        record["window"] = {
            "col_off": int(window.col_off),
            "row_off": int(window.row_off),
            "width": grid.width,
            "height": grid.height,
        }
    if dem_info:
        record["dem"] = dem_info
    return record


def finish_strip_import(
    staging: Path,
    out_dir: Path,
    *,
    name: str,
    kind: str,
    grid: Grid,
    units: dict[str, str],
    source: dict[str, Any],
    clear_pixels: int,
    lst: LstTally,
    dem_layer: np.ndarray | None,
) -> dict[str, Any]:
    """After the strips: refuse an area with no clear pixel, write the DEM and the
    manifest into ``staging`` (which becomes ``out_dir`` when its block ends)."""
    if not clear_pixels:
        raise InvalidInputError(_NO_CLEAR_PIXEL, hint=_NO_CLEAR_PIXEL_HINT)
    if dem_layer is not None:
        _write_layer(staging, "dem", dem_layer.astype(np.float32), grid, units["dem"])
    stats = {"clear_fraction": round(clear_pixels / (grid.width * grid.height), 4), **lst.summary()}
    manifest = _manifest(name=name, kind=kind, grid=grid, units=units, source=source, stats=stats)
    raster_io.write_manifest(staging, Scene.from_manifest(manifest, out_dir))
    return manifest


def _landsat_reflectance_kind(product: landsat_product.LandsatProduct, correction: str) -> str:
    if product.meta.reflectance_level == "surface":
        return "Level-2 surface"
    return "DOS1 surface" if correction == "dos1" else "TOA"


def _dem(dem: Path | None, grid: Grid) -> tuple[np.ndarray | None, dict[str, Any] | None]:
    if dem is None:
        return None, None
    array, info = landsat_product.reproject_to_grid(Path(dem), grid, what="DEM")
    if info["coverage"] < 1.0:
        log.warning("the DEM covers %.1f%% of the scene", 100 * info["coverage"])
    return array, info


# --------------------------------------------------------------------------- any GeoTIFF
def _require_five_bands(path: Path, band_order: Sequence[str] | None) -> None:
    count, descriptions = landsat_product.describe_bands(path)
    names = [b.strip().lower() for b in band_order] if band_order else descriptions
    if band_order and len(names) != count:
        raise InvalidInputError(
            f"--band-order names {len(names)} bands but {path.name} has {count}",
            hint="name every band of the file in order, e.g. red,green,blue,nir,swir",
        )
    missing = [b for b in BANDS if b not in names]
    if missing:
        raise InvalidInputError(
            f"{path.name} has no {', '.join(missing)} band (bands: {names or count}): terraops "
            "needs all five bands red, green, blue, nir, swir — the features (NDBI, the "
            "built-up and water classes) use SWIR, so 4-band RGB+NIR imagery is not enough",
            hint="use imagery with a SWIR band (Sentinel-2 B11, Landsat 8/9 band 6) and name "
            "the bands with --band-order, e.g. red,green,blue,nir,swir",
        )


def _thermal_celsius(values: np.ndarray, unit: str) -> tuple[np.ndarray, str]:
    finite = values[np.isfinite(values)]
    median = float(np.median(finite)) if finite.size else float("nan")
    if unit == "auto":
        unit = "kelvin" if median > KELVIN_MEDIAN_ABOVE else "celsius"
    celsius = values - np.float32(KELVIN) if unit == "kelvin" else values
    median_c = median - KELVIN if unit == "kelvin" else median
    low, high = _PLAUSIBLE_LST_C
    if not low <= median_c <= high:
        raise InvalidInputError(
            f"the thermal layer's median is {median:g}, i.e. {median_c:.1f} °C as {unit}: "
            "not a surface temperature",
            hint="pass temperatures in kelvin or °C (apply the product's scale/offset first) "
            "and set --thermal-unit",
        )
    return celsius.astype(np.float32), unit


def import_geotiff(
    bands_path: Path,
    out_dir: Path,
    *,
    band_order: Sequence[str] | None = None,
    thermal: Path | None = None,
    thermal_unit: str = "auto",
    dem: Path | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Any multispectral GeoTIFF (+ optional thermal and DEM) → a scene folder."""
    if thermal_unit not in THERMAL_UNITS:
        raise InvalidInputError(
            f"unknown thermal unit {thermal_unit!r}", hint=f"use {', '.join(THERMAL_UNITS)}"
        )
    bands_path = Path(bands_path)
    inputs = [p for p in (bands_path, thermal, dem) if p is not None]
    _refuse_unsafe_output(out_dir, overwrite, [Path(p) for p in inputs])
    with status_line(progress, "importing GeoTIFF") as say:
        _require_five_bands(bands_path, band_order)
        image = raster_io.read_multiband_geotiff(bands_path, band_order=band_order)
        height, width = image.bands["red"].shape
        res, (x0, y0) = image.resolution, image.origin
        grid = Grid(CRS.from_wkt(image.crs_wkt), Affine(res, 0, x0, 0, -res, y0), width, height)
        clear = np.logical_and.reduce([np.isfinite(image.bands[b]) for b in BANDS])
        # A file without a no-data value, once warped, reads 0 outside its footprint;
        # 0 in all five bands is no real surface, so it is no data too.
        clear &= ~np.logical_and.reduce([image.bands[b] == 0 for b in BANDS])
        source: dict[str, Any] = {
            "file": bands_path.name,
            "sha256": landsat_product.file_sha256(bands_path),
            "band_order": list(band_order) if band_order else "band descriptions",
        }
        lst_c = None
        if thermal is not None:
            say("thermal")
            values, info = landsat_product.reproject_to_grid(Path(thermal), grid, what="thermal")
            lst_c, detected = _thermal_celsius(values, thermal_unit)
            clear &= np.isfinite(lst_c)
            source["thermal"] = info | {"unit": detected, "requested_unit": thermal_unit}
        dem_layer, dem_info = _dem(dem, grid)
        if dem_info:
            source["dem"] = dem_info
        layers = _scene_layers(image.bands, clear, lst_c, dem_layer)
        source["masked_fraction"] = round(float(1.0 - clear.mean()), 6)
        return write_imported_scene(
            out_dir,
            name=bands_path.stem,
            kind="geotiff",
            reflectance="reflectance",
            grid=grid,
            layers=layers,
            clear=clear,
            source=source,
            overwrite=overwrite,
            say=say,
        )
