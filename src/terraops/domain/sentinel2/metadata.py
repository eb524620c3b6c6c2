"""Sentinel-2 L2A metadata: ``MTD_MSIL2A.xml``, ``MTD_TL.xml`` and the SAFE name.

Elements are found by their local name, whatever the namespace: the PSD
versions of baselines 02.xx and 04.00+ differ in namespaces (``psd-14`` …) and
in a few element names (``L2A_BOA_QUANTIFICATION_VALUE`` in older products),
not in what is read here.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime

from terraops.errors import InvalidInputError

BAND_IDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"
)  # fmt: skip
"""Band order of the metadata's ``band_id`` attributes (PSD: 0 = B01 … 12 = B12)."""
OFFSET_BASELINE = (4, 0)
"""From processing baseline 04.00 the L2A digital numbers carry BOA_ADD_OFFSET."""
SAFE_NAME = re.compile(
    r"^(?P<mission>S2[A-D])_MSIL2A_(?P<sensing>\d{8}T\d{6})_N(?P<baseline>\d{4})_"
    r"R(?P<orbit>\d{3})_T(?P<tile>\d{2}[A-Z]{3})_(?P<generated>\d{8}T\d{6})(\.SAFE)?$"
)
_REDOWNLOAD = "the product's metadata is damaged; download the product again"


@dataclass(frozen=True)
class ProductMetadata:
    """What the import needs from ``MTD_MSIL2A.xml``."""

    product_uri: str
    spacecraft: str
    processing_level: str
    product_type: str
    baseline: str  # "04.00"
    sensing_start: str | None  # ISO 8601 UTC
    relative_orbit: int | None
    quantification: float
    offsets: dict[str, float]  # band name ("B04") → BOA_ADD_OFFSET; empty before 04.00
    footprint: list[tuple[float, float]]  # (lon, lat) ring, empty when not given
    image_files: tuple[str, ...]  # IMAGE_FILE entries (relative, no extension)
    scl_legend: dict[int, str]  # SCL_INDEX → SCL_TEXT as the product states it


@dataclass(frozen=True)
class TileGeometry:
    """The tile grid of ``MTD_TL.xml``: EPSG code and, per resolution (m), origin and size."""

    epsg: int
    origins: dict[int, tuple[float, float]]  # resolution → (ULX, ULY) of the UL pixel's corner
    sizes: dict[int, tuple[int, int]]  # resolution → (NCOLS, NROWS)
    sensing_time: str | None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse(text: str, what: str) -> ET.Element:
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        raise InvalidInputError(f"{what} is not well-formed XML ({exc})", hint=_REDOWNLOAD) from exc


def _all(root: ET.Element, name: str) -> list[ET.Element]:
    return [el for el in root.iter() if _local(el.tag) == name]


def _text(root: ET.Element, *names: str) -> str | None:
    for name in names:
        for el in _all(root, name):
            if el.text and el.text.strip():
                return el.text.strip()
    return None


def _number(text: str | None, what: str, source: str) -> float:
    try:
        return float(text or "")
    except ValueError:
        shown = "missing" if text is None else repr(text)
        raise InvalidInputError(
            f"{source}: {what} is {shown}, not a number", hint=_REDOWNLOAD
        ) from None


def parse_baseline(text: str | None, source: str) -> tuple[int, int]:
    """``"04.00"`` → (4, 0); anything else is a clear error (the offset depends on it)."""
    match = re.fullmatch(r"(\d{1,2})\.(\d{2})", (text or "").strip())
    if not match:
        shown = "missing" if not text else repr(text)
        raise InvalidInputError(
            f"{source}: PROCESSING_BASELINE is {shown}, not a baseline like 04.00",
            hint="the baseline decides the reflectance offset; " + _REDOWNLOAD,
        )
    return int(match.group(1)), int(match.group(2))


def iso_time(text: str | None) -> str | None:
    """A metadata timestamp (``2022-06-14T11:21:21.024Z``) → ISO 8601 UTC, or None."""
    if not text:
        return None
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _offsets(root: ET.Element, names: dict[int, str], source: str) -> dict[str, float]:
    offsets: dict[str, float] = {}
    for el in _all(root, "BOA_ADD_OFFSET"):
        band_id = el.get("band_id", "")
        if not band_id.isdigit() or int(band_id) not in names:
            raise InvalidInputError(f"{source}: BOA_ADD_OFFSET with band_id {band_id!r}")
        offsets[names[int(band_id)]] = _number(el.text, "a BOA_ADD_OFFSET", source)
    return offsets


def _band_names(root: ET.Element) -> dict[int, str]:
    """band_id → "B04", from Spectral_Information when listed, else the PSD order."""
    names = dict(enumerate(BAND_IDS))
    for el in _all(root, "Spectral_Information"):
        band_id, physical = el.get("bandId", ""), el.get("physicalBand", "")
        if band_id.isdigit() and re.fullmatch(r"B(\d{1,2}|8A)", physical):
            names[int(band_id)] = "B8A" if physical == "B8A" else f"B{int(physical[1:]):02d}"
    return names


def _footprint(root: ET.Element) -> list[tuple[float, float]]:
    text = _text(root, "EXT_POS_LIST")
    if not text:
        return []
    values = [float(v) for v in text.split()]
    return [(lon, lat) for lat, lon in zip(values[0::2], values[1::2], strict=False)]


def _scl_legend(root: ET.Element) -> dict[int, str]:
    legend: dict[int, str] = {}
    for el in _all(root, "Scene_Classification_ID"):
        index, text = _text(el, "SCL_INDEX"), _text(el, "SCL_TEXT")
        if index is not None and index.isdigit() and text:
            legend[int(index)] = text
    return legend


