"""Synthetic Sentinel-2 L2A products (SAFE folders, STAC items) for the import tests.

Written the way ESA writes them: a ``S2B_MSIL2A_<sensing>_N<baseline>_R126_T16RDU_
<generation>.SAFE`` folder with ``MTD_MSIL2A.xml`` (PSD element names: PRODUCT_URI,
PROCESSING_BASELINE, Special_Values, QUANTIFICATION_VALUES_LIST, BOA_ADD_OFFSET per
band_id from baseline 04.00 only, Spectral_Information, Scene_Classification_List,
Product_Footprint), ``GRANULE/L2A_*/MTD_TL.xml`` (HORIZONTAL_CS_CODE, Size and
Geoposition per resolution) and lossless JPEG2000 band files under
``IMG_DATA/R10m|R20m|R60m`` named ``T16RDU_<sensing>_B04_10m.jp2``.

The digital numbers are chosen first (:class:`Truth`), so every expected value is
exact integer arithmetic here: stored reflectance × 10 000 = DN + BOA_ADD_OFFSET.
The tile lies inside the synthetic Landsat product of ``landsat_support`` (same
UTM zone 16N, two days apart), which serves as the thermal product.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.transform import from_origin

EPSG = 32616
ULX, ULY = 500_400.0, 3_399_600.0  # inside landsat_support's product (500010.., 3400020..)
HEIGHT, WIDTH = 96, 120  # 10 m pixels; 48 x 60 at 20 m, 16 x 20 at 60 m
SENSING = "20230806T163839"
SENSING_ISO = "2023-08-06T16:38:39.024Z"
GENERATED = "20230806T204817"
TILE = "16RDU"
OFFSET = -1000
QUANTIFICATION = 10000
BAND_IDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10"]
BAND_IDS += ["B11", "B12"]
TEN_M = ("B02", "B03", "B04", "B08")
TWENTY_M = ("B11", "B12", "SCL")
TERRAOPS = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir": "B11"}
SCL_LEGEND = {
    0: "SC_NODATA", 1: "SC_SATURATED_DEFECTIVE", 2: "SC_DARK_FEATURE_SHADOW",
    3: "SC_CLOUD_SHADOW", 4: "SC_VEGETATION", 5: "SC_NOT_VEGETATED", 6: "SC_WATER",
    7: "SC_UNCLASSIFIED", 8: "SC_CLOUD_MEDIUM_PROBA", 9: "SC_CLOUD_HIGH_PROBA",
    10: "SC_THIN_CIRRUS", 11: "SC_SNOW_ICE",
}  # fmt: skip
MASKED = (0, 1, 3, 8, 9, 10, 11)
PSD = "https://psd-14.sentinel2.eo.esa.int/PSD"


@dataclass
class Truth:
    reflectance_e4: dict[str, np.ndarray]  # band → reflectance × 10 000 (int), native grid
    scl: np.ndarray  # 20 m codes
    saturated: np.ndarray  # 10 m pixels where B04 is 65535
    masked: np.ndarray  # 10 m: what the import must mask

    def dn(self, band: str, offset: int) -> np.ndarray:
        """Digital numbers a product of this offset stores (0 stays no data)."""
        value = self.reflectance_e4[band]
        dn = np.where(value == 0, 0, value - offset)
        if band == "B04":
            dn = np.where(self.saturated, 65535, dn)
        return dn.astype(np.uint16)


def up(a: np.ndarray, k: int = 2) -> np.ndarray:
    return np.repeat(np.repeat(a, k, axis=0), k, axis=1)


def make_truth(seed: int = 0) -> Truth:
    """Vegetation | urban | water columns; SCL classes painted on the 20 m grid."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = {
        "B02": (300, 1000, 400),
        "B03": (600, 1200, 500),
        "B04": (400, 1400, 300),
        "B08": (3500, 2200, 100),
    }
    classes = np.select([cols < 40, cols < 80], [0, 1], 2)
    refl: dict[str, np.ndarray] = {}
    for band, levels in base.items():
        level = np.choose(classes, levels)
        refl[band] = np.round(level * (1 + 0.2 * rng.random((HEIGHT, WIDTH)))).astype(np.int64)
    r20, c20 = np.mgrid[0 : HEIGHT // 2, 0 : WIDTH // 2]
    refl["B11"] = (1500 + 40 * c20 + 20 * r20).astype(np.int64)  # a plane: bilinear is exact
    refl["B12"] = refl["B11"] - 300
    scl = np.choose(np.select([c20 < 20, c20 < 40], [0, 1], 2), (4, 5, 6)).astype(np.uint8)
    scl[10:14, 25:29] = 3  # cloud shadow
    scl[30:34, 10:15] = 8  # cloud, medium probability
    scl[30:36, 30:36] = 9  # cloud, high probability
    scl[5:8, 45:50] = 10  # thin cirrus
    scl[40:43, 50:54] = 11  # snow
    scl[20:23, 5:8] = 2  # dark feature: kept
    scl[40:42, 5:8] = 7  # unclassified: kept
    scl[:, :2] = 0  # no data along the swath edge
    scl[44:46, 20:22] = 1  # saturated / defective
    nodata10 = up(scl == 0)
    for band in TEN_M:
        refl[band][nodata10] = 0
    for band in ("B11", "B12"):
        refl[band][scl == 0] = 0
    saturated = up(scl == 1) & (rows % 2 == 0)  # B04 saturates on some of those pixels
    masked = up(np.isin(scl, MASKED)) | saturated
    return Truth(refl, scl, saturated, masked)


# --------------------------------------------------------------------------- XML
def _footprint() -> str:
    to_lonlat = Transformer.from_crs(EPSG, 4326, always_xy=True)
    x1, y1 = ULX + WIDTH * 10, ULY - HEIGHT * 10
    ring = [(ULX, ULY), (x1, ULY), (x1, y1), (ULX, y1), (ULX, ULY)]
    return " ".join(f"{lat:.6f} {lon:.6f}" for lon, lat in (to_lonlat.transform(*p) for p in ring))


def mtd_msil2a(baseline: str, files: list[str], *, offsets: bool | None = None) -> str:
    """``MTD_MSIL2A.xml``; ``offsets`` defaults to what the baseline has (≥ 04.00)."""
    has_offsets = float(baseline) >= 4.0 if offsets is None else offsets
    uri = product_name(baseline)
    images = "\n".join(f"            <IMAGE_FILE>{f}</IMAGE_FILE>" for f in files)
    offset_list = ""
    if has_offsets:
        items = "\n".join(
            f'        <BOA_ADD_OFFSET band_id="{i}">{OFFSET}</BOA_ADD_OFFSET>'
            for i in range(len(BAND_IDS))
        )
        offset_list = (
            f"      <BOA_ADD_OFFSET_VALUES_LIST>\n{items}\n      </BOA_ADD_OFFSET_VALUES_LIST>"
        )
    spectral = "\n".join(
        f'        <Spectral_Information bandId="{i}" physicalBand="B{b[1:].lstrip("0")}">'
        "<RESOLUTION>10</RESOLUTION></Spectral_Information>"
        for i, b in enumerate(BAND_IDS)
    )
    legend = "\n".join(
        f"        <Scene_Classification_ID><SCL_TEXT>{text}</SCL_TEXT>"
        f"<SCL_INDEX>{code}</SCL_INDEX></Scene_Classification_ID>"
        for code, text in SCL_LEGEND.items()
    )
    n = baseline.replace(".", "")
    granule = (
        f'datastripIdentifier="S2B_OPER_MSI_L2A_DS_2BPS_{GENERATED}_S{SENSING}_N{n}" '
        f'granuleIdentifier="S2B_OPER_MSI_L2A_TL_2BPS_{GENERATED}_A033512_T{TILE}_N{n}" '
        'imageFormat="JPEG2000"'
    )
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:Level-2A_User_Product xmlns:n1="{PSD}/User_Product_Level-2A.xsd">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>{SENSING_ISO}</PRODUCT_START_TIME>
      <PRODUCT_STOP_TIME>{SENSING_ISO}</PRODUCT_STOP_TIME>
      <PRODUCT_URI>{uri}.SAFE</PRODUCT_URI>
      <PROCESSING_LEVEL>Level-2A</PROCESSING_LEVEL>
      <PRODUCT_TYPE>S2MSI2A</PRODUCT_TYPE>
      <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
      <GENERATION_TIME>2023-08-06T20:48:17.000000Z</GENERATION_TIME>
      <Datatake datatakeIdentifier="GS2B_{SENSING}_033512_N{baseline.replace(".", "")}">
        <SPACECRAFT_NAME>Sentinel-2B</SPACECRAFT_NAME>
        <DATATAKE_TYPE>INS-NOBS</DATATAKE_TYPE>
        <DATATAKE_SENSING_START>{SENSING_ISO}</DATATAKE_SENSING_START>
        <SENSING_ORBIT_NUMBER>126</SENSING_ORBIT_NUMBER>
        <SENSING_ORBIT_DIRECTION>DESCENDING</SENSING_ORBIT_DIRECTION>
      </Datatake>
      <Product_Organisation>
        <Granule_List>
          <Granule {granule}>
{images}
          </Granule>
        </Granule_List>
      </Product_Organisation>
    </Product_Info>
    <Product_Image_Characteristics>
      <Special_Values><SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX></Special_Values>
      <Special_Values><SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX></Special_Values>
      <QUANTIFICATION_VALUES_LIST>
        <BOA_QUANTIFICATION_VALUE unit="none">{QUANTIFICATION}</BOA_QUANTIFICATION_VALUE>
        <AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>
        <WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE>
      </QUANTIFICATION_VALUES_LIST>
{offset_list}
      <Spectral_Information_List>
{spectral}
      </Spectral_Information_List>
      <Scene_Classification_List>
{legend}
      </Scene_Classification_List>
    </Product_Image_Characteristics>
  </n1:General_Info>
  <n1:Geometric_Info>
    <Product_Footprint>
      <Product_Footprint><Global_Footprint><EXT_POS_LIST>{_footprint()}</EXT_POS_LIST></Global_Footprint></Product_Footprint>
      <RASTER_CS_TYPE>POINT</RASTER_CS_TYPE>
      <PIXEL_ORIGIN>1</PIXEL_ORIGIN>
    </Product_Footprint>
  </n1:Geometric_Info>
</n1:Level-2A_User_Product>
"""


def mtd_tl() -> str:
    sizes = "\n".join(
        f'      <Size resolution="{r}"><NROWS>{HEIGHT * 10 // r}</NROWS>'
        f"<NCOLS>{WIDTH * 10 // r}</NCOLS></Size>"
        for r in (10, 20, 60)
    )
    positions = "\n".join(
        f'      <Geoposition resolution="{r}"><ULX>{ULX:.0f}</ULX><ULY>{ULY:.0f}</ULY>'
        f"<XDIM>{r}</XDIM><YDIM>-{r}</YDIM></Geoposition>"
        for r in (10, 20, 60)
    )
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:Level-2A_Tile_ID xmlns:n1="{PSD}/S2_PDI_Level-2A_Tile_Metadata.xsd">
  <n1:General_Info>
    <TILE_ID metadataLevel="Brief">S2B_OPER_MSI_L2A_TL_2BPS_{GENERATED}_A033512_T{TILE}</TILE_ID>
    <SENSING_TIME metadataLevel="Standard">{SENSING_ISO}</SENSING_TIME>
  </n1:General_Info>
  <n1:Geometric_Info>
    <Tile_Geocoding metadataLevel="Brief">
      <HORIZONTAL_CS_NAME>WGS84 / UTM zone 16N</HORIZONTAL_CS_NAME>
      <HORIZONTAL_CS_CODE>EPSG:{EPSG}</HORIZONTAL_CS_CODE>
{sizes}
{positions}
    </Tile_Geocoding>
  </n1:Geometric_Info>
</n1:Level-2A_Tile_ID>
"""


# --------------------------------------------------------------------------- writers
def product_name(baseline: str) -> str:
    return f"S2B_MSIL2A_{SENSING}_N{baseline.replace('.', '')}_R126_T{TILE}_{GENERATED}"


def write_raster(path: Path, data: np.ndarray, res: int, driver: str = "GTiff") -> None:
    profile = {"driver": driver, "height": data.shape[0], "width": data.shape[1], "count": 1}
    profile |= {"dtype": data.dtype.name, "crs": CRS.from_epsg(EPSG)}
    profile["transform"] = from_origin(ULX, ULY, res, res)
    if driver == "JP2OpenJPEG":
        profile |= {"QUALITY": "100", "REVERSIBLE": "YES"}  # lossless, as ESA's JP2s
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def band_arrays(truth: Truth, offset: int) -> dict[str, np.ndarray]:
    arrays = {band: truth.dn(band, offset) for band in (*TEN_M, "B11", "B12")}
    arrays["SCL"] = truth.scl
    return arrays


def write_safe(root: Path, truth: Truth, baseline: str = "04.00") -> Path:
    """A SAFE folder of ``baseline`` (offset −1000 from 04.00, none before)."""
    offset = OFFSET if float(baseline) >= 4.0 else 0
    safe = root / f"{product_name(baseline)}.SAFE"
    granule = f"GRANULE/L2A_T{TILE}_A033512_{SENSING}"
    files = []
    for band, data in band_arrays(truth, offset).items():
        res = 10 if band in TEN_M else 20
        relative = f"{granule}/IMG_DATA/R{res}m/T{TILE}_{SENSING}_{band}_{res}m"
        write_raster(safe / f"{relative}.jp2", data, res, "JP2OpenJPEG")
        files.append(relative)
    (safe / granule / "AUX_DATA").mkdir(parents=True)
    (safe / granule / "IMG_DATA" / "R60m").mkdir(parents=True)
    (safe / "MTD_MSIL2A.xml").write_text(mtd_msil2a(baseline, files))
    (safe / granule / "MTD_TL.xml").write_text(mtd_tl())
    return safe


# --------------------------------------------------------------------------- STAC items
EARTH_SEARCH = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir"}
EARTH_SEARCH |= {"B11": "swir16", "B12": "swir22", "SCL": "scl"}
PLANETARY = {band: band for band in EARTH_SEARCH}


def _item(item_id: str, properties: dict, assets: dict, collection: str) -> dict:
    to_lonlat = Transformer.from_crs(EPSG, 4326, always_xy=True)
    (x0, y0), (x1, y1) = (
        to_lonlat.transform(ULX, ULY - HEIGHT * 10),
        to_lonlat.transform(ULX + WIDTH * 10, ULY),
    )
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [],
        "id": item_id,
        "collection": collection,
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]],
        },
        "bbox": [x0, y0, x1, y1],
        "properties": properties,
        "links": [],
        "assets": assets,
    }


