"""Synthetic Landsat 8 products and GeoTIFFs for the import tests.

Shared by tests/data/test_landsat_import.py and tests/code/test_scene_import_cli.py
(``from landsat_support import ...``: tests/ is on sys.path, like serving_support).

The synthetic products below are written the way USGS writes them: digital
numbers obtained by *inverting* the published formulas with real Collection 2
constants (reflectance M = 2.0e-5, A = −0.1; band-10 radiance M = 3.342e-4,
A = 0.1; K1 = 774.8853, K2 = 1321.0789; ST_B10 0.00341802, 149.0 K), an MTL
with the real field names, and a QA_PIXEL band with painted clouds. Every
expected value (:class:`Truth`) is computed from the chosen fields and the
papers' equations written out in this file, not from terraops' own functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine, from_origin

EPSG = 32616
RES = 30.0
ORIGIN = (500_010.0, 3_400_020.0)
HEIGHT, WIDTH = 90, 110
SUN_ELEVATION = 58.3
REFL_MULT, REFL_ADD = 2.0e-5, -0.1
RAD_MULT, RAD_ADD = 3.342e-4, 0.1
K1, K2 = 774.8853, 1321.0789
ST_MULT, ST_ADD = 0.00341802, 149.0
SR_MULT, SR_ADD = 2.75e-5, -0.2
LAMBDA_UM, RHO2 = 10.895, 14388.0
PRODUCT_ID = "LC08_L1TP_020039_20230804_20230812_02_T1"
BANDS = {"blue": 2, "green": 3, "red": 4, "nir": 5, "swir": 6}

# Haze that DOS1 must find: darkest object − 1 %. The darkest blue/green/red is
# the uniform shaded forest patch (0.8 × forest), the darkest NIR/SWIR the water.
FOREST = np.array([0.02, 0.045, 0.025, 0.38, 0.17, 0.08])  # OLI bands 2..7
WATER = np.array([0.05, 0.07, 0.05, 0.012, 0.008, 0.005])
CLOUD = np.array([0.45, 0.45, 0.44, 0.47, 0.38, 0.28])
SHADE = 0.8
EXPECTED_HAZE = {
    2: SHADE * FOREST[0] - 0.01,
    3: SHADE * FOREST[1] - 0.01,
    4: SHADE * FOREST[2] - 0.01,
    5: WATER[3] - 0.01,
    6: 0.0,  # water's 0.008 is already below 1 %
    7: 0.0,
}


# --------------------------------------------------------------------------- the truth
def emissivity_sobrino(red: np.ndarray, nir: np.ndarray, green: np.ndarray) -> np.ndarray:
    """Sobrino et al. 2004 NDVI thresholds, written out independently of terraops."""
    ndvi = (nir - red) / (nir + red)
    ndwi = (green - nir) / (green + nir)
    pv = ((ndvi - 0.2) / (0.5 - 0.2)) ** 2
    mixed = 0.99 * pv + 0.97 * (1 - pv) + (1 - 0.97) * (1 - pv) * 0.55 * 0.99
    eps = np.where(ndvi < 0.2, 0.979 - 0.035 * red, np.where(ndvi > 0.5, 0.99, mixed))
    return np.where(ndwi > 0, 0.99, eps)


def disc(rows: np.ndarray, cols: np.ndarray, r0: int, c0: int, radius: float) -> np.ndarray:
    return (rows - r0) ** 2 + (cols - c0) ** 2 <= radius**2


@dataclass
class Truth:
    toa: dict[int, np.ndarray]  # OLI band → TOA reflectance (= surface + haze)
    lst_c: dict[str, np.ndarray]  # correction → LST the import must find (°C)
    bt_k: np.ndarray  # band-10 brightness temperature (K)
    qa: np.ndarray
    fill: np.ndarray
    flagged: np.ndarray  # what the import must find as cloud (before dilation)
    water: np.ndarray


def make_truth(seed: int = 0) -> Truth:
    """Forest | mixed vegetation | bare/urban | water columns, clouds painted on top."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    bright = np.clip(1 + 0.1 * np.abs(rng.normal(size=(HEIGHT, WIDTH))), 1.0, 1.3)
    toa = np.zeros((6, HEIGHT, WIDTH))
    forest, mixed = cols < 30, (cols >= 30) & (cols < 60)
    bare, water = (cols >= 60) & (cols < 90), cols >= 90
    toa[:, forest] = FOREST[:, None] * bright[forest]
    shaded = forest & (rows < 10) & (cols >= 5)
    toa[:, shaded] = FOREST[:, None] * SHADE
    ndvi = 0.26 + 0.2 * rows / HEIGHT  # mixed pixels, TOA NDVI 0.26-0.46
    red = 0.08 * bright
    nir = red * (1 + ndvi) / (1 - ndvi)
    for i, value in enumerate(
        (0.05 * bright, 0.07 * bright, red, nir, 0.2 * bright, 0.14 * bright)
    ):
        toa[i, mixed] = value[mixed]
    r = (0.12 + 0.06 * rows / HEIGHT) * bright  # bare soil / roofs, NDVI ~0.11
    for i, factor in enumerate((0.7, 0.85, 1.0, 1.25, 1.5, 1.2)):
        toa[i, bare] = (factor * r)[bare]
    toa[:, water] = WATER[:, None]
    spectral_cloud = disc(rows, cols, 20, 72, 5)  # bright, cold, NOT flagged in the QA
    toa[:, spectral_cloud] = CLOUD[:, None]
    land_c = 28 + 3 * cols / WIDTH + np.sin(rows / 7)
    surface_c = np.where(water, 24.0, land_c)
    qa, qa_flagged = paint_qa(rows, cols, water)
    fill = cols < 3 + rows // 30  # a ragged no-data edge, as along a real scene's border
    qa[fill] = 1
    # Band 10 encodes the surface seen through TOA-derived emissivity (correction "none");
    # with DOS1 the import derives emissivity from the corrected bands, so its LST differs.
    lst_k = surface_c + 273.15
    eps_toa = emissivity_sobrino(toa[2], toa[3], toa[1])
    # LST = BT / (1 + (λ·BT/ρ₂)·ln ε)  ⇔  BT = LST / (1 − (λ·LST/ρ₂)·ln ε)
    bt = lst_k / (1 - (LAMBDA_UM * lst_k / RHO2) * np.log(eps_toa))
    surface = {n: toa[n - 2] - EXPECTED_HAZE[n] for n in range(2, 8)}
    eps_dos1 = emissivity_sobrino(surface[4], surface[5], surface[3])
    lst_dos1 = bt / (1 + (LAMBDA_UM * bt / RHO2) * np.log(eps_dos1)) - 273.15
    lst_c = {
        "none": np.where(spectral_cloud, np.nan, surface_c),
        "dos1": np.where(spectral_cloud, np.nan, lst_dos1),
    }
    return Truth(
        toa={n: toa[n - 2] for n in range(2, 8)},
        lst_c=lst_c,
        bt_k=np.where(spectral_cloud, 278.15, bt),  # cloud top: BT 5 °C
        qa=qa,
        fill=fill,
        flagged=(qa_flagged | spectral_cloud) & ~fill,
        water=water,
    )


