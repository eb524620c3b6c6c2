"""Landsat domain maths: MTL generations, radiometry, emissivity/LST, QA bits, cloud tests.

Expected values are the published equations and USGS' documented QA values
written out here, not calls back into terraops.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from terraops.domain.landsat import clouds, mtl, product, radiometry
from terraops.errors import InvalidInputError

# A trimmed copy of the real pre-collection MTL of LC80200392015216LGN00 (the sample).
PRE_COLLECTION_MTL = """GROUP = L1_METADATA_FILE
  GROUP = METADATA_FILE_INFO
    ORIGIN = "Image courtesy of the U.S. Geological Survey"
    LANDSAT_SCENE_ID = "LC80200392015216LGN00"
    FILE_DATE = 2015-08-04T21:11:59Z
  END_GROUP = METADATA_FILE_INFO
  GROUP = PRODUCT_METADATA
    DATA_TYPE = "L1T"
    SPACECRAFT_ID = "LANDSAT_8"
    SENSOR_ID = "OLI_TIRS"
    WRS_PATH = 20
    WRS_ROW = 39
    DATE_ACQUIRED = 2015-08-04
    SCENE_CENTER_TIME = "16:19:21.7917421Z"
    FILE_NAME_BAND_4 = "LC80200392015216LGN00_B4.TIF"
    FILE_NAME_BAND_10 = "LC80200392015216LGN00_B10.TIF"
    FILE_NAME_BAND_QUALITY = "LC80200392015216LGN00_BQA.TIF"
  END_GROUP = PRODUCT_METADATA
  GROUP = IMAGE_ATTRIBUTES
    SUN_AZIMUTH = 115.87210674
    SUN_ELEVATION = 64.74360932
    EARTH_SUN_DISTANCE = 1.0145544
  END_GROUP = IMAGE_ATTRIBUTES
  GROUP = RADIOMETRIC_RESCALING
    RADIANCE_MULT_BAND_10 = 3.3420E-04
    RADIANCE_ADD_BAND_10 = 0.10000
{reflectance}
  END_GROUP = RADIOMETRIC_RESCALING
  GROUP = TIRS_THERMAL_CONSTANTS
    K1_CONSTANT_BAND_10 = 774.8853
    K2_CONSTANT_BAND_10 = 1321.0789
  END_GROUP = TIRS_THERMAL_CONSTANTS
END_GROUP = L1_METADATA_FILE
END
"""


def reflectance_lines(mult: str = "2.0000E-05", add: str = "-0.100000") -> str:
    return "\n".join(
        f"    REFLECTANCE_MULT_BAND_{n} = {mult}\n    REFLECTANCE_ADD_BAND_{n} = {add}"
        for n in range(1, 10)
    )


def pre_collection() -> str:
    return PRE_COLLECTION_MTL.replace("{reflectance}", reflectance_lines())


def collection1() -> str:
    """The same scene laid out as Collection 1 writes it (ids and QA name change)."""
    text = pre_collection().replace(
        "    FILE_DATE = 2015-08-04T21:11:59Z\n",
        '    LANDSAT_PRODUCT_ID = "LC08_L1TP_020039_20150804_20170406_01_T1"\n'
        "    COLLECTION_NUMBER = 01\n",
    )
    return text.replace('"L1T"', '"L1TP"').replace(
        '"LC80200392015216LGN00_BQA.TIF"', '"LC08_L1TP_020039_20150804_20170406_01_T1_BQA.TIF"'
    )


def collection2_level2() -> str:
    return f"""GROUP = LANDSAT_METADATA_FILE
  GROUP = PRODUCT_CONTENTS
    LANDSAT_PRODUCT_ID = "LC08_L2SP_020039_20230804_20230812_02_T1"
    PROCESSING_LEVEL = "L2SP"
    COLLECTION_NUMBER = 02
    FILE_NAME_BAND_4 = "LC08_L2SP_020039_20230804_20230812_02_T1_SR_B4.TIF"
    FILE_NAME_BAND_ST_B10 = "LC08_L2SP_020039_20230804_20230812_02_T1_ST_B10.TIF"
    FILE_NAME_QUALITY_L1_PIXEL = "LC08_L2SP_020039_20230804_20230812_02_T1_QA_PIXEL.TIF"
  END_GROUP = PRODUCT_CONTENTS
  GROUP = IMAGE_ATTRIBUTES
    SPACECRAFT_ID = "LANDSAT_9"
    SENSOR_ID = "OLI_TIRS"
    WRS_PATH = 20
    WRS_ROW = 39
    DATE_ACQUIRED = 2023-08-04
    SCENE_CENTER_TIME = "16:20:05.1Z"
    SUN_ELEVATION = 61.2
  END_GROUP = IMAGE_ATTRIBUTES
  GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS
{reflectance_lines("2.75E-05", "-0.2")}
  END_GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS
  GROUP = LEVEL2_SURFACE_TEMPERATURE_PARAMETERS
    TEMPERATURE_MULT_BAND_ST_B10 = 0.00341802
    TEMPERATURE_ADD_BAND_ST_B10 = 149.0
  END_GROUP = LEVEL2_SURFACE_TEMPERATURE_PARAMETERS
  GROUP = LEVEL1_PROCESSING_RECORD
    LANDSAT_SCENE_ID = "LC90200392023216LGN00"
  END_GROUP = LEVEL1_PROCESSING_RECORD
  GROUP = LEVEL1_RADIOMETRIC_RESCALING
{reflectance_lines()}
  END_GROUP = LEVEL1_RADIOMETRIC_RESCALING
