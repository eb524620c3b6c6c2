"""Sentinel-2 L2A import: both baselines, SCL mask, 20→10 m, Landsat LST, bad products.

The SAFE folders come from tests/sentinel2_support.py (real layout and metadata,
lossless JPEG2000); expected values are its chosen digital numbers and the PSD's
formula written out here, not terraops' own functions.
"""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from scipy import ndimage

import landsat_support
import sentinel2_support as s2
from terraops.adapters.raster_io import read_layers, read_scene
from terraops.errors import InvalidInputError, NotFoundError, TerraopsError
from terraops.pipelines.scenes.cell_tables import build_cell_table
from terraops.pipelines.scenes.importing import import_landsat
from terraops.pipelines.scenes.sentinel2 import import_sentinel2


@pytest.fixture(scope="module")
def truth() -> s2.Truth:
    return s2.make_truth()


@pytest.fixture(scope="module")
def safe(truth: s2.Truth, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return s2.write_safe(tmp_path_factory.mktemp("s2"), truth, "04.00")


@pytest.fixture(scope="module")
def landsat(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("landsat")
    return landsat_support.write_product(root / "l1st", landsat_support.make_truth(), "L1+ST")


def interior_b11(truth: s2.Truth) -> tuple[np.ndarray, np.ndarray]:
    """10 m pixels whose four bilinear 20 m neighbours are all data, and the plane there.

    B11 DN = 1500 + 40·c + 20·r on the 20 m grid; a 10 m centre (i, j) lies at
    20 m pixel coordinates (i/2 − 0.25, j/2 − 0.25), so reflectance × 10 000 there
    is 1500 + 40·(j/2 − 0.25) + 20·(i/2 − 0.25) = 1485 + 20·j + 10·i.
    """
    rows, cols = np.mgrid[0 : s2.HEIGHT, 0 : s2.WIDTH]
    expected = 1485 + 20 * cols + 10 * rows
    data20 = truth.scl != 0
    near = ndimage.binary_erosion(s2.up(data20), np.ones((3, 3)), border_value=0)
    return near, expected


@pytest.mark.parametrize("baseline", ["04.00", "02.09"])
def test_round_trip_with_the_baselines_offset(
    truth: s2.Truth, tmp_path: Path, baseline: str
) -> None:
    safe = s2.write_safe(tmp_path, truth, baseline)
    manifest = import_sentinel2(safe, tmp_path / "scene")
    layers = read_layers(read_scene(tmp_path / "scene"))
    masked = truth.masked
    np.testing.assert_array_equal(layers["clear"] == 0, masked)
    for name in ("blue", "green", "red", "nir"):  # stored × 1e4 == DN + offset, exactly
        band = s2.TERRAOPS[name]
        np.testing.assert_array_equal(layers[name][~masked], truth.reflectance_e4[band][~masked])
        assert (layers[name][masked] == 0).all()
    near, expected = interior_b11(truth)
    check = near & ~masked
    assert check.sum() > 5000
    np.testing.assert_array_equal(layers["swir"][check], expected[check])
    source = manifest["source"]
    offset = -1000.0 if baseline == "04.00" else 0.0
    assert source["processing_baseline"] == baseline
    assert source["bands"]["B04"]["boa_add_offset"] == offset
    assert source["bands"]["B04"]["quantification"] == 10000.0
    assert source["bands"]["B11"]["resampling"] == "bilinear 20 m -> 10 m"
    assert source["scl"]["resampling"] == "nearest 20 m -> 10 m"
    assert source["masked_fraction"] == pytest.approx(masked.mean(), abs=1e-6)
    assert "lst" not in manifest["layers"] and manifest["stats"]["lst_median_c"] is None
    assert source["lst_source"] == "none" and "no land-surface temperature" in source["warnings"][0]


def test_scl_codes_are_masked_and_the_others_kept(
    truth: s2.Truth, safe: Path, tmp_path: Path
) -> None:
    manifest = import_sentinel2(safe, tmp_path / "scene")
    clear = read_layers(read_scene(tmp_path / "scene"), ["clear"])["clear"] == 1
    scl10 = s2.up(truth.scl)
    for code in s2.MASKED:
        assert not clear[scl10 == code].any(), code
    for code in (2, 4, 5, 6, 7):  # dark feature, vegetation, bare, water, unclassified
        kept = (scl10 == code) & ~truth.saturated
        assert clear[kept].all(), code
    assert not clear[truth.saturated].any()  # B04 = 65535 on an SCL-1 pixel
    fractions = manifest["source"]["mask_fractions"]
    assert fractions["scl_9"] == pytest.approx((scl10 == 9).mean(), abs=1e-6)
    assert manifest["source"]["scl"]["masked_classes"]["10"] == "thin cirrus"


def test_manifest_grid_footprint_and_files(safe: Path, tmp_path: Path) -> None:
    manifest = import_sentinel2(safe, tmp_path / "scene")
    assert manifest == read_scene(tmp_path / "scene").to_manifest()
    assert manifest["kind"] == "sentinel2" and manifest["name"] == s2.product_name("04.00")
    assert manifest["crs"] == "EPSG:32616" and manifest["resolution"] == 10.0
    assert (manifest["width"], manifest["height"]) == (s2.WIDTH, s2.HEIGHT)
    assert manifest["transform"] == [10.0, 0.0, s2.ULX, 0.0, -10.0, s2.ULY]
    assert manifest["layers"] == {
        n: f"{n}.tif" for n in ["red", "green", "blue", "nir", "swir", "clear"]
    }
    with rasterio.open(tmp_path / "scene" / "red.tif") as src:
        assert src.crs.to_epsg() == 32616 and src.transform.c == s2.ULX and src.scales[0] == 1e-4
    source = manifest["source"]
    assert source["spacecraft"] == "Sentinel-2B" and source["tile"] == "16RDU"
    assert source["acquired"] == "2023-08-06T16:38:39.024000Z" and source["relative_orbit"] == 126
    ring = source["footprint"]["coordinates"][0]
    lon, lat = Transformer.from_crs(32616, 4326, always_xy=True).transform(s2.ULX, s2.ULY)
    assert ring[0] == pytest.approx([lon, lat], abs=1e-6) and ring[0] == ring[-1]
    assert set(source["files"]) == {"B02", "B03", "B04", "B08", "B11", "SCL"}
    b04 = next(safe.rglob("*_B04_10m.jp2"))
    digest = __import__("hashlib").sha256(b04.read_bytes()).hexdigest()
    assert source["files"]["B04"] == {"name": b04.name, "sha256": digest}


def test_bbox_reads_a_window_with_the_same_values(safe: Path, tmp_path: Path) -> None:
    full = import_sentinel2(safe, tmp_path / "full")
    bbox = (s2.ULX + 305, s2.ULY - 705, s2.ULX + 905, s2.ULY - 205)
    crop = import_sentinel2(safe, tmp_path / "crop", bbox=bbox, bbox_crs="product")
    window = crop["source"]["window"]
    assert (window["col_off"], window["row_off"], window["width"], window["height"]) == (
        30,
        20,
        61,
        51,
    )
    big = read_layers(read_scene(tmp_path / "full"))
    small = read_layers(read_scene(tmp_path / "crop"))
    rows, cols = slice(20, 71), slice(30, 91)
    for name in ("red", "swir", "clear"):
        np.testing.assert_array_equal(big[name][rows, cols], small[name])
    assert full["bounds"] != crop["bounds"]


def test_landsat_thermal_is_resampled_onto_the_10m_grid(
    truth: s2.Truth, safe: Path, landsat: Path, tmp_path: Path
) -> None:
    manifest = import_sentinel2(safe, tmp_path / "scene", thermal=landsat)
    layers = read_layers(read_scene(tmp_path / "scene"))
    import_landsat(landsat, tmp_path / "landsat")
    reference = read_layers(read_scene(tmp_path / "landsat"), ["lst"])["lst"].astype(np.float64)
    # Bilinear interpolation written out: the 10 m centres in Landsat pixel coordinates.
    rows, cols = np.mgrid[0 : s2.HEIGHT, 0 : s2.WIDTH]
    x = s2.ULX + (cols + 0.5) * 10
    y = s2.ULY - (rows + 0.5) * 10
    lc = (x - landsat_support.ORIGIN[0]) / landsat_support.RES - 0.5
    lr = (landsat_support.ORIGIN[1] - y) / landsat_support.RES - 0.5
    expected = ndimage.map_coordinates(np.nan_to_num(reference, nan=-999), [lr, lc], order=1)
    valid = ndimage.map_coordinates(np.isfinite(reference).astype(float), [lr, lc], order=1) == 1
    lst = layers["lst"]
    both = valid & np.isfinite(lst)
    assert both.mean() > 0.5
    assert np.abs(lst[both] - expected[both]).max() < 0.01
    clear = layers["clear"] == 1
    np.testing.assert_array_equal(clear, ~truth.masked & np.isfinite(lst))
    thermal = manifest["source"]["thermal"]
    gap = (
        (np.datetime64("2023-08-06T16:38:39.024") - np.datetime64("2023-08-04T16:20:05.123456"))
        / np.timedelta64(1, "s")
        / 86400
    )
    assert thermal["date_gap_days"] == pytest.approx(gap, abs=1e-3)
    assert thermal["landsat_minus_sentinel2_days"] == pytest.approx(-gap, abs=1e-3)
    assert thermal["product_id"] == landsat_support.PRODUCT_ID
    assert thermal["lst_source"] == "Level-2 ST_B10" and thermal["coverage"] > 0.5
    assert manifest["source"]["lst_source"] == f"Landsat {landsat_support.PRODUCT_ID}"
    assert manifest["units"]["lst"] == "degC" and manifest["stats"]["lst_median_c"] is not None
    assert valid.mean() <= thermal["coverage"] < 1  # GDAL also fills next to a gap
    (warning,) = manifest["source"]["warnings"]  # no date-gap warning at two days
    assert f"no LST for {100 * (1 - thermal['coverage']):.1f}% of the scene" in warning


def test_thermal_product_elsewhere_is_refused(safe: Path, tmp_path: Path) -> None:
    far = landsat_support.write_product(tmp_path / "far", landsat_support.make_truth())
    for tif in far.glob("*.TIF"):  # the same product, 100 km east
        with rasterio.open(tif) as src:
            data = src.read(1)
        moved = landsat_support.ORIGIN[0] + 100_000, landsat_support.ORIGIN[1]
        landsat_support.write_band(tif, data, rasterio.transform.from_origin(*moved, 30, 30))
    with pytest.raises(InvalidInputError, match="does not overlap the Sentinel-2 scene"):
        import_sentinel2(safe, tmp_path / "scene", thermal=far)
    assert not (tmp_path / "scene").exists()


def test_thermal_product_all_cloud_over_the_tile_is_refused(safe: Path, tmp_path: Path) -> None:
    """A thermal product with no clear LST over the tile is found out only after its
    strips are derived: the import still fails cleanly and writes nothing."""
    cloudy = landsat_support.write_product(tmp_path / "cloudy", landsat_support.make_truth())
    qa = next(cloudy.glob("*_QA_PIXEL.TIF"))
    with rasterio.open(qa) as src:
        data, transform = src.read(1), src.transform
    data[:] = 22280  # high-confidence cloud everywhere
    landsat_support.write_band(qa, data, transform)
    with pytest.raises(InvalidInputError, match="no clear land-surface temperature"):
        import_sentinel2(safe, tmp_path / "scene", thermal=cloudy)
    assert [p.name for p in tmp_path.iterdir()] == ["cloudy"]  # no scene, no staging left


# --------------------------------------------------------------------------- bad products
def _edit(relative: str, old: str, new: str) -> Callable[[Path], None]:
    def mutate(safe: Path) -> None:
        path = next(safe.glob(relative))
        text = path.read_text()
        assert old in text or old.startswith("re:")
        if old.startswith("re:"):
            text = re.sub(old[3:], new, text, flags=re.S)
        else:
            text = text.replace(old, new)
        path.write_text(text)

    return mutate


def _delete_band(band: str) -> Callable[[Path], None]:
    return lambda safe: next(safe.rglob(f"*_{band}_*m.jp2")).unlink()


def _shift_b04(safe: Path) -> None:
    path = next(safe.rglob("*_B04_10m.jp2"))
    with rasterio.open(path) as src:
        data = src.read(1)
    path.unlink()
    with rasterio.open(
        path, "w", driver="JP2OpenJPEG", width=s2.WIDTH, height=s2.HEIGHT, count=1,
        dtype="uint16", crs="EPSG:32616", QUALITY="100", REVERSIBLE="YES",
        transform=rasterio.transform.from_origin(s2.ULX + 10, s2.ULY, 10, 10),
    ) as dst:  # fmt: skip
        dst.write(data, 1)


def _not_safe(safe: Path) -> None:
    (safe / "MTD_MSIL2A.xml").unlink()


def _level1c(safe: Path) -> None:
    (safe / "MTD_MSIL2A.xml").rename(safe / "MTD_MSIL1C.xml")


BAD: dict[str, tuple[Callable[[Path], None], type[TerraopsError], list[str]]] = {
    "missing band": (_delete_band("B08"), InvalidInputError, ["misses required band files", "B08"]),
    "missing SCL": (_delete_band("SCL"), InvalidInputError, ["SCL (R20m/*_SCL_20m.jp2)"]),
    "no offsets at 04.00": (
        _edit(
            "MTD_MSIL2A.xml", "re:<BOA_ADD_OFFSET_VALUES_LIST>.*</BOA_ADD_OFFSET_VALUES_LIST>", ""
        ),
        InvalidInputError,
        ["processing baseline 04.00 but no BOA_ADD_OFFSET"],
    ),
    "baseline contradicts the name": (
        _edit("MTD_MSIL2A.xml", "<PROCESSING_BASELINE>04.00", "<PROCESSING_BASELINE>05.09"),
        InvalidInputError,
        ["folder name says processing baseline 04.00", "says 05.09"],
    ),
    "baseline unreadable": (
        _edit("MTD_MSIL2A.xml", "<PROCESSING_BASELINE>04.00", "<PROCESSING_BASELINE>four"),
        InvalidInputError,
        ["PROCESSING_BASELINE is 'four'"],
    ),
    "corrupt product XML": (
        _edit("MTD_MSIL2A.xml", "</n1:Level-2A_User_Product>", "</n1:Level-2A_User"),
        InvalidInputError,
        ["MTD_MSIL2A.xml is not well-formed XML"],
    ),
    "corrupt tile XML": (
        _edit("GRANULE/*/MTD_TL.xml", "<HORIZONTAL_CS_CODE>", "<HORIZONTAL_CS_CODE"),
        InvalidInputError,
        ["MTD_TL.xml is not well-formed XML"],
    ),
    "tile CRS missing": (
        _edit("GRANULE/*/MTD_TL.xml", "EPSG:32616", "UTM 16N"),
        InvalidInputError,
        ["HORIZONTAL_CS_CODE is UTM 16N"],
    ),
    "band off the tile grid": (_shift_b04, InvalidInputError, ["B04", "is not on the tile grid"]),
    "SCL legend renumbered": (
        _edit("MTD_MSIL2A.xml", "SC_CLOUD_HIGH_PROBA", "SC_WATER_2"),
        InvalidInputError,
        ["legend differs", "9 is 'SC_WATER_2'"],
    ),
    "not a SAFE": (_not_safe, NotFoundError, ["not a Sentinel-2 L2A SAFE folder"]),
    "Level-1C": (_level1c, InvalidInputError, ["Level-1C"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_product_fails_clearly_and_writes_nothing(
    safe: Path, tmp_path: Path, case: str
) -> None:
    mutate, error, messages = BAD[case]
    bad = tmp_path / safe.name
    shutil.copytree(safe, bad)
    mutate(bad)
    with pytest.raises(error) as caught:
        import_sentinel2(bad, tmp_path / "out" / "scene")
    for message in messages:
        assert message in str(caught.value), str(caught.value)
    assert caught.value.hint
    assert not (tmp_path / "out").exists()


def test_baseline_before_04_with_offsets_is_refused(truth: s2.Truth, tmp_path: Path) -> None:
    safe = s2.write_safe(tmp_path, truth, "02.09")
    (safe / "MTD_MSIL2A.xml").write_text(s2.mtd_msil2a("02.09", [], offsets=True))
    with pytest.raises(InvalidInputError, match="contradicts itself"):
        import_sentinel2(safe, tmp_path / "scene")
    assert not (tmp_path / "scene").exists()


def test_unzipped_download_folder_holding_the_safe_is_accepted(safe: Path, tmp_path: Path) -> None:
    manifest = import_sentinel2(safe.parent, tmp_path / "scene")
    assert manifest["name"] == s2.product_name("04.00") and math.isfinite(manifest["resolution"])


def test_the_feature_path_reads_it_like_a_landsat_scene(
    safe: Path, landsat: Path, tmp_path: Path
) -> None:
    import_sentinel2(safe, tmp_path / "s2", thermal=landsat)
    import_landsat(landsat, tmp_path / "landsat")
    s2_table = build_cell_table(read_scene(tmp_path / "s2"), 40.0)
    landsat_table = build_cell_table(read_scene(tmp_path / "landsat"), 60.0)
    assert list(s2_table.columns) == list(landsat_table.columns)
    assert len(s2_table) > 100 and s2_table["lst"].notna().all()
    assert s2_table["ndvi"].between(-1, 1).all()


def test_an_import_in_strips_equals_the_import_in_one_piece(
    safe: Path, landsat: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole tile is imported strip by strip: 7-row strips (the 20 m bands resampled
    per strip, the Landsat LST cut to each) give the very layers and manifest of one."""
    from terraops.pipelines.scenes import scene_strips

    assert scene_strips.STRIP_ROWS >= s2.HEIGHT
    whole = import_sentinel2(safe, tmp_path / "whole", thermal=landsat)
    monkeypatch.setattr(scene_strips, "STRIP_ROWS", 7)
    strips = import_sentinel2(safe, tmp_path / "strips", thermal=landsat)
    a, b = (read_layers(read_scene(tmp_path / name)) for name in ("whole", "strips"))
    assert set(a) == set(b) and "lst" in a
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert (a["clear"] == 0).any() and (a["clear"] == 1).any()
    for key in ("stats", "units", "layers", "source"):
        assert whole[key] == strips[key], key
