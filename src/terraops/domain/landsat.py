"""Landsat 8/9 OLI/TIRS products → terraops layers (pure: numpy/scipy, no I/O).

What a city's analyst downloads from USGS is a folder of one GeoTIFF per band
plus an ``*_MTL.txt`` holding the constants that turn digital numbers (DN)
into physics. Three generations of that metadata are in circulation and all
three are read here: pre-collection (2013–2017, group ``L1_METADATA_FILE``),
Collection 1 (same layout, ``LANDSAT_PRODUCT_ID``, ``COLLECTION_NUMBER = 01``)
and Collection 2 (group ``LANDSAT_METADATA_FILE``; Level-1 and Level-2).

The physics (each step cites its source; the constants are module-level so
the scene manifest can record exactly what was used):

* TOA reflectance ρ = (M·DN + A) / sin(θ_SE) — USGS Landsat 8 Data Users
  Handbook (LSDS-1574), section 5.
* Approximate surface reflectance by dark-object subtraction DOS1
  (Chavez 1988, RSE 24:459–479; Chavez 1996, PE&RS 62:1025–1036): the
  darkest object of each band is assumed to have 1 % surface reflectance, the
  excess is path radiance (haze) and is subtracted everywhere.
* Brightness temperature BT = K2 / ln(K1 / L + 1) from band-10 radiance.
* Emissivity by the NDVI-threshold method (Sobrino, Jiménez-Muñoz & Paolini
  2004, RSE 90:434–440), water by NDWI > 0 (McFeeters 1996).
* LST = BT / (1 + (λ·BT/ρ₂)·ln ε) (Artis & Carnahan 1982; Weng, Lu &
  Schubring 2004, RSE 89:467–483).
* Cloud: the product's QA band, plus Fmask's per-pixel potential-cloud test
  (Zhu & Woodcock 2012, RSE 118:83–94) and a cold-top test after its
  temperature probability, because the QA of older products misses much
  broken cumulus; the union is dilated by a few pixels. Cloud shadows are
  masked only where the QA flags them (Collections 1 and 2).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from scipy import ndimage

from terraops.errors import InvalidInputError

Value = str | int | float

# OLI band numbers of the five terraops bands, plus SWIR-2 for the cloud test.
OLI_BANDS: dict[str, int] = {"blue": 2, "green": 3, "red": 4, "nir": 5, "swir": 6}
SWIR2_BAND = 7
REFLECTIVE_BANDS: tuple[int, ...] = (2, 3, 4, 5, 6, 7)
SUPPORTED_SPACECRAFT = ("LANDSAT_8", "LANDSAT_9")

# --------------------------------------------------------------------------- constants
DOS1_DARK_PERCENTILE = 0.01
"""Dark object = this percentile (%) of a band's valid TOA reflectance, not the
strict minimum, so that one dead or noisy pixel cannot set the haze."""
DOS1_DARK_OBJECT_REFLECTANCE = 0.01  # Chavez 1996: dark objects reflect ~1 %

NDVI_SOIL = 0.2  # Sobrino et al. 2004: NDVI below → bare soil
NDVI_VEGETATION = 0.5  # above → fully vegetated
EMISSIVITY_VEGETATION = 0.99  # εv (Sobrino et al. 2004)
EMISSIVITY_SOIL_MIXED = 0.97  # εs in the mixed-pixel equation (Sobrino et al. 2004)
SOIL_EMISSIVITY_INTERCEPT = 0.979  # soil ε = 0.979 − 0.035·ρ_red (Sobrino et al. 2004,
SOIL_EMISSIVITY_RED_SLOPE = 0.035  # derived for TM6; applied to TIRS band 10 here)
CAVITY_SHAPE_FACTOR = 0.55  # F: mean geometric factor of the cavity term dε
EMISSIVITY_WATER = 0.99
NDWI_WATER = 0.0  # McFeeters NDWI (green − nir)/(green + nir) > 0 → open water

B10_WAVELENGTH_UM = 10.895  # TIRS band-10 effective wavelength λ
RHO2_UM_K = 14388.0  # ρ₂ = h·c/σ = 1.438e-2 m·K (Weng et al. 2004)
KELVIN = 273.15

# Fmask potential cloud pixels (Zhu & Woodcock 2012, eqs. 1–4), on TOA values.
FMASK_SWIR2_MIN = 0.03
FMASK_BT_MAX_C = 27.0
FMASK_NDVI_MAX = 0.8
FMASK_NDSI_MAX = 0.8
FMASK_WHITENESS_MAX = 0.7
FMASK_HOT_OFFSET = 0.08
FMASK_NIR_SWIR1_MIN = 0.75
COLD_CLOUD_PERCENTILE = 17.5  # Fmask's T_low: 17.5th percentile of clear-land BT (eq. 8)
COLD_CLOUD_MARGIN_K = 4.0  # ... minus 4 K: below it Fmask's temperature probability is > 1
CLOUD_DILATION_PX = 3
"""Cloud edges and thin cloud around what the tests find; 3 px = 90 m at 30 m."""


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


# --------------------------------------------------------------------------- radiometry
def rescale(dn: np.ndarray, cal: Calibration) -> np.ndarray:
    """mult · DN + add as float32, NaN where DN = 0 (Landsat fill)."""
    value = dn.astype(np.float32) * np.float32(cal.mult) + np.float32(cal.add)
    return np.where(dn == 0, np.float32(np.nan), value)


def toa_reflectance(dn: np.ndarray, cal: Calibration, sun_elevation_deg: float) -> np.ndarray:
    """ρ = (M·DN + A) / sin(θ_SE): TOA reflectance corrected for the sun angle."""
    return rescale(dn, cal) / np.float32(np.sin(np.radians(sun_elevation_deg)))


def brightness_temperature(radiance: np.ndarray, k1: float, k2: float) -> np.ndarray:
    """At-sensor brightness temperature (K) from spectral radiance (W m⁻² sr⁻¹ µm⁻¹)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return k2 / np.log(k1 / radiance + 1.0)


