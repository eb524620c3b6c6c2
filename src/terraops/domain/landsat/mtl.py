"""Landsat MTL metadata: the ODL parser and everything an import needs from it.

Reads all three generations (pre-collection, Collection 1, Collection 2 Level-1
and Level-2); see :mod:`terraops.domain.landsat` for the formats.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from terraops.errors import InvalidInputError

Value = str | int | float

# OLI band numbers of the five terraops bands, plus SWIR-2 for the cloud test.
OLI_BANDS: dict[str, int] = {"blue": 2, "green": 3, "red": 4, "nir": 5, "swir": 6}
SWIR2_BAND = 7
REFLECTIVE_BANDS: tuple[int, ...] = (2, 3, 4, 5, 6, 7)
SUPPORTED_SPACECRAFT = ("LANDSAT_8", "LANDSAT_9")


# --------------------------------------------------------------------------- MTL parsing
@dataclass(frozen=True)
class Mtl:
    """A parsed MTL: the root group's name and every group's own key/values."""

    root: str
    groups: dict[str, dict[str, Value]]

    def get(self, key: str, groups: tuple[str, ...] = ()) -> Value | None:
        """``key`` from the first of ``groups`` holding it (any group if none named)."""
        for name in groups or tuple(self.groups):
            if key in self.groups.get(name, {}):
                return self.groups[name][key]
        return None


def _value(raw: str) -> Value:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return raw[1:-1]
    if re.fullmatch(r"[+-]?\d+", raw):
        return int(raw)
    try:
        return float(raw)
    except ValueError:
        return raw


def parse_mtl(text: str) -> Mtl:
    """Parse the ODL text of an MTL file into groups (nested groups flattened by name)."""
    stack: list[str] = []
    groups: dict[str, dict[str, Value]] = {}
    root = ""
    for line in text.splitlines():
        key, sep, raw = line.partition("=")
        key = key.strip()
        if not sep:
            continue
        if key == "GROUP":
            name = raw.strip()
            root = root or name
            stack.append(name)
            groups.setdefault(name, {})
        elif key == "END_GROUP":
            if stack:
                stack.pop()
        elif stack:
            groups[stack[-1]][key] = _value(raw)
    if root not in ("L1_METADATA_FILE", "LANDSAT_METADATA_FILE"):
        raise InvalidInputError(
            "not a Landsat MTL file (no L1_METADATA_FILE or LANDSAT_METADATA_FILE group)",
            hint="pass the folder of a Landsat 8/9 product with its *_MTL.txt",
        )
    return Mtl(root, groups)


@dataclass(frozen=True)
class Calibration:
    """A linear rescaling: physical value = mult · DN + add."""

    mult: float
    add: float


@dataclass(frozen=True)
class ThermalCalibration:
    radiance: Calibration
    k1: float
    k2: float


@dataclass(frozen=True)
class ProductMetadata:
    product_id: str
    scene_id: str | None
    collection: str  # "pre-collection" | "1" | "2"
    spacecraft: str
    sensor: str
    processing_level: str
    acquired: str | None  # ISO 8601 UTC
    wrs_path: int | None
    wrs_row: int | None
    sun_elevation: float | None
    sun_azimuth: float | None
    earth_sun_distance: float | None
    reflectance_level: str  # "toa" (Level-1 DN, needs the sun) | "surface" (Level-2 SR)
    reflective: dict[int, Calibration]
    thermal: ThermalCalibration | None
    surface_temperature: Calibration | None
    qa_scheme: str  # "pre-collection" | "C1" | "C2"
    file_names: dict[str, str]  # role ("B4", "B10", "QA", "ST_B10") → file name in the MTL
    missing_thermal: tuple[str, ...] = field(default=())
    missing_surface_temperature: tuple[str, ...] = field(default=())


_C2_FILES = ("PRODUCT_CONTENTS",)
_C1_FILES = ("PRODUCT_METADATA",)


def _collection(mtl: Mtl) -> str:
    if mtl.root == "LANDSAT_METADATA_FILE":
        return "2"
    number = mtl.get("COLLECTION_NUMBER")
    return "1" if number is not None and int(number) == 1 else "pre-collection"


def _acquired(date: Value | None, time: Value | None) -> str | None:
    """DATE_ACQUIRED + SCENE_CENTER_TIME → ISO 8601 UTC (microseconds at most)."""
    if date is None:
        return None
    if time is None:
        return f"{date}"
    match = re.fullmatch(r"(\d{2}:\d{2}:\d{2})(\.\d+)?Z?", str(time))
    if not match:
        return f"{date}"
    fraction = (match.group(2) or ".0")[:7]
    stamp = datetime.fromisoformat(f"{date}T{match.group(1)}{fraction}")
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _floats(mtl: Mtl, keys: list[str], groups: tuple[str, ...]) -> tuple[list[float], list[str]]:
    values, missing = [], []
    for key in keys:
        value = mtl.get(key, groups)
        if isinstance(value, int | float):
            values.append(float(value))
        else:
            missing.append(key)
    return values, missing


def _file_names(mtl: Mtl, collection: str) -> dict[str, str]:
    groups = _C2_FILES if collection == "2" else _C1_FILES
    keys = {f"B{n}": f"FILE_NAME_BAND_{n}" for n in (*REFLECTIVE_BANDS, 10)}
    keys["ST_B10"] = "FILE_NAME_BAND_ST_B10"
    keys["QA"] = "FILE_NAME_QUALITY_L1_PIXEL" if collection == "2" else "FILE_NAME_BAND_QUALITY"
    found = {role: mtl.get(key, groups) for role, key in keys.items()}
    return {role: str(name) for role, name in found.items() if name is not None}


def _reflective(mtl: Mtl, level: str) -> tuple[str, dict[int, Calibration]]:
    """Which reflectance the band files hold, and each band's rescaling."""
    keys = [f"REFLECTANCE_{k}_BAND_{n}" for n in REFLECTIVE_BANDS for k in ("MULT", "ADD")]
    kind = "toa"
    groups: tuple[str, ...] = ("LEVEL1_RADIOMETRIC_RESCALING", "RADIOMETRIC_RESCALING")
    if level.startswith("L2") and "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS" in mtl.groups:
        kind, groups = "surface", ("LEVEL2_SURFACE_REFLECTANCE_PARAMETERS",)
    values, missing = _floats(mtl, keys, groups)
    if missing:
        raise InvalidInputError(
            f"the MTL misses required constants: {', '.join(missing)}",
            hint="the product's *_MTL.txt is incomplete; download the product again",
        )
    pairs = zip(values[0::2], values[1::2], strict=True)
    return kind, {n: Calibration(m, a) for n, (m, a) in zip(REFLECTIVE_BANDS, pairs, strict=True)}