def write_s2_item(
    folder: Path,
    truth: Truth,
    *,
    style: str = "earth-search",
    baseline: str = "04.00",
    offset_in_files: int | None = None,
    **extra_properties: object,
) -> Path:
    """A Sentinel-2 L2A item (earth-search or Planetary Computer keys) with local COGs.

    ``offset_in_files`` is the offset the files' DN carry (default: the baseline's)."""
    folder.mkdir(parents=True, exist_ok=True)
    offset = OFFSET if float(baseline) >= 4.0 else 0
    offset = offset if offset_in_files is None else offset_in_files
    keys = EARTH_SEARCH if style == "earth-search" else PLANETARY
    assets = {}
    for band, data in band_arrays(truth, offset).items():
        res = 10 if band in TEN_M else 20
        write_raster(folder / f"{band}.tif", data, res)
        asset: dict = {"href": f"./{band}.tif", "type": "image/tiff; application=geotiff"}
        if band != "SCL":
            asset["raster:bands"] = [{"nodata": 0, "scale": 0.0001, "offset": OFFSET / 1e4}]
        assets[keys[band]] = asset
    item_id = f"S2B_{TILE}_20230806_0_L2A" if style == "earth-search" else product_name(baseline)
    properties = {
        "datetime": SENSING_ISO,
        "platform": "sentinel-2b",
        "constellation": "sentinel-2",
        "s2:processing_baseline": baseline,
        "s2:mgrs_tile": TILE,
        "s2:product_uri": f"{product_name(baseline)}.SAFE",
        **extra_properties,
    }
    path = folder / "item.json"
    path.write_text(json.dumps(_item(item_id, properties, assets, "sentinel-2-l2a"), indent=1))
    return path


