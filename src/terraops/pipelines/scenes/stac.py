"""Import a STAC Item (Landsat Collection 2 Level-1/Level-2, Sentinel-2 L2A) as a scene.

The item says which product it is and where its files are; the pixels are
then imported by the product's own importer, unchanged: a Landsat item's
files are gathered (linked, or downloaded when remote) into a product folder
under the names its MTL gives them and imported as a Landsat product folder;
a Sentinel-2 item's COGs are read in place (GDAL reads remote ones in ranges).
The scene's lineage (``source.stac``) records the item id, collection,
datetime, platform and the href of every asset used.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from terraops.adapters import raster_io, sentinel2_product, stac_items
from terraops.adapters.stac_items import StacItem
from terraops.domain.landsat.mtl import parse_mtl, product_metadata
from terraops.domain.scene_record import Scene
from terraops.domain.sentinel2.metadata import iso_time, parse_product_metadata
from terraops.domain.stac_items import (
    LANDSAT_KEYS,
    LANDSAT_THERMAL_KEYS,
    S2_KEYS,
    S2_METADATA_KEYS,
    ItemSummary,
    landsat_thermal_role,
    pick_assets,
    s2_scaling,
    summarise,
)
from terraops.errors import InvalidInputError
from terraops.pipelines.scenes.importing import _refuse_unsafe_output, import_landsat
from terraops.pipelines.scenes.sentinel2 import import_product

KINDS = ("landsat", "sentinel2")


def _lineage(summary: ItemSummary, stac: StacItem, used: dict[str, str]) -> dict[str, Any]:
    return {
        **summary.to_record(),
        "item": stac.location,
        "stac_version": stac.item.get("stac_version"),
        "assets": {key: stac.hrefs[key] for key in sorted(set(used.values()))},
    }


def _local_inputs(stac: StacItem, used: dict[str, str]) -> list[Path]:
    paths = [] if stac_items.is_remote(stac.location) else [Path(stac.location)]
    return paths + [
        Path(stac.hrefs[k]) for k in used.values() if not stac_items.is_remote(stac.hrefs[k])
    ]


def _landsat(
    stac: StacItem, summary: ItemSummary, out_dir: Path, options: dict[str, Any]
) -> dict[str, Any]:
    item_id = summary.item_id
    assets = stac.item.get("assets") or {}
    keys = pick_assets(item_id, assets, LANDSAT_KEYS, optional=("QA",))
    meta = product_metadata(parse_mtl(stac_items.read_text(keys["MTL"], stac.hrefs[keys["MTL"]])))
    role = landsat_thermal_role(meta.processing_level)
    try:
        keys |= pick_assets(item_id, assets, {role: LANDSAT_THERMAL_KEYS[role]})
    except InvalidInputError as exc:
        raise InvalidInputError(
            exc.message,
            hint="land-surface temperature needs the thermal asset; USGS serves Level-2 "
            "surface temperature in a separate landsat-c2l2-st item",
        ) from exc
    _refuse_unsafe_output(out_dir, options["overwrite"], _local_inputs(stac, keys))
    with tempfile.TemporaryDirectory(prefix="terraops-stac-") as tmp:
        folder = Path(tmp) / meta.product_id
        folder.mkdir()
        for file_role, key in keys.items():
            name = f"{meta.product_id}_MTL.txt" if file_role == "MTL" else None
            name = name or meta.file_names.get(file_role) or f"{meta.product_id}_{file_role}.TIF"
            stac_items.stage(key, stac.hrefs[key], folder / name)
        with raster_io.atomic_directory(Path(out_dir), overwrite=options["overwrite"]) as staging:
            manifest = import_landsat(
                folder,
                staging,
                dem=options["dem"],
                bbox=options["bbox"],
                bbox_crs=options["bbox_crs"],
                correction=options["correction"],
                progress=options["progress"],
            )
            manifest["source"]["stac"] = _lineage(summary, stac, keys)
            raster_io.write_manifest(staging, Scene.from_manifest(manifest, Path(out_dir)))
    return manifest


def _s2_metadata_offsets(stac: StacItem) -> dict[str, float] | None:
    """BOA_ADD_OFFSET from the item's MTD_MSIL2A.xml asset, when it has one."""
    key = next((k for k in S2_METADATA_KEYS if k in stac.hrefs), None)
    if key is None:
        return None
    meta = parse_product_metadata(stac_items.read_text(key, stac.hrefs[key]), f"asset {key!r}")
    return meta.offsets