def radiance_from_brightness_temperature(bt_k: np.ndarray, k1: float, k2: float) -> np.ndarray:
    """Inverse Planck: L = K1 / (exp(K2 / BT) − 1)."""
    return k1 / np.expm1(k2 / np.asarray(bt_k, dtype=np.float64))


def dos1_haze(toa: np.ndarray) -> float:
    """Path reflectance of one band: dark object's TOA reflectance − 1 %, never < 0."""
    valid = toa[np.isfinite(toa)]
    if valid.size == 0:
        return 0.0
    dark = float(np.percentile(valid, DOS1_DARK_PERCENTILE))
    return max(dark - DOS1_DARK_OBJECT_REFLECTANCE, 0.0)


def normalized_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return (a - b) / (a + b)


def emissivity_ndvi_threshold(ndvi: np.ndarray, red: np.ndarray, ndwi: np.ndarray) -> np.ndarray:
    """Band-10 surface emissivity by the NDVI-threshold method (Sobrino et al. 2004).

    * NDVI < 0.2 — bare soil: ε = 0.979 − 0.035·ρ_red;
    * NDVI > 0.5 — full vegetation: ε = εv = 0.99;
    * in between — Pv = ((NDVI − 0.2)/0.3)², ε = εv·Pv + εs·(1 − Pv) + dε with the
      cavity term dε = (1 − εs)(1 − Pv)·F·εv, εs = 0.97, F = 0.55;
    * open water (NDWI > 0, McFeeters 1996) — ε = 0.99.
    """
    soil = SOIL_EMISSIVITY_INTERCEPT - SOIL_EMISSIVITY_RED_SLOPE * red
    pv = np.clip((ndvi - NDVI_SOIL) / (NDVI_VEGETATION - NDVI_SOIL), 0.0, 1.0) ** 2
    ev, es = EMISSIVITY_VEGETATION, EMISSIVITY_SOIL_MIXED
    mixed = ev * pv + es * (1.0 - pv) + (1.0 - es) * (1.0 - pv) * CAVITY_SHAPE_FACTOR * ev
    eps = np.where(ndvi < NDVI_SOIL, soil, np.where(ndvi > NDVI_VEGETATION, ev, mixed))
    eps = np.where(ndwi > NDWI_WATER, EMISSIVITY_WATER, eps)
    return np.where(np.isfinite(ndvi), eps, np.nan).astype(np.float32)