def paint_qa(
    rows: np.ndarray, cols: np.ndarray, water: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """C2 QA_PIXEL: clear land 21824 / clear water 21952, clouds painted with their bits."""
    qa = np.where(water, 21952, 21824).astype(np.uint16)
    cloud = disc(rows, cols, 60, 40, 4)  # under it the surface is unchanged: only the QA knows
    qa[cloud] = (1 << 3) | (3 << 8) | (1 << 10) | (1 << 12) | (1 << 14)  # 22280: high cloud
    cirrus = (rows >= 70) & (rows < 74) & (cols >= 95) & (cols < 101)
    qa[cirrus] = (1 << 2) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 12) | (3 << 14)  # 54596
    shadow = (rows >= 40) & (rows < 44) & (cols >= 10) & (cols < 15)
    qa[shadow] = (1 << 4) | (1 << 6) | (1 << 8) | (3 << 10) | (1 << 12) | (1 << 14)  # 23888
    medium = (rows == 80) & ((cols == 50) | (cols == 51))
    qa[medium] = (2 << 8) | (1 << 10) | (1 << 12) | (1 << 14)  # medium-confidence cloud
    return qa, cloud | cirrus | shadow | medium


# --------------------------------------------------------------------------- product writer
def mtl_text(variant: str, files: dict[str, str]) -> str:
    level = "L2SP" if variant == "L2SP" else "L1TP"
    pid = PRODUCT_ID.replace("L1TP", level)
    names = "\n".join(
        f'    FILE_NAME_BAND_{role[1:] if role[1:].isdigit() else role} = "{name}"'
        for role, name in files.items()
        if role not in ("QA", "MTL")
    )
    l1 = "\n".join(
        f"    REFLECTANCE_MULT_BAND_{n} = 2.0000E-05\n    REFLECTANCE_ADD_BAND_{n} = -0.100000"
        for n in range(1, 10)
    )
    groups = ""
    if variant == "L2SP":
        sr = "\n".join(
            f"    REFLECTANCE_MULT_BAND_{n} = 2.75E-05\n    REFLECTANCE_ADD_BAND_{n} = -0.2"
            for n in range(1, 8)
        )
        groups += f"  GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS\n{sr}\n"
        groups += "  END_GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS\n"
    if "ST_B10" in files:
        groups += (
            "  GROUP = LEVEL2_SURFACE_TEMPERATURE_PARAMETERS\n"
            "    TEMPERATURE_MAXIMUM_BAND_ST_B10 = 372.999941\n"
            "    TEMPERATURE_MINIMUM_BAND_ST_B10 = 149.003418\n"
            "    TEMPERATURE_MULT_BAND_ST_B10 = 0.00341802\n"
            "    TEMPERATURE_ADD_BAND_ST_B10 = 149.0\n"
            "  END_GROUP = LEVEL2_SURFACE_TEMPERATURE_PARAMETERS\n"
        )
    return f"""GROUP = LANDSAT_METADATA_FILE
  GROUP = PRODUCT_CONTENTS
    ORIGIN = "Image courtesy of the U.S. Geological Survey"
    LANDSAT_PRODUCT_ID = "{pid}"
    PROCESSING_LEVEL = "{level}"
    COLLECTION_NUMBER = 02
    COLLECTION_CATEGORY = "T1"
    OUTPUT_FORMAT = "GEOTIFF"
{names}
    FILE_NAME_QUALITY_L1_PIXEL = "{files["QA"]}"
    FILE_NAME_METADATA_ODL = "{pid}_MTL.txt"
  END_GROUP = PRODUCT_CONTENTS
  GROUP = IMAGE_ATTRIBUTES
    SPACECRAFT_ID = "LANDSAT_8"
    SENSOR_ID = "OLI_TIRS"
    WRS_TYPE = 2
    WRS_PATH = 20
    WRS_ROW = 39
    DATE_ACQUIRED = 2023-08-04
    SCENE_CENTER_TIME = "16:20:05.1234567Z"
    CLOUD_COVER = 3.10
    SUN_AZIMUTH = 112.30451234
    SUN_ELEVATION = {SUN_ELEVATION}
    EARTH_SUN_DISTANCE = 1.0145544
  END_GROUP = IMAGE_ATTRIBUTES
{groups}  GROUP = LEVEL1_PROCESSING_RECORD
    LANDSAT_SCENE_ID = "LC80200392023216LGN00"
  END_GROUP = LEVEL1_PROCESSING_RECORD
  GROUP = LEVEL1_RADIOMETRIC_RESCALING
    RADIANCE_MULT_BAND_10 = 3.3420E-04
    RADIANCE_ADD_BAND_10 = 0.10000
{l1}
  END_GROUP = LEVEL1_RADIOMETRIC_RESCALING
  GROUP = LEVEL1_THERMAL_CONSTANTS
    K1_CONSTANT_BAND_10 = 774.8853
    K2_CONSTANT_BAND_10 = 1321.0789
  END_GROUP = LEVEL1_THERMAL_CONSTANTS
END_GROUP = LANDSAT_METADATA_FILE
END
"""