END_GROUP = LANDSAT_METADATA_FILE
END
"""


# --------------------------------------------------------------------------- MTL
def test_pre_collection_mtl() -> None:
    meta = mtl.product_metadata(mtl.parse_mtl(pre_collection()))
    assert meta.collection == "pre-collection" and meta.qa_scheme == "pre-collection"
    assert meta.product_id == meta.scene_id == "LC80200392015216LGN00"
    assert (meta.spacecraft, meta.sensor, meta.processing_level) == ("LANDSAT_8", "OLI_TIRS", "L1T")
    assert meta.acquired == "2015-08-04T16:19:21.791742Z"
    assert (meta.wrs_path, meta.wrs_row) == (20, 39)
    assert meta.sun_elevation == 64.74360932 and meta.sun_azimuth == 115.87210674
    assert meta.earth_sun_distance == 1.0145544
    assert meta.reflectance_level == "toa"
    assert meta.reflective[4] == mtl.Calibration(2.0e-5, -0.1)
    assert meta.thermal == mtl.ThermalCalibration(
        mtl.Calibration(3.342e-4, 0.1), 774.8853, 1321.0789
    )
    assert meta.surface_temperature is None
    assert meta.file_names["QA"] == "LC80200392015216LGN00_BQA.TIF"
    assert meta.file_names["B10"] == "LC80200392015216LGN00_B10.TIF"


def test_collection1_mtl() -> None:
    meta = mtl.product_metadata(mtl.parse_mtl(collection1()))
    assert meta.collection == "1" and meta.qa_scheme == "C1"
    assert meta.product_id == "LC08_L1TP_020039_20150804_20170406_01_T1"
    assert meta.scene_id == "LC80200392015216LGN00"
    assert meta.file_names["QA"].endswith("_01_T1_BQA.TIF")


def test_collection2_level2_mtl_uses_the_level2_constants() -> None:
    meta = mtl.product_metadata(mtl.parse_mtl(collection2_level2()))
    assert meta.collection == "2" and meta.qa_scheme == "C2"
    assert meta.spacecraft == "LANDSAT_9" and meta.processing_level == "L2SP"
    assert meta.reflectance_level == "surface"
    assert meta.reflective[4] == mtl.Calibration(2.75e-5, -0.2)  # not Level-1's 2e-5
    assert meta.surface_temperature == mtl.Calibration(0.00341802, 149.0)
    assert meta.thermal is None and "K1_CONSTANT_BAND_10" in meta.missing_thermal
    assert meta.file_names["ST_B10"].endswith("_ST_B10.TIF")
    assert meta.file_names["QA"].endswith("_QA_PIXEL.TIF")
    assert meta.acquired == "2023-08-04T16:20:05.100000Z"
    assert mtl.thermal_source(meta, have_b10=False, have_st=True) == "st"


def test_not_an_mtl_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="not a Landsat MTL"):
        mtl.parse_mtl("hello = world\n")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('"LANDSAT_8"', '"LANDSAT_5"'), "unsupported spacecraft 'LANDSAT_5'"),
        (("    SUN_ELEVATION = 64.74360932\n", ""), "SUN_ELEVATION"),
        (("REFLECTANCE_ADD_BAND_6 =", "XREFLECTANCE_ADD_BAND_6 ="), "REFLECTANCE_ADD_BAND_6"),
        (('    LANDSAT_SCENE_ID = "LC80200392015216LGN00"\n', ""), "LANDSAT_SCENE_ID"),
    ],
)
def test_unusable_mtl_is_refused(edit: tuple[str, str], message: str) -> None:
    text = pre_collection().replace(*edit)
    with pytest.raises(InvalidInputError, match=message):
        mtl.product_metadata(mtl.parse_mtl(text))


def test_thermal_source_explains_what_is_missing() -> None:
    text = pre_collection().replace("    K2_CONSTANT_BAND_10 = 1321.0789\n", "")
    meta = mtl.product_metadata(mtl.parse_mtl(text))
    assert meta.thermal is None
    with pytest.raises(InvalidInputError, match="K2_CONSTANT_BAND_10"):
        mtl.thermal_source(meta, have_b10=True, have_st=False)
    with pytest.raises(InvalidInputError, match=r"B10 \(or Level-2 ST_B10\)"):
        mtl.thermal_source(meta, have_b10=False, have_st=False)
    complete = mtl.product_metadata(mtl.parse_mtl(pre_collection()))
    assert mtl.thermal_source(complete, have_b10=True, have_st=False) == "b10"
    with pytest.raises(InvalidInputError, match="TEMPERATURE_MULT_BAND_ST_B10"):
        mtl.thermal_source(complete, have_b10=False, have_st=True)


def test_file_endings_do_not_confuse_band_1_with_band_10() -> None:
    assert not "test_b10".endswith(mtl.file_suffixes("B1"))
    assert "test_b1".endswith(mtl.file_suffixes("B1"))
    assert "x_qa_pixel".endswith(mtl.file_suffixes("QA"))
    assert "test_bqa".endswith(mtl.file_suffixes("QA"))


# --------------------------------------------------------------------------- radiometry
def test_toa_reflectance_follows_the_handbook() -> None:
    dn = np.array([0, 10_000, 30_000], dtype=np.uint16)
    cal = mtl.Calibration(2.0e-5, -0.1)
    rho = radiometry.toa_reflectance(dn, cal, sun_elevation_deg=30.0)
    assert math.isnan(rho[0])
    # (2e-5 · DN − 0.1) / sin(30°) = 2 × (…)
    np.testing.assert_allclose(rho[1:], [2 * 0.1, 2 * 0.5], rtol=1e-6)


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=180.0, max_value=380.0))
def test_brightness_temperature_inverts_planck(bt_k: float) -> None:
    k1, k2 = 774.8853, 1321.0789
    radiance = radiometry.radiance_from_brightness_temperature(np.array([bt_k]), k1, k2)
    assert radiance[0] == pytest.approx(k1 / (math.exp(k2 / bt_k) - 1), rel=1e-12)
    back = radiometry.brightness_temperature(radiance, k1, k2)
    assert back[0] == pytest.approx(bt_k, rel=1e-12)


def test_brightness_temperature_known_value() -> None:
    # L = 10 W m-2 sr-1 um-1 with the band-10 constants: K2 / ln(K1/L + 1)
    bt = radiometry.brightness_temperature(np.array([10.0]), 774.8853, 1321.0789)[0]
    assert bt == pytest.approx(1321.0789 / math.log(77.48853 + 1), rel=1e-12)
    assert 300 < bt < 305


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=200.0, max_value=350.0), st.floats(min_value=0.9, max_value=1.0))
def test_lst_emissivity_correction_is_invertible(bt_k: float, eps: float) -> None:
    lst = float(radiometry.land_surface_temperature(np.array([bt_k]), np.array([eps]))[0])
    k = 10.895 / 14388.0 * math.log(eps)
    assert lst == pytest.approx(bt_k / (1 + k * bt_k), rel=1e-12)
    assert lst >= bt_k  # a grey body is warmer than its brightness temperature
    assert lst / (1 - k * lst) == pytest.approx(bt_k, rel=1e-9)


@pytest.mark.parametrize(
    ("ndvi", "red", "ndwi", "expected"),
    [
        (0.10, 0.20, -0.3, 0.979 - 0.035 * 0.20),  # bare soil
        (0.70, 0.03, -0.6, 0.99),  # full vegetation
        # Pv = ((0.35 − 0.2)/0.3)² = 0.25: 0.99·0.25 + 0.97·0.75 + 0.03·0.75·0.55·0.99
        (0.35, 0.08, -0.4, 0.2475 + 0.7275 + 0.01225125),
        (0.05, 0.04, 0.30, 0.99),  # water, whatever its NDVI
        (0.20, 0.10, -0.2, 0.97 + 0.03 * 0.55 * 0.99),  # Pv = 0 starts the mixed branch
    ],
)
def test_emissivity_ndvi_thresholds(ndvi: float, red: float, ndwi: float, expected: float) -> None:
    eps = radiometry.emissivity_ndvi_threshold(np.array([ndvi]), np.array([red]), np.array([ndwi]))
    assert eps[0] == pytest.approx(expected, abs=1e-6)


def test_emissivity_is_continuous_into_full_vegetation_and_nan_without_ndvi() -> None:
    ndvi = np.array([0.5 - 1e-9, 0.5 + 1e-9, np.nan])
    eps = radiometry.emissivity_ndvi_threshold(ndvi, np.full(3, 0.05), np.full(3, -0.5))
    assert eps[0] == pytest.approx(eps[1], abs=1e-6) and math.isnan(eps[2])


def test_dos1_haze_is_the_dark_object_minus_one_percent() -> None:
    values = np.concatenate([np.full(1000, 0.06), np.linspace(0.07, 0.3, 99_000), [np.nan]])
    assert radiometry.dos1_haze(values) == pytest.approx(0.05, abs=1e-9)
    assert radiometry.dos1_haze(np.full(10, 0.004)) == 0.0  # never adds reflectance
    assert radiometry.dos1_haze(np.full(10, np.nan)) == 0.0


# --------------------------------------------------------------------------- QA bits
KNOWN_QA = {
    # USGS documented values; flags = (fill, cloud, cirrus, shadow)
    "pre-collection": {
        1: (True, False, False, False),
        20480: (False, False, False, False),  # cloud and cirrus "no"
        20512: (False, False, False, False),  # ... + water "maybe"
        23552: (False, False, False, False),  # ... + snow "yes"
        28672: (False, False, True, False),  # cirrus "yes"
        36864: (False, True, False, False),  # cloud "maybe"
        53248: (False, True, False, False),  # cloud "yes"
        61440: (False, True, True, False),
    },
    "C1": {
        1: (True, False, False, False),
        2720: (False, False, False, False),  # clear, all confidences low
        2724: (False, False, False, False),  # clear + radiometric saturation
        2800: (False, True, False, False),  # high-confidence cloud
        2976: (False, False, False, True),  # high-confidence cloud shadow
        6816: (False, False, True, False),  # high-confidence cirrus
    },
    "C2": {
        1: (True, False, False, False),
        21824: (False, False, False, False),  # clear land
        21952: (False, False, False, False),  # clear water
        21826: (False, True, False, False),  # dilated cloud
        22280: (False, True, False, False),  # high-confidence cloud
        23888: (False, False, False, True),  # cloud shadow
        54596: (False, False, True, False),  # high cirrus
        55052: (False, True, True, False),
    },
}


@pytest.mark.parametrize("scheme", list(KNOWN_QA))
def test_documented_qa_values(scheme: str) -> None:
    values = np.array(list(KNOWN_QA[scheme]), dtype=np.uint16)
    flags = clouds.decode_qa(values, scheme)
    for i, (value, expected) in enumerate(KNOWN_QA[scheme].items()):
        got = (bool(flags.fill[i]), bool(flags.cloud[i]), bool(flags.cirrus[i]))
        assert (*got, bool(flags.shadow[i])) == expected, (scheme, value)


@settings(max_examples=300, deadline=None)
@given(
    fill=st.booleans(),
    dilated=st.booleans(),
    cirrus=st.booleans(),
    cloud=st.booleans(),
    shadow=st.booleans(),
    cloud_conf=st.integers(0, 3),
    other=st.integers(0, 3),
)
def test_c2_qa_bits_decode_as_composed(
    fill: bool, dilated: bool, cirrus: bool, cloud: bool, shadow: bool, cloud_conf: int, other: int
) -> None:
    value = fill | dilated << 1 | cirrus << 2 | cloud << 3 | shadow << 4 | cloud_conf << 8
    value |= other << 10 | other << 12 | other << 14  # shadow/snow/cirrus confidences: ignored
    flags = clouds.decode_qa(np.array([value], dtype=np.uint16), "C2")
    assert bool(flags.fill[0]) == fill
    assert bool(flags.cloud[0]) == (not fill and (dilated or cloud or cloud_conf >= 2))
    assert bool(flags.cirrus[0]) == (not fill and cirrus)
    assert bool(flags.shadow[0]) == (not fill and shadow)


@settings(max_examples=300, deadline=None)
@given(
    fill=st.booleans(),
    cloud=st.booleans(),
    cloud_conf=st.integers(0, 3),
    shadow_conf=st.integers(0, 3),
    cirrus_conf=st.integers(0, 3),
    snow_conf=st.integers(0, 3),
)
def test_c1_qa_bits_decode_as_composed(
    fill: bool, cloud: bool, cloud_conf: int, shadow_conf: int, cirrus_conf: int, snow_conf: int
) -> None:
    value = fill | cloud << 4 | cloud_conf << 5 | shadow_conf << 7 | snow_conf << 9
    value |= cirrus_conf << 11
    flags = clouds.decode_qa(np.array([value], dtype=np.uint16), "C1")
    assert bool(flags.cloud[0]) == (not fill and (cloud or cloud_conf >= 2))
    assert bool(flags.shadow[0]) == (not fill and shadow_conf >= 2)
    assert bool(flags.cirrus[0]) == (not fill and cirrus_conf == 3)


@settings(max_examples=200, deadline=None)
@given(cloud_conf=st.integers(0, 3), cirrus_conf=st.integers(0, 3), low_bits=st.integers(0, 4095))
def test_pre_collection_qa_bits_decode_as_composed(
    cloud_conf: int, cirrus_conf: int, low_bits: int
) -> None:
    value = cloud_conf << 14 | cirrus_conf << 12 | (low_bits & ~1)  # not fill
    flags = clouds.decode_qa(np.array([value], dtype=np.uint16), "pre-collection")
    assert bool(flags.cloud[0]) == (cloud_conf >= 2)
    assert bool(flags.cirrus[0]) == (cirrus_conf == 3)
    assert not flags.fill[0] and not flags.shadow[0]


# --------------------------------------------------------------------------- cloud tests
CLOUD_PIXEL = {2: 0.45, 3: 0.45, 4: 0.44, 5: 0.47, 6: 0.38, 7: 0.28}


def pcp(changes: dict[int, float], bt_c: float = 5.0) -> bool:
    toa = {n: np.array([changes.get(n, v)]) for n, v in CLOUD_PIXEL.items()}
    return bool(clouds.potential_cloud(toa, np.array([bt_c]))[0])


def test_a_bright_white_cold_pixel_is_a_potential_cloud() -> None:
    assert pcp({})


@pytest.mark.parametrize(
    ("changes", "bt_c", "why"),
    [
        ({7: 0.02}, 5.0, "SWIR-2 <= 0.03"),
        ({}, 30.0, "BT >= 27 C"),
        ({6: 0.02}, 5.0, "NDSI >= 0.8 (snow)"),
        ({4: 0.10}, 5.0, "whiteness >= 0.7 (coloured)"),
        ({2: 0.20, 3: 0.20, 4: 0.26}, 5.0, "HOT <= 0 (no haze excess in blue)"),
        ({5: 0.25}, 5.0, "NIR/SWIR-1 <= 0.75"),
        ({2: np.nan}, 5.0, "no data"),
    ],
)
def test_each_fmask_condition_is_needed(changes: dict[int, float], bt_c: float, why: str) -> None:
    assert not pcp(changes, bt_c), why


def test_cold_cloud_needs_a_clear_land_reference_and_spares_water() -> None:
    bt = np.concatenate([np.linspace(20.0, 30.0, 200), [10.0, 10.0]])
    clear_land = np.arange(bt.size) < 200
    water = np.zeros(bt.size, dtype=bool)
    water[-1] = True
    t_low = float(np.percentile(bt[:200], 17.5))
    flags = clouds.cold_cloud(bt, clear_land, water)
    assert flags[-2] and not flags[-1]  # cold land flagged, cold water not
    assert not flags[:200].any() and t_low - 4 > 10.0
    few = np.arange(bt.size) < 50
    assert not clouds.cold_cloud(bt, few, water).any()  # < 100 px: no reference, no flags


def test_dilation_is_a_euclidean_disc() -> None:
    mask = np.zeros((15, 15), dtype=bool)
    mask[7, 7] = True
    grown = clouds.dilate(mask, 3)
    assert grown.sum() == 29  # integer points with x² + y² ≤ 9
    np.testing.assert_array_equal(clouds.dilate(mask, 0), mask)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 29), st.integers(0, 29)), min_size=1, max_size=8))
def test_dilation_matches_the_distance_transform(points: list[tuple[int, int]]) -> None:
    mask = np.zeros((30, 30), dtype=bool)
    for r, c in points:
        mask[r, c] = True
    expected = ndimage.distance_transform_edt(~mask) <= 3
    np.testing.assert_array_equal(clouds.dilate(mask, 3), expected)


def test_unknown_correction_is_refused() -> None:
    meta = mtl.product_metadata(mtl.parse_mtl(pre_collection()))
    one = np.ones((2, 2), dtype=np.uint16)
    pixels = product.ProductPixels(dict.fromkeys(mtl.REFLECTIVE_BANDS, one), one, one)
    with pytest.raises(InvalidInputError, match="unknown correction"):
        product.derive_layers(pixels, meta, thermal="b10", correction="flaash")