def _sentinel2(
    stac: StacItem, summary: ItemSummary, out_dir: Path, options: dict[str, Any]
) -> dict[str, Any]:
    item_id = summary.item_id
    assets = stac.item.get("assets") or {}
    props = stac.item.get("properties") or {}
    keys = pick_assets(item_id, assets, S2_KEYS)
    _refuse_unsafe_output(out_dir, options["overwrite"], _local_inputs(stac, keys))
    for key in keys.values():
        stac_items.check_asset(key, stac.hrefs[key])
    offsets = (
        None if props.get("earthsearch:boa_offset_applied") is True else _s2_metadata_offsets(stac)
    )
    band_assets = {role: assets[key] for role, key in keys.items()}
    scaling = s2_scaling(props, band_assets, offsets)
    product = sentinel2_product.open_cogs(
        str(props.get("s2:product_uri") or item_id).removesuffix(".SAFE"),
        {role: stac.hrefs[key] for role, key in keys.items()},
        scaling,
    )
    baseline = props.get("s2:processing_baseline") or props.get("sentinel:processing_baseline")
    tile = props.get("s2:mgrs_tile") or props.get("grid:code")
    record = {"processing_baseline": baseline, "tile": tile, "grid": "from the band files"}
    product = dataclasses.replace(product, record=record)
    lineage = {
        "spacecraft": summary.platform,
        "processing_level": "Level-2A",
        "acquired": iso_time(summary.datetime),
        "footprint": stac.item.get("geometry"),
        "stac": _lineage(summary, stac, keys),
    }
    return import_product(
        product,
        out_dir,
        lineage=lineage,
        inputs=_local_inputs(stac, keys),
        thermal=options["thermal"],
        dem=options["dem"],
        bbox=options["bbox"],
        bbox_crs=options["bbox_crs"],
        overwrite=options["overwrite"],
        progress=options["progress"],
    )


def import_stac(
    location: str,
    out_dir: Path,
    *,
    thermal: Path | None = None,
    dem: Path | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    bbox_crs: str = "EPSG:4326",
    correction: str = "dos1",
    overwrite: bool = False,
    progress: bool = False,
    expect: str | None = None,
) -> dict[str, Any]:
    """A STAC Item JSON (file or URL) → a scene folder; returns its manifest.

    ``expect`` (``"landsat"`` / ``"sentinel2"``) refuses an item of the other kind.
    """
    stac = stac_items.read_item(str(location))
    summary = summarise(stac.item)
    if expect is not None and summary.kind != expect:
        raise InvalidInputError(
            f"STAC item {summary.item_id} is a {summary.kind} item, not {expect}",
            hint="import it with `terraops scene import stac`",
        )
    if summary.kind == "landsat" and thermal is not None:
        raise InvalidInputError(
            "--thermal is for Sentinel-2: a Landsat item brings its own thermal band",
            hint="drop --thermal",
        )
    options = {
        "thermal": thermal,
        "dem": dem,
        "bbox": bbox,
        "bbox_crs": bbox_crs,
        "correction": correction,
        "overwrite": overwrite,
        "progress": progress,
    }
    if summary.kind == "landsat":
        return _landsat(stac, summary, Path(out_dir), options)
    return _sentinel2(stac, summary, Path(out_dir), options)