def parse_product_metadata(text: str, source: str = "MTD_MSIL2A.xml") -> ProductMetadata:
    """Parse and check ``MTD_MSIL2A.xml``.

    Refuses a Level-1C product, a missing or malformed baseline, and offsets that
    contradict the baseline (an offset list is what baseline ≥ 04.00 products
    have, and only they): either means the reflectance would be wrong by 0.1.
    """
    root = _parse(text, source)
    product_type = _text(root, "PRODUCT_TYPE") or ""
    level = _text(root, "PROCESSING_LEVEL") or ""
    if "L1C" in product_type or level == "Level-1C" or _local(root.tag).startswith("Level-1C"):
        raise InvalidInputError(
            f"{source} describes a Level-1C (top-of-atmosphere) product",
            hint="import a Level-2A product (MSIL2A: surface reflectance with its scene "
            "classification)",
        )
    if "2A" not in product_type and level != "Level-2A":
        raise InvalidInputError(
            f"{source} is not the metadata of a Sentinel-2 Level-2A product "
            f"(PRODUCT_TYPE {product_type or 'missing'})",
            hint="pass the .SAFE folder of a Sentinel-2 MSIL2A product",
        )
    baseline_text = _text(root, "PROCESSING_BASELINE")
    baseline = parse_baseline(baseline_text, source)
    quantification = _number(
        _text(root, "BOA_QUANTIFICATION_VALUE", "L2A_BOA_QUANTIFICATION_VALUE"),
        "BOA_QUANTIFICATION_VALUE",
        source,
    )
    if quantification <= 0:
        raise InvalidInputError(f"{source}: BOA_QUANTIFICATION_VALUE is {quantification:g}")
    offsets = _offsets(root, _band_names(root), source)
    check_offsets(baseline, offsets, source)
    orbit = _text(root, "SENSING_ORBIT_NUMBER")
    return ProductMetadata(
        product_uri=(_text(root, "PRODUCT_URI") or "").removesuffix(".SAFE"),
        spacecraft=_text(root, "SPACECRAFT_NAME") or "",
        processing_level=level,
        product_type=product_type,
        baseline=f"{baseline[0]:02d}.{baseline[1]:02d}",
        sensing_start=iso_time(_text(root, "PRODUCT_START_TIME", "DATATAKE_SENSING_START")),
        relative_orbit=int(orbit) if orbit and orbit.isdigit() else None,
        quantification=quantification,
        offsets=offsets,
        footprint=_footprint(root),
        image_files=tuple(el.text.strip() for el in _all(root, "IMAGE_FILE") if el.text),
        scl_legend=_scl_legend(root),
    )


def check_offsets(baseline: tuple[int, int], offsets: dict[str, float], source: str) -> None:
    """Baseline ≥ 04.00 needs BOA_ADD_OFFSET for every band; older ones have none."""
    text = f"{baseline[0]:02d}.{baseline[1]:02d}"
    if baseline >= OFFSET_BASELINE:
        missing = [b for b in BAND_IDS if b not in offsets]
        if missing:
            raise InvalidInputError(
                f"{source}: processing baseline {text} but no BOA_ADD_OFFSET for "
                f"{', '.join(missing)}",
                hint="baseline 04.00 and later products list a BOA_ADD_OFFSET per band; "
                + _REDOWNLOAD,
            )
    elif any(value != 0 for value in offsets.values()):
        raise InvalidInputError(
            f"{source}: processing baseline {text} (before 04.00) but non-zero "
            "BOA_ADD_OFFSET values: the metadata contradicts itself",
            hint=_REDOWNLOAD,
        )


def check_name(folder_name: str, meta: ProductMetadata) -> dict[str, str]:
    """The SAFE folder name's fields, checked against the metadata (baseline, mission)."""
    match = SAFE_NAME.match(folder_name)
    if not match:
        return {}
    fields = match.groupdict()
    named = f"{fields['baseline'][:2]}.{fields['baseline'][2:]}"
    if named != meta.baseline:
        raise InvalidInputError(
            f"the folder name says processing baseline {named} (N{fields['baseline']}) but "
            f"MTD_MSIL2A.xml says {meta.baseline}",
            hint="the metadata and the folder are not from the same product; " + _REDOWNLOAD,
        )
    return {k: v for k, v in fields.items() if v is not None}


def parse_tile_metadata(text: str, source: str = "MTD_TL.xml") -> TileGeometry:
    """The tile's CRS and per-resolution geoposition from ``MTD_TL.xml``."""
    root = _parse(text, source)
    code = _text(root, "HORIZONTAL_CS_CODE") or ""
    match = re.fullmatch(r"EPSG:(\d+)", code)
    if not match:
        raise InvalidInputError(
            f"{source}: HORIZONTAL_CS_CODE is {code or 'missing'}, not an EPSG code",
            hint=_REDOWNLOAD,
        )
    origins: dict[int, tuple[float, float]] = {}
    sizes: dict[int, tuple[int, int]] = {}
    for el in _all(root, "Geoposition"):
        res = int(_number(el.get("resolution"), "a Geoposition resolution", source))
        origins[res] = (
            _number(_text(el, "ULX"), "ULX", source),
            _number(_text(el, "ULY"), "ULY", source),
        )
    for el in _all(root, "Size"):
        res = int(_number(el.get("resolution"), "a Size resolution", source))
        sizes[res] = (
            int(_number(_text(el, "NCOLS"), "NCOLS", source)),
            int(_number(_text(el, "NROWS"), "NROWS", source)),
        )
    if 10 not in origins or 10 not in sizes:
        raise InvalidInputError(
            f"{source} gives no 10 m Geoposition/Size of the tile", hint=_REDOWNLOAD
        )
    return TileGeometry(int(match.group(1)), origins, sizes, iso_time(_text(root, "SENSING_TIME")))
