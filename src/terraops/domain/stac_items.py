"""STAC Items of Landsat Collection 2 and Sentinel-2 L2A: which asset is which band (pure).

The public STAC APIs name the same files differently: USGS, Microsoft
Planetary Computer and Element84's earth-search use the common names of the
``eo`` extension for Landsat (``red``, ``nir08``, ``swir16``, ``lwir11``,
``qa_pixel``, ``mtl.txt``) and early catalogues the file roles (``SR_B4``,
``ST_B10``, ``QA_PIXEL``); for Sentinel-2 earth-search uses common names
(``red``, ``nir``, ``swir16``, ``scl``), Planetary Computer the band ids
(``B04``, ``SCL``) and the Copernicus Data Space ``B04_10m``. Each role below
lists the keys it is known by, tried in order.

Sentinel-2 offsets: earth-search's ``earthsearch:boa_offset_applied = true``
means its COGs already carry the offset (reflectance = DN / 10 000); else the
product metadata (``MTD_MSIL2A.xml`` asset) gives BOA_ADD_OFFSET; else
``s2:processing_baseline`` ≥ 04.00 means −1000 (what Planetary Computer's own
harmonisation example applies); else the asset's ``raster:bands`` scale and
offset. An item that says none of these is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from terraops.domain.sentinel2.metadata import OFFSET_BASELINE, parse_baseline
from terraops.domain.sentinel2.product import S2_BANDS, SCL, BandScaling
from terraops.errors import InvalidInputError

LANDSAT_KEYS: dict[str, tuple[str, ...]] = {
    "MTL": ("mtl.txt", "MTL.txt", "MTL_TXT", "mtl"),
    "B2": ("blue", "SR_B2", "B2"),
    "B3": ("green", "SR_B3", "B3"),
    "B4": ("red", "SR_B4", "B4"),
    "B5": ("nir08", "SR_B5", "B5"),
    "B6": ("swir16", "SR_B6", "B6"),
    "B7": ("swir22", "SR_B7", "B7"),
    "QA": ("qa_pixel", "QA_PIXEL", "BQA"),
}
LANDSAT_THERMAL_KEYS: dict[str, tuple[str, ...]] = {
    "B10": ("lwir11", "B10"),  # Level-1: band-10 digital numbers
    "ST_B10": ("lwir11", "ST_B10", "lwir"),  # Level-2: surface temperature
}
S2_KEYS: dict[str, tuple[str, ...]] = {
    "B02": ("blue", "B02", "B02_10m"),
    "B03": ("green", "B03", "B03_10m"),
    "B04": ("red", "B04", "B04_10m"),
    "B08": ("nir", "B08", "B08_10m"),
    "B11": ("swir16", "B11", "B11_20m"),
    SCL: ("scl", "SCL", "SCL_20m"),
}
S2_METADATA_KEYS = ("product_metadata", "product-metadata", "MTD_MSIL2A")
QUANTIFICATION = 10_000.0
BASELINE_OFFSET = -1000.0


@dataclass(frozen=True)
class ItemSummary:
    """What the scene's lineage records of the item."""

    kind: str  # "landsat" | "sentinel2"
    item_id: str
    collection: str | None
    datetime: str | None
    platform: str | None

    def to_record(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "collection": self.collection,
            "datetime": self.datetime,
            "platform": self.platform,
        }


def summarise(item: Mapping[str, Any]) -> ItemSummary:
    """Which product family an item is, refusing what terraops cannot import."""
    props = item.get("properties") or {}
    item_id = str(item.get("id") or "")
    platform = str(props.get("platform") or "") or None
    collection = str(item.get("collection") or "") or None
    text = f"{platform or ''} {collection or ''}".lower()
    moment = props.get("datetime") or props.get("start_datetime")
    if "landsat" in text or re.match(r"^L[COT]0[89]_", item_id):
        kind = "landsat"
    elif "sentinel-2" in text or "sentinel2" in text or re.match(r"^S2[A-D]_", item_id):
        level = f"{collection or ''} {props.get('s2:product_type', '')} {item_id}".upper()
        if "L1C" in level or "MSI1C" in level:
            raise InvalidInputError(
                f"STAC item {item_id} is Sentinel-2 Level-1C (top of atmosphere)",
                hint="search the Level-2A collection (sentinel-2-l2a)",
            )
        kind = "sentinel2"
    else:
        raise InvalidInputError(
            f"STAC item {item_id or '(no id)'} is neither Landsat Collection 2 nor Sentinel-2 "
            f"L2A (platform {platform or 'missing'}, collection {collection or 'missing'})",
            hint="import items of landsat-c2-l1/l2 or sentinel-2-l2a collections",
        )
    return ItemSummary(kind, item_id, collection, str(moment) if moment else None, platform)