def _thermal(mtl: Mtl) -> tuple[ThermalCalibration | None, tuple[str, ...]]:
    rescaling = ("LEVEL1_RADIOMETRIC_RESCALING", "RADIOMETRIC_RESCALING")
    constants = ("LEVEL1_THERMAL_CONSTANTS", "TIRS_THERMAL_CONSTANTS")
    (mult_add, miss1) = _floats(mtl, ["RADIANCE_MULT_BAND_10", "RADIANCE_ADD_BAND_10"], rescaling)
    (k, miss2) = _floats(mtl, ["K1_CONSTANT_BAND_10", "K2_CONSTANT_BAND_10"], constants)
    missing = (*miss1, *miss2)
    if missing:
        return None, missing
    return ThermalCalibration(Calibration(*mult_add), k[0], k[1]), ()


def _surface_temperature(mtl: Mtl) -> tuple[Calibration | None, tuple[str, ...]]:
    keys = ["TEMPERATURE_MULT_BAND_ST_B10", "TEMPERATURE_ADD_BAND_ST_B10"]
    values, missing = _floats(mtl, keys, ("LEVEL2_SURFACE_TEMPERATURE_PARAMETERS",))
    return (None, tuple(missing)) if missing else (Calibration(*values), ())


def _optional_float(value: Value | None) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _optional_int(value: Value | None) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def product_metadata(mtl: Mtl) -> ProductMetadata:
    """Everything the import needs from an MTL, whichever generation wrote it.

    Raises :class:`InvalidInputError` for a product terraops cannot calibrate
    (another sensor, or a missing reflectance constant / sun elevation);
    missing thermal constants are only recorded, since a Level-2 product may
    bring its own surface temperature instead.
    """
    collection = _collection(mtl)
    spacecraft = str(mtl.get("SPACECRAFT_ID") or "")
    if spacecraft not in SUPPORTED_SPACECRAFT:
        raise InvalidInputError(
            f"unsupported spacecraft {spacecraft or 'unknown'!r}: only Landsat 8/9 OLI/TIRS "
            "products can be imported (other sensors number their bands differently)",
            hint="import other imagery with `terraops scene import geotiff`",
        )
    level = str(mtl.get("PROCESSING_LEVEL") or mtl.get("DATA_TYPE") or "")
    reflectance_level, reflective = _reflective(mtl, level)
    sun_elevation = _optional_float(mtl.get("SUN_ELEVATION"))
    if reflectance_level == "toa" and sun_elevation is None:
        raise InvalidInputError(
            "the MTL misses required constants: SUN_ELEVATION",
            hint="the product's *_MTL.txt is incomplete; download the product again",
        )
    thermal, missing_thermal = _thermal(mtl)
    st, missing_st = _surface_temperature(mtl)
    scene_id = mtl.get("LANDSAT_SCENE_ID")
    product_id = mtl.get("LANDSAT_PRODUCT_ID") or scene_id
    if not product_id:
        raise InvalidInputError("the MTL names no LANDSAT_PRODUCT_ID or LANDSAT_SCENE_ID")
    return ProductMetadata(
        product_id=str(product_id),
        scene_id=str(scene_id) if scene_id else None,
        collection=collection,
        spacecraft=spacecraft,
        sensor=str(mtl.get("SENSOR_ID") or ""),
        processing_level=level,
        acquired=_acquired(mtl.get("DATE_ACQUIRED"), mtl.get("SCENE_CENTER_TIME")),
        wrs_path=_optional_int(mtl.get("WRS_PATH")),
        wrs_row=_optional_int(mtl.get("WRS_ROW")),
        sun_elevation=sun_elevation,
        sun_azimuth=_optional_float(mtl.get("SUN_AZIMUTH")),
        earth_sun_distance=_optional_float(mtl.get("EARTH_SUN_DISTANCE")),
        reflectance_level=reflectance_level,
        reflective=reflective,
        thermal=thermal,
        surface_temperature=st,
        qa_scheme={"2": "C2", "1": "C1"}.get(collection, "pre-collection"),
        file_names=_file_names(mtl, collection),
        missing_thermal=missing_thermal,
        missing_surface_temperature=missing_st,
    )


def file_suffixes(role: str) -> tuple[str, ...]:
    """Lower-case name endings that identify a band file when the MTL's names do not match
    (renamed files, e.g. ``test_B4.tif``); the ``.tif`` / ``.tiff`` extension is stripped."""
    if role == "QA":
        return ("_bqa", "_qa_pixel")
    return (f"_{role.lower()}",)


def thermal_source(meta: ProductMetadata, *, have_b10: bool, have_st: bool) -> str:
    """``"st"`` (Level-2 ST_B10 used as is) or ``"b10"`` (LST computed), or a clear error."""
    if have_st and meta.surface_temperature is not None:
        return "st"
    if have_b10 and meta.thermal is not None:
        return "b10"
    if have_b10:
        missing = ", ".join(meta.missing_thermal)
        raise InvalidInputError(
            f"the MTL misses required constants: {missing}",
            hint="the product's *_MTL.txt is incomplete; download the product again",
        )
    if have_st:
        missing = ", ".join(meta.missing_surface_temperature)
        raise InvalidInputError(f"the MTL misses required constants: {missing}")
    raise InvalidInputError(
        "the product misses required band files: B10 (or Level-2 ST_B10)",
        hint="land-surface temperature needs TIRS band 10; download the complete product",
    )