def land_surface_temperature(bt_k: np.ndarray, emissivity: np.ndarray) -> np.ndarray:
    """LST (K) = BT / (1 + (λ·BT/ρ₂)·ln ε) — single-channel emissivity correction."""
    return bt_k / (1.0 + (B10_WAVELENGTH_UM * bt_k / RHO2_UM_K) * np.log(emissivity))


# --------------------------------------------------------------------------- QA and clouds
@dataclass(frozen=True)
class QaFlags:
    fill: np.ndarray
    cloud: np.ndarray
    cirrus: np.ndarray
    shadow: np.ndarray


QA_DECODING: dict[str, str] = {
    "pre-collection": "BQA: bit 0 fill; bits 14-15 cloud confidence >= 2 (medium/high); "
    "bits 12-13 cirrus confidence = 3 (high); no shadow bits",
    "C1": "BQA: bit 0 fill; bit 4 cloud or bits 5-6 cloud confidence >= 2; bits 7-8 cloud "
    "shadow confidence >= 2; bits 11-12 cirrus confidence = 3",
    "C2": "QA_PIXEL: bit 0 fill; bit 1 dilated cloud, bit 3 cloud or bits 8-9 cloud "
    "confidence >= 2; bit 2 cirrus (high); bit 4 cloud shadow",
}


def _bits(qa: np.ndarray, first: int, width: int = 1) -> np.ndarray:
    return (qa.astype(np.uint32) >> first) & ((1 << width) - 1)


def decode_qa(qa: np.ndarray, scheme: str) -> QaFlags:
    """Fill, cloud (medium/high confidence), high cirrus and shadow from a QA band."""
    fill = _bits(qa, 0) == 1
    if scheme == "pre-collection":
        cloud = _bits(qa, 14, 2) >= 2
        cirrus = _bits(qa, 12, 2) == 3
        shadow = np.zeros(qa.shape, dtype=bool)
    elif scheme == "C1":
        cloud = (_bits(qa, 4) == 1) | (_bits(qa, 5, 2) >= 2)
        shadow = _bits(qa, 7, 2) >= 2
        cirrus = _bits(qa, 11, 2) == 3
    elif scheme == "C2":
        cloud = (_bits(qa, 1) == 1) | (_bits(qa, 3) == 1) | (_bits(qa, 8, 2) >= 2)
        cirrus = _bits(qa, 2) == 1
        shadow = _bits(qa, 4) == 1
    else:
        raise InvalidInputError(f"unknown QA scheme {scheme!r}")
    return QaFlags(fill, cloud & ~fill, cirrus & ~fill, shadow & ~fill)


def potential_cloud(toa: Mapping[int, np.ndarray], bt_c: np.ndarray) -> np.ndarray:
    """Fmask potential cloud pixels (Zhu & Woodcock 2012, eqs. 1–4) on OLI TOA bands.

    basic: ρ7 > 0.03, BT < 27 °C, NDVI < 0.8, NDSI < 0.8; whiteness
    Σ|ρi − mean| / mean over blue/green/red < 0.7; HOT: ρblue − 0.5·ρred − 0.08 > 0;
    ρnir / ρswir1 > 0.75. All four must hold.
    """
    blue, green, red, nir, swir1, swir2 = (toa[n] for n in REFLECTIVE_BANDS)
    ndvi = normalized_difference(nir, red)
    ndsi = normalized_difference(green, swir1)
    basic = (
        (swir2 > FMASK_SWIR2_MIN)
        & (bt_c < FMASK_BT_MAX_C)
        & (ndvi < FMASK_NDVI_MAX)
        & (ndsi < FMASK_NDSI_MAX)
    )
    mean = (blue + green + red) / 3.0
    with np.errstate(divide="ignore", invalid="ignore"):
        whiteness = (np.abs(blue - mean) + np.abs(green - mean) + np.abs(red - mean)) / mean
        ratio = nir / swir1
    hot = blue - 0.5 * red - FMASK_HOT_OFFSET > 0
    return np.asarray(
        basic & (whiteness < FMASK_WHITENESS_MAX) & hot & (ratio > FMASK_NIR_SWIR1_MIN)
    )