LANDSAT_KEYS = {"B2": "blue", "B3": "green", "B4": "red", "B5": "nir08", "B6": "swir16"}
LANDSAT_KEYS |= {"B7": "swir22", "QA": "qa_pixel"}


def write_landsat_item(path: Path, product: Path, *, style: str = "common") -> Path:
    """A Landsat C2 item over a product folder of ``landsat_support`` (hrefs absolute).

    ``style="common"``: eo common names (USGS, Planetary Computer, earth-search);
    ``"roles"``: the file roles (``SR_B4``, ``ST_B10``, ``QA_PIXEL``, ``MTL.txt``)."""
    files = {p.name: p for p in product.iterdir()}
    level2 = any("_SR_" in name for name in files)
    assets: dict[str, dict] = {}
    for name, file in files.items():
        stem = name.rsplit(".", 1)[0]
        if stem.endswith("_MTL"):
            key = "mtl.txt" if style == "common" else "MTL.txt"
        elif stem.endswith(("_B10", "_ST_B10")):
            key = "lwir11" if style == "common" else stem.rsplit("_", 2)[-2] + "_B10"
            key = key if style == "common" or level2 else "B10"
        else:
            role = "QA" if stem.endswith("QA_PIXEL") else stem.rsplit("_", 1)[-1]
            if role not in LANDSAT_KEYS:
                continue
            key = LANDSAT_KEYS[role] if style == "common" else stem.split("_", 7)[-1]
        assets[key] = {"href": str(file), "type": "image/tiff; application=geotiff"}
    item_id = next(n for n in files if n.endswith("_MTL.txt")).removesuffix("_MTL.txt")
    collection = "landsat-c2-l2" if level2 else "landsat-c2-l1"
    properties = {"datetime": "2023-08-04T16:20:05.123456Z", "platform": "landsat-8"}
    path.write_text(json.dumps(_item(item_id, properties, assets, collection), indent=1))
    return path