def write_band(
    path: Path, dn: np.ndarray, transform: Affine = from_origin(*ORIGIN, RES, RES)
) -> None:
    # Creating over an existing GeoTIFF makes GDAL delete its "sidecar" files too — and
    # GDAL counts a Landsat *_MTL.txt as one. Remove the old band file ourselves.
    path.unlink(missing_ok=True)
    profile = {"driver": "GTiff", "height": dn.shape[0], "width": dn.shape[1], "count": 1}
    profile |= {"dtype": "uint16", "crs": CRS.from_epsg(EPSG), "transform": transform}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(dn.astype(np.uint16), 1)


def quantise(values: np.ndarray, mult: float, add: float, fill: np.ndarray) -> np.ndarray:
    dn = np.round((values - add) / mult)
    assert dn[~fill].min() >= 1 and dn[~fill].max() <= 65535
    return np.where(fill, 0, dn).astype(np.uint16)


def write_product(folder: Path, truth: Truth, variant: str = "L1", *, rename: bool = False) -> Path:
    """A Collection 2 product: ``L1`` (B1-B7, B10, QA_PIXEL), ``L1+ST`` (+ ST_B10) or
    ``L2SP`` (SR_B1-B7, ST_B10, QA_PIXEL). ``rename`` names files ``x_B4.tif``."""
    folder.mkdir(parents=True)
    pid = PRODUCT_ID.replace("L1TP", "L2SP" if variant == "L2SP" else "L1TP")
    prefix = f"{pid}_SR" if variant == "L2SP" else pid
    files = {f"B{n}": f"{prefix}_B{n}.TIF" for n in range(1, 8)}
    sin = math.sin(math.radians(SUN_ELEVATION))
    fill = truth.fill
    for n in range(1, 8):
        toa = truth.toa.get(n, truth.toa[2])  # band 1 (unused) = blue
        dn = (
            quantise(toa, SR_MULT, SR_ADD, fill)  # Level-2: surface reflectance as is
            if variant == "L2SP"
            else quantise(toa * sin, REFL_MULT, REFL_ADD, fill)
        )
        write_band(folder / files[f"B{n}"], dn)
    bt = truth.bt_k
    if variant != "L2SP":
        files["B10"] = f"{pid}_B10.TIF"
        radiance = K1 / np.expm1(K2 / bt)
        write_band(folder / files["B10"], quantise(radiance, RAD_MULT, RAD_ADD, fill))
    if variant in ("L1+ST", "L2SP"):
        files["ST_B10"] = f"{pid}_ST_B10.TIF"
        st_k = np.where(np.isnan(truth.lst_c["none"]), 278.15, truth.lst_c["none"] + 273.15)
        write_band(folder / files["ST_B10"], quantise(st_k, ST_MULT, ST_ADD, fill))
    files["QA"] = f"{pid}_QA_PIXEL.TIF"
    write_band(folder / files["QA"], truth.qa)
    (folder / f"{pid}_MTL.txt").write_text(mtl_text(variant, files))
    if rename:
        for path in folder.iterdir():
            tail = path.name[len(pid) :].replace("_SR_", "_")
            path.rename(folder / f"x{tail.lower() if path.suffix == '.TIF' else tail}")
    return folder