def cold_cloud(bt_c: np.ndarray, clear_land: np.ndarray, water: np.ndarray) -> np.ndarray:
    """Land pixels far colder than the window's clear land: cloud tops the other tests miss.

    After Fmask's land temperature probability (Zhu & Woodcock 2012, eqs. 8–9):
    below T_low − 4 K (T_low = 17.5th percentile of clear-land BT) that
    probability exceeds 1. Water is never flagged (it is cold by nature);
    too little clear land (< 100 px) gives no reference and flags nothing.
    """
    reference = bt_c[clear_land & np.isfinite(bt_c)]
    if reference.size < 100:
        return np.zeros(bt_c.shape, dtype=bool)
    t_low = float(np.percentile(reference, COLD_CLOUD_PERCENTILE))
    return np.asarray((bt_c < t_low - COLD_CLOUD_MARGIN_K) & ~water)


def dilate(mask: np.ndarray, radius_px: int) -> np.ndarray:
    """Grow a mask by a disc of ``radius_px`` (Euclidean distance ≤ radius)."""
    if radius_px <= 0:
        return mask.copy()
    yy, xx = np.mgrid[-radius_px : radius_px + 1, -radius_px : radius_px + 1]
    disc = (xx**2 + yy**2) <= radius_px**2
    return np.asarray(ndimage.binary_dilation(mask, structure=disc))


# --------------------------------------------------------------------------- the whole product
@dataclass(frozen=True)
class ProductPixels:
    """Digital numbers of one window of a product, all on the same grid."""

    reflective: Mapping[int, np.ndarray]  # OLI band number → DN
    qa: np.ndarray
    thermal: np.ndarray | None = None  # band-10 DN
    surface_temperature: np.ndarray | None = None  # Level-2 ST_B10 DN


@dataclass(frozen=True)
class DerivedLayers:
    reflectance: dict[str, np.ndarray]  # terraops band → float32, NaN where masked
    lst_c: np.ndarray  # float32 °C, NaN where masked
    clear: np.ndarray  # bool
    record: dict[str, Any]  # constants and methods, for the scene manifest


CORRECTIONS = ("dos1", "none")


def _reflectance(
    pixels: ProductPixels, meta: ProductMetadata, fill: np.ndarray, correction: str
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray], dict[str, Any]]:
    """(values for the cloud test, values to store, record) per OLI band.

    Level-1 DN become TOA reflectance, then DOS1 surface reflectance unless
    ``correction == "none"``; Level-2 surface reflectance is stored as is.
    """
    names = {n: b for b, n in OLI_BANDS.items()} | {SWIR2_BAND: "swir2 (cloud test only)"}
    tested: dict[int, np.ndarray] = {}
    stored: dict[int, np.ndarray] = {}
    bands: dict[str, Any] = {}
    for n in REFLECTIVE_BANDS:
        cal = meta.reflective[n]
        if meta.reflectance_level == "toa":
            value = toa_reflectance(pixels.reflective[n], cal, float(meta.sun_elevation or 90.0))
        else:
            value = rescale(pixels.reflective[n], cal)
        tested[n] = np.where(fill, np.float32(np.nan), value)
        haze = dos1_haze(tested[n]) if correction == "dos1" else 0.0
        stored[n] = tested[n] - np.float32(haze)
        bands[f"B{n}"] = {"terraops_band": names[n], "mult": cal.mult, "add": cal.add}
        if correction == "dos1":
            bands[f"B{n}"]["dos1_haze_reflectance"] = round(haze, 6)
    if correction == "dos1":
        method: dict[str, Any] = {
            "method": "dos1",
            "reference": "Chavez 1988 (RSE 24:459-479), 1996 (PE&RS 62:1025-1036)",
            "dark_object": f"{DOS1_DARK_PERCENTILE} percentile of each band's valid TOA "
            "reflectance in the imported window",
            "dark_object_reflectance": DOS1_DARK_OBJECT_REFLECTANCE,
        }
    elif meta.reflectance_level == "surface":
        method = {"method": "none", "note": "Level-2 surface reflectance (USGS LaSRC) as delivered"}
    else:
        method = {"method": "none", "note": "top-of-atmosphere reflectance"}
    level = "TOA reflectance = (M*DN + A) / sin(sun elevation) (Landsat 8 Data Users Handbook, 5)"
    if meta.reflectance_level == "surface":
        level = "Level-2 surface reflectance = M*DN + A"
    return tested, stored, {"reflectance": level, "bands": bands, "correction": method}