def pick_assets(
    item_id: str,
    assets: Mapping[str, Any],
    keys: Mapping[str, tuple[str, ...]],
    *,
    optional: tuple[str, ...] = (),
) -> dict[str, str]:
    """role → asset key, by the first known key present (then case-insensitively)."""
    lower = {key.lower(): key for key in assets}
    found: dict[str, str] = {}
    for role, candidates in keys.items():
        match = next((k for k in candidates if k in assets), None)
        match = match or next((lower[k.lower()] for k in candidates if k.lower() in lower), None)
        if match is not None:
            found[role] = match
    missing = [r for r in keys if r not in found and r not in optional]
    if missing:
        wanted = "; ".join(f"{r} ({' / '.join(keys[r])})" for r in missing)
        raise InvalidInputError(
            f"STAC item {item_id} has no asset for {wanted} (its assets: "
            f"{', '.join(sorted(assets)) or 'none'})",
            hint="use the item as the STAC API serves it, with its band assets",
        )
    return found


def landsat_thermal_role(level: str) -> str:
    """The thermal file a Landsat product of ``level`` (L1TP, L2SP …) brings."""
    return "ST_B10" if level.upper().startswith("L2") else "B10"


def _raster_scaling(asset: Mapping[str, Any]) -> tuple[float, float] | None:
    bands = asset.get("raster:bands") or []
    if not bands or not isinstance(bands[0], Mapping):
        return None
    scale, offset = bands[0].get("scale"), bands[0].get("offset")
    if not isinstance(scale, int | float) or scale <= 0:
        return None
    return float(scale), float(offset or 0.0)


def s2_scaling(
    props: Mapping[str, Any],
    assets: Mapping[str, Mapping[str, Any]],
    metadata_offsets: Mapping[str, float] | None,
) -> dict[str, BandScaling]:
    """Each band's reflectance scaling, by the rules in the module docstring."""
    bands = list(S2_BANDS.values())
    if props.get("earthsearch:boa_offset_applied") is True:
        note = "earthsearch:boa_offset_applied = true (offset already in the COGs)"
        return {b: BandScaling(0.0, QUANTIFICATION, note) for b in bands}
    if metadata_offsets is not None:
        note = "BOA_ADD_OFFSET of the item's MTD_MSIL2A.xml"
        return {b: BandScaling(metadata_offsets.get(b, 0.0), QUANTIFICATION, note) for b in bands}
    baseline = props.get("s2:processing_baseline") or props.get("sentinel:processing_baseline")
    if baseline is not None:
        parsed = parse_baseline(str(baseline), "the item's s2:processing_baseline")
        add = BASELINE_OFFSET if parsed >= OFFSET_BASELINE else 0.0
        note = f"s2:processing_baseline = {baseline}"
        return {b: BandScaling(add, QUANTIFICATION, note) for b in bands}
    scalings = {b: _raster_scaling(assets[b]) for b in bands}
    if all(s is not None for s in scalings.values()):
        note = "raster:bands scale and offset"
        return {
            b: BandScaling(s[1] / s[0], 1.0 / s[0], note)
            for b, s in scalings.items()
            if s is not None
        }
    raise InvalidInputError(
        "the Sentinel-2 item gives neither s2:processing_baseline nor the bands' "
        "raster:bands scale/offset: the reflectance offset (0 or -0.1) cannot be known",
        hint="use the item as the STAC API serves it (its properties say the baseline)",
    )