# --------------------------------------------------------------------------- any GeoTIFF
LON0, LAT0, STEP_DEG = -87.60, 30.62, 0.0001


SPECTRUM = {"red": 0.08, "green": 0.07, "blue": 0.05, "nir": 0.3, "swir": 0.18}


def write_geotiff(
    path: Path, data: np.ndarray, crs: str | int, transform: Affine, **extra: object
) -> None:
    data = data if data.ndim == 3 else data[None]
    profile = {
        "driver": "GTiff",
        "count": data.shape[0],
        "height": data.shape[1],
        "width": data.shape[2],
    }
    profile |= {"dtype": data.dtype.name, "crs": CRS.from_user_input(crs), "transform": transform}
    with rasterio.open(path, "w", **(profile | extra)) as dst:
        dst.write(data)
        for i, name in enumerate(extra.get("descriptions", ()) or ()):  # type: ignore[arg-type, var-annotated]
            dst.set_band_description(i + 1, str(name))


def write_multiband(path: Path, names: list[str], levels: list[float] | None = None) -> np.ndarray:
    """A geographic (EPSG:4326) float32 reflectance GeoTIFF, ~10 m pixels, band descriptions."""
    rng = np.random.default_rng(3)
    levels = levels or [SPECTRUM[n] for n in names]
    data = np.stack([v * (1 + 0.1 * rng.random((200, 200))) for v in levels]).astype(np.float32)
    write_geotiff(path, data, 4326, from_origin(LON0, LAT0, STEP_DEG, STEP_DEG), descriptions=names)
    return data