def _brightness_temperature(pixels: ProductPixels, meta: ProductMetadata) -> np.ndarray | None:
    if pixels.thermal is None or meta.thermal is None:
        return None
    radiance = rescale(pixels.thermal, meta.thermal.radiance)
    return brightness_temperature(radiance, meta.thermal.k1, meta.thermal.k2)


def _emissivity_record() -> dict[str, Any]:
    return {
        "method": "NDVI thresholds (Sobrino, Jimenez-Munoz & Paolini 2004, RSE 90:434-440); "
        "water by NDWI > 0 (McFeeters 1996)",
        "ndvi_soil": NDVI_SOIL,
        "ndvi_vegetation": NDVI_VEGETATION,
        "soil": f"{SOIL_EMISSIVITY_INTERCEPT} - {SOIL_EMISSIVITY_RED_SLOPE} * red",
        "vegetation": EMISSIVITY_VEGETATION,
        "mixed": "ev*Pv + es*(1-Pv) + (1-es)*(1-Pv)*F*ev, Pv = ((NDVI-0.2)/0.3)^2",
        "mixed_soil": EMISSIVITY_SOIL_MIXED,
        "shape_factor_F": CAVITY_SHAPE_FACTOR,
        "water": EMISSIVITY_WATER,
        "ndvi_from": "the stored reflectance (after the correction)",
    }


def _lst(
    pixels: ProductPixels,
    meta: ProductMetadata,
    stored: dict[int, np.ndarray],
    source: str,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(LST in K, BT in K for the cloud test, record)."""
    bt = _brightness_temperature(pixels, meta)
    record: dict[str, Any] = {}
    if meta.thermal is not None:
        record["thermal"] = {
            "band": "B10",
            "radiance_mult": meta.thermal.radiance.mult,
            "radiance_add": meta.thermal.radiance.add,
            "k1": meta.thermal.k1,
            "k2": meta.thermal.k2,
        }
    if source == "st":
        cal = meta.surface_temperature
        if cal is None or pixels.surface_temperature is None:
            raise InvalidInputError("Level-2 surface temperature requested but not available")
        lst = rescale(pixels.surface_temperature, cal)
        record["lst"] = {
            "method": "USGS Collection 2 Level-2 surface temperature (ST_B10) as delivered",
            "st_mult": cal.mult,
            "st_add": cal.add,
        }
        return lst, (bt if bt is not None else lst), record
    if bt is None:
        raise InvalidInputError("band 10 or its constants are missing")
    ndvi = normalized_difference(stored[OLI_BANDS["nir"]], stored[OLI_BANDS["red"]])
    ndwi = normalized_difference(stored[OLI_BANDS["green"]], stored[OLI_BANDS["nir"]])
    eps = emissivity_ndvi_threshold(ndvi, stored[OLI_BANDS["red"]], ndwi)
    record["emissivity"] = _emissivity_record()
    record["lst"] = {
        "method": "BT / (1 + (lambda*BT/rho2) * ln(emissivity)) "
        "(Artis & Carnahan 1982; Weng, Lu & Schubring 2004, RSE 89:467-483)",
        "brightness_temperature": "K2 / ln(K1 / (M*DN + A) + 1)",
        "wavelength_um": B10_WAVELENGTH_UM,
        "rho2_um_k": RHO2_UM_K,
    }
    return land_surface_temperature(bt, eps), bt, record


def _fraction(mask: np.ndarray) -> float:
    return round(float(mask.mean()), 6) if mask.size else 0.0


def _mask(
    qa: QaFlags, tests: dict[str, np.ndarray], fill: np.ndarray, dilation_px: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """Masked pixels (fill ∪ dilated clouds) and what each test contributed."""
    flagged_by_qa = qa.cloud | qa.cirrus | qa.shadow
    flagged = flagged_by_qa | np.logical_or.reduce(list(tests.values()))
    masked = fill | dilate(flagged, dilation_px)
    fractions = {
        "fill": _fraction(fill),
        "qa_cloud": _fraction(qa.cloud),
        "qa_cirrus": _fraction(qa.cirrus),
        "qa_shadow": _fraction(qa.shadow),
        **{name: _fraction(test) for name, test in tests.items()},
        **{f"{name}_not_in_qa": _fraction(test & ~flagged_by_qa) for name, test in tests.items()},
        "added_by_dilation": _fraction(masked & ~flagged & ~fill),
    }
    return masked, fractions


def _cloud_tests(
    qa: QaFlags, tested: dict[int, np.ndarray], bt_c: np.ndarray, fill: np.ndarray
) -> dict[str, np.ndarray]:
    """The spectral tests that back up the QA band (see the module docstring)."""
    pcp = potential_cloud(tested, bt_c) & ~fill
    water = normalized_difference(tested[3], tested[5]) > NDWI_WATER
    clear_land = ~(fill | pcp | qa.cloud | qa.cirrus | qa.shadow | water)
    return {"potential_cloud": pcp, "cold_cloud": cold_cloud(bt_c, clear_land, water) & ~fill}


def derive_layers(
    pixels: ProductPixels,
    meta: ProductMetadata,
    *,
    thermal: str,
    correction: str = "dos1",
    dilation_px: int = CLOUD_DILATION_PX,
) -> DerivedLayers:
    """Reflectance, LST (°C) and the clear mask of one product window, plus the record.

    ``thermal`` is what :func:`thermal_source` chose. Masked pixels (fill,
    QA cloud/cirrus/shadow, potential and cold cloud — all but fill dilated)
    get NaN.
    """
    if correction not in CORRECTIONS:
        raise InvalidInputError(
            f"unknown correction {correction!r}", hint=f"use one of {', '.join(CORRECTIONS)}"
        )
    if meta.reflectance_level == "surface":
        correction = "none"
    qa = decode_qa(pixels.qa, meta.qa_scheme)
    fill = qa.fill | np.logical_or.reduce([pixels.reflective[n] == 0 for n in REFLECTIVE_BANDS])
    tested, stored, record = _reflectance(pixels, meta, fill, correction)
    lst_k, bt_k, thermal_record = _lst(pixels, meta, stored, thermal)
    fill = fill | ~np.isfinite(lst_k)
    tests = _cloud_tests(qa, tested, bt_k - KELVIN, fill)
    masked, fractions = _mask(qa, tests, fill, dilation_px)
    nan = np.float32(np.nan)
    reflectance = {name: stored[n] for name, n in OLI_BANDS.items()}
    for band in reflectance.values():  # in place: a full scene is 60 Mpx per band
        band[masked] = nan
    lst_c = (lst_k - np.float32(KELVIN)).astype(np.float32)
    lst_c[masked] = nan
    record.update(thermal_record)
    record["qa"] = {"scheme": meta.qa_scheme, "decoding": QA_DECODING[meta.qa_scheme]}
    record["cloud_test"] = {
        "method": "Fmask potential cloud pixels (Zhu & Woodcock 2012, RSE 118:83-94, eqs. 1-4)",
        "test": f"swir2 > {FMASK_SWIR2_MIN} & BT < {FMASK_BT_MAX_C} C & NDVI < {FMASK_NDVI_MAX} "
        f"& NDSI < {FMASK_NDSI_MAX} & whiteness < {FMASK_WHITENESS_MAX} "
        f"& blue - 0.5*red - {FMASK_HOT_OFFSET} > 0 & nir/swir1 > {FMASK_NIR_SWIR1_MIN}",
        "on": "TOA reflectance" if meta.reflectance_level == "toa" else "surface reflectance",
        "cold_cloud": f"land BT < {COLD_CLOUD_PERCENTILE}th percentile of clear-land BT - "
        f"{COLD_CLOUD_MARGIN_K} K (after Fmask's temperature probability, eqs. 8-9)",
        "brightness_temperature": "band 10" if pixels.thermal is not None else "ST_B10",
    }
    record["dilation_px"] = dilation_px
    record["masked_fraction"] = _fraction(masked)
    record["mask_fractions"] = fractions
    return DerivedLayers(reflectance, lst_c, ~masked, record)
