"""Landsat and GeoTIFF import: round trips through the published formulas, bad products.

The synthetic products come from tests/landsat_support.py, written the way
USGS writes them (see its docstring). Every expected value here is computed
from the chosen fields and the papers' equations written out there and in
this file, not from terraops' own functions.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin
from scipy import ndimage

from landsat_support import (
    BANDS,
    EPSG,
    EXPECTED_HAZE,
    HEIGHT,
    K1,
    K2,
    LAMBDA_UM,
    LAT0,
    LON0,
    ORIGIN,
    PRODUCT_ID,
    RAD_ADD,
    RAD_MULT,
    REFL_ADD,
    REFL_MULT,
    RES,
    RHO2,
    SR_MULT,
    ST_MULT,
    STEP_DEG,
    SUN_ELEVATION,
    WIDTH,
    Truth,
    disc,
    make_truth,
    write_band,
    write_geotiff,
    write_multiband,
    write_product,
)
from terraops.adapters.raster_io import read_layers, read_scene
from terraops.errors import InvalidInputError, NotFoundError, TerraopsError
from terraops.pipelines.scenes.importing import import_geotiff, import_landsat


@pytest.fixture(scope="module")
def truth() -> Truth:
    return make_truth()


@pytest.fixture(scope="module")
def product(truth: Truth, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_product(tmp_path_factory.mktemp("products") / "l1", truth)


def expected_mask(truth: Truth) -> np.ndarray:
    """Fill, plus every pixel within 3 px (Euclidean) of a cloud, cirrus or shadow pixel."""
    distance = ndimage.distance_transform_edt(~truth.flagged)
    return truth.fill | (distance <= 3)


def tolerance(mult: float, scale: float = 1.0) -> float:
    """Half a storage step (1e-4) + a DN step of the product + float32 rounding."""
    return 0.5e-4 + 1.5 * mult * scale + 1e-6


# --------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("correction", ["none", "dos1"])
def test_level1_round_trip(truth: Truth, product: Path, tmp_path: Path, correction: str) -> None:
    manifest = import_landsat(product, tmp_path / "scene", correction=correction)
    layers = read_layers(read_scene(tmp_path / "scene"))
    masked = expected_mask(truth)
    np.testing.assert_array_equal(layers["clear"] == 0, masked)
    haze = EXPECTED_HAZE if correction == "dos1" else dict.fromkeys(range(2, 8), 0.0)
    tol = tolerance(REFL_MULT, 1 / math.sin(math.radians(SUN_ELEVATION)))
    for name, n in BANDS.items():
        stored = layers[name]
        assert (stored[masked] == 0).all(), name
        expected = truth.toa[n] - haze[n]
        error = np.abs(stored[~masked] / 1e4 - expected[~masked])
        assert error.max() <= tol, (name, error.max())
    lst = layers["lst"]
    assert np.isnan(lst[masked]).all()
    lst_error = np.abs(lst[~masked] - truth.lst_c[correction][~masked])
    assert lst_error.max() < 0.05, lst_error.max()
    source = manifest["source"]
    assert source["correction"]["method"] == correction
    if correction == "dos1":
        for n, value in EXPECTED_HAZE.items():
            assert source["bands"][f"B{n}"]["dos1_haze_reflectance"] == pytest.approx(
                value, abs=3e-5
            )
    assert source["masked_fraction"] == pytest.approx(masked.mean(), abs=1e-6)
    assert manifest["stats"]["clear_fraction"] == pytest.approx(1 - masked.mean(), abs=1e-4)


def test_the_spectral_tests_find_a_cloud_the_qa_missed(
    truth: Truth, product: Path, tmp_path: Path
) -> None:
    manifest = import_landsat(product, tmp_path / "scene")
    layers = read_layers(read_scene(tmp_path / "scene"), ["clear"])
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    assert (layers["clear"][disc(rows, cols, 20, 72, 5)] == 0).all()
    fractions = manifest["source"]["mask_fractions"]
    assert fractions["potential_cloud_not_in_qa"] == pytest.approx(
        disc(rows, cols, 20, 72, 5).mean(), abs=1e-6
    )


def test_manifest_follows_the_scene_contract(product: Path, tmp_path: Path) -> None:
    manifest = import_landsat(product, tmp_path / "scene")
    assert manifest == read_scene(tmp_path / "scene").to_manifest()
    assert manifest["name"] == PRODUCT_ID and manifest["kind"] == "landsat"
    assert manifest["crs"] == f"EPSG:{EPSG}" and manifest["resolution"] == RES
    assert (manifest["width"], manifest["height"]) == (WIDTH, HEIGHT)
    assert manifest["transform"] == [RES, 0.0, ORIGIN[0], 0.0, -RES, ORIGIN[1]]
    assert manifest["bounds"] == [
        ORIGIN[0],
        ORIGIN[1] - HEIGHT * RES,
        ORIGIN[0] + WIDTH * RES,
        ORIGIN[1],
    ]
    assert manifest["reflectance"] == {
        "bands": ["red", "green", "blue", "nir", "swir"],
        "scale": 0.0001,
        "offset": 0.0,
        "nodata": 0,
    }
    names = ["red", "green", "blue", "nir", "swir", "lst", "clear"]
    assert manifest["layers"] == {n: f"{n}.tif" for n in names}
    assert set(manifest["units"]) == set(names) and manifest["units"]["lst"] == "degC"
    assert "physics" not in manifest and "landcover" not in manifest["layers"]
    source = manifest["source"]
    assert source["collection"] == "2" and source["processing_level"] == "L1TP"
    assert source["acquired"] == "2023-08-04T16:20:05.123456Z"
    assert (source["wrs_path"], source["wrs_row"]) == (20, 39)
    assert source["sun_elevation_deg"] == SUN_ELEVATION
    assert source["thermal"] == {
        "band": "B10",
        "radiance_mult": RAD_MULT,
        "radiance_add": RAD_ADD,
        "k1": K1,
        "k2": K2,
    }
    assert source["lst"]["wavelength_um"] == LAMBDA_UM and source["lst"]["rho2_um_k"] == RHO2
    assert source["bands"]["B4"]["mult"] == REFL_MULT and source["bands"]["B4"]["add"] == REFL_ADD
    for role, entry in source["files"].items():
        digest = __import__("hashlib").sha256((product / entry["name"]).read_bytes()).hexdigest()
        assert entry["sha256"] == digest, role
    assert set(source["files"]) == {"MTL", "B2", "B3", "B4", "B5", "B6", "B7", "B10", "QA"}
    with rasterio.open(tmp_path / "scene" / "red.tif") as src:
        assert src.dtypes[0] == "uint16" and src.nodata == 0 and src.scales[0] == 1e-4
    with rasterio.open(tmp_path / "scene" / "clear.tif") as src:
        assert src.dtypes[0] == "uint8"
    with rasterio.open(tmp_path / "scene" / "lst.tif") as src:
        assert src.dtypes[0] == "float32" and math.isnan(src.nodata)


def test_level2_surface_temperature_is_used_when_present(truth: Truth, tmp_path: Path) -> None:
    product = write_product(tmp_path / "l1st", truth, "L1+ST")
    manifest = import_landsat(product, tmp_path / "scene")
    layers = read_layers(read_scene(tmp_path / "scene"))
    clear = layers["clear"] == 1
    error = np.abs(layers["lst"][clear] - truth.lst_c["none"][clear])
    assert error.max() <= ST_MULT, error.max()  # one ST_B10 step, no emissivity involved
    assert manifest["source"]["lst"]["st_mult"] == ST_MULT
    assert manifest["source"]["lst_source"] == "Level-2 ST_B10"
    assert "emissivity" not in manifest["source"]
    assert "ST_B10" in manifest["source"]["files"]


def test_level2_surface_reflectance_product(truth: Truth, tmp_path: Path) -> None:
    """L2SP: SR bands scaled by the LEVEL2 constants (not the Level-1 ones also in the MTL)."""
    product = write_product(tmp_path / "l2", truth, "L2SP")
    manifest = import_landsat(product, tmp_path / "scene")  # default dos1 is not applied to SR
    layers = read_layers(read_scene(tmp_path / "scene"))
    masked = expected_mask(truth)
    np.testing.assert_array_equal(layers["clear"] == 0, masked)
    for name, n in BANDS.items():
        error = np.abs(layers[name][~masked] / 1e4 - truth.toa[n][~masked])
        assert error.max() <= tolerance(SR_MULT), name
    assert manifest["source"]["correction"]["method"] == "none"
    assert manifest["source"]["bands"]["B4"]["mult"] == SR_MULT
    assert "B10" not in manifest["source"]["files"]


def test_renamed_band_files_are_found_by_their_endings(truth: Truth, tmp_path: Path) -> None:
    product = write_product(tmp_path / "renamed", truth, rename=True)
    assert (product / "x_b4.tif").is_file() and not list(product.glob("LC08*"))
    manifest = import_landsat(product, tmp_path / "scene")
    assert manifest["source"]["files"]["B4"]["name"] == "x_b4.tif"
    assert manifest["source"]["files"]["QA"]["name"] == "x_qa_pixel.tif"


def test_bbox_reads_a_window_with_the_same_values(product: Path, tmp_path: Path) -> None:
    full = import_landsat(product, tmp_path / "full", correction="none")
    to_lonlat = Transformer.from_crs(EPSG, 4326, always_xy=True)
    x0, y0 = ORIGIN[0] + 40 * RES + 5, ORIGIN[1] - 70 * RES - 5  # inside pixel (70, 40)
    x1, y1 = ORIGIN[0] + 99 * RES - 5, ORIGIN[1] - 20 * RES + 5  # inside pixel (20, 98)
    (lon0, lat0), (lon1, lat1) = to_lonlat.transform(x0, y0), to_lonlat.transform(x1, y1)
    crop = import_landsat(
        product, tmp_path / "crop", bbox=(lon0, lat0, lon1, lat1), correction="none"
    )
    window = crop["source"]["window"]
    assert window["col_off"] <= 40 and window["col_off"] + window["width"] >= 99
    assert window["row_off"] <= 20 and window["row_off"] + window["height"] >= 71
    assert window["width"] < WIDTH and window["height"] < HEIGHT
    big = read_layers(read_scene(tmp_path / "full"))
    small = read_layers(read_scene(tmp_path / "crop"))
    rows = slice(window["row_off"], window["row_off"] + window["height"])
    cols = slice(window["col_off"], window["col_off"] + window["width"])
    both = (big["clear"][rows, cols] == 1) & (small["clear"] == 1)
    assert both.mean() > 0.5
    for name in ("red", "nir", "lst"):
        np.testing.assert_array_equal(big[name][rows, cols][both], small[name][both])
    assert crop["transform"][2] == ORIGIN[0] + window["col_off"] * RES
    assert crop["transform"][5] == ORIGIN[1] - window["row_off"] * RES
    assert full["bounds"] != crop["bounds"]


def linear_dem_3857(
    path: Path, around_lonlat: tuple[float, float]
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A DEM in Web Mercator whose height is a plane in that CRS (bilinear resampling is exact)."""
    x, y = Transformer.from_crs(4326, 3857, always_xy=True).transform(*around_lonlat)
    x0, y0, step = x - 6000, y + 6000, 20.0

    def height(xm: np.ndarray, ym: np.ndarray) -> np.ndarray:
        return 100.0 + 0.004 * (xm - x0) - 0.002 * (ym - y0)

    cols, rows = np.meshgrid(np.arange(600) + 0.5, np.arange(600) + 0.5)
    dem = height(x0 + cols * step, y0 - rows * step).astype(np.float32)
    write_geotiff(path, dem, 3857, from_origin(x0, y0, step, step))
    return height


def grid_centres(manifest: dict) -> tuple[np.ndarray, np.ndarray]:
    a, _, c, _, e, f = manifest["transform"]
    cols, rows = np.meshgrid(
        np.arange(manifest["width"]) + 0.5, np.arange(manifest["height"]) + 0.5
    )
    return c + cols * a, f + rows * e


def test_dem_in_another_crs_is_resampled_onto_the_scene(product: Path, tmp_path: Path) -> None:
    centre = Transformer.from_crs(EPSG, 4326, always_xy=True).transform(
        ORIGIN[0] + WIDTH * RES / 2, ORIGIN[1] - HEIGHT * RES / 2
    )
    height = linear_dem_3857(tmp_path / "dem.tif", centre)
    manifest = import_landsat(product, tmp_path / "scene", dem=tmp_path / "dem.tif")
    layers = read_layers(read_scene(tmp_path / "scene"), ["dem"])
    xs, ys = grid_centres(manifest)
    expected = height(*Transformer.from_crs(EPSG, 3857, always_xy=True).transform(xs, ys))
    assert np.abs(layers["dem"] - expected).max() < 0.1  # GDAL's approximate transformer
    assert manifest["units"]["dem"] == "m" and manifest["source"]["dem"]["coverage"] == 1.0


# --------------------------------------------------------------------------- bad products
def _drop_line(key: str) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        mtl = next(folder.glob("*_MTL.txt"))
        mtl.write_text("".join(x for x in mtl.read_text().splitlines(True) if key not in x))

    return mutate


def _delete(*roles: str) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        for role in roles:
            (folder / f"{PRODUCT_ID}_{role}.TIF").unlink()

    return mutate


def _shift_b4(folder: Path) -> None:
    path = folder / f"{PRODUCT_ID}_B4.TIF"
    with rasterio.open(path) as src:
        dn = src.read(1)
    write_band(path, dn, from_origin(ORIGIN[0] + RES, ORIGIN[1], RES, RES))


def _crop_b6(folder: Path) -> None:
    path = folder / f"{PRODUCT_ID}_B6.TIF"
    with rasterio.open(path) as src:
        dn = src.read(1)
    write_band(path, dn[:-1])


def _garbage_b3(folder: Path) -> None:
    (folder / f"{PRODUCT_ID}_B3.TIF").write_bytes(b"II*\x00 this is not a GeoTIFF")


def _landsat7(folder: Path) -> None:
    mtl = next(folder.glob("*_MTL.txt"))
    mtl.write_text(mtl.read_text().replace('"LANDSAT_8"', '"LANDSAT_7"'))


BAD_PRODUCTS: dict[str, tuple[Callable[[Path], None], type[TerraopsError], list[str]]] = {
    "no MTL": (lambda f: next(f.glob("*_MTL.txt")).unlink(), NotFoundError, ["no *_MTL.txt"]),
    "missing bands": (
        _delete("B5", "B6"),
        InvalidInputError,
        ["misses required band files", "B5, B6"],
    ),
    "missing thermal": (_delete("B10"), InvalidInputError, ["B10 (or Level-2 ST_B10)"]),
    "missing QA": (_delete("QA_PIXEL"), InvalidInputError, ["QA"]),
    "shifted grid": (_shift_b4, InvalidInputError, ["band grids do not match", "B4"]),
    "other shape": (_crop_b6, InvalidInputError, ["band grids do not match", "B6", "110x89"]),
    "no reflectance constant": (
        _drop_line("REFLECTANCE_MULT_BAND_4 "),
        InvalidInputError,
        ["REFLECTANCE_MULT_BAND_4"],
    ),
    "no K1": (_drop_line("K1_CONSTANT_BAND_10"), InvalidInputError, ["K1_CONSTANT_BAND_10"]),
    "no sun elevation": (_drop_line("SUN_ELEVATION"), InvalidInputError, ["SUN_ELEVATION"]),
    "unreadable band": (_garbage_b3, InvalidInputError, ["B3", "not a readable raster"]),
    "another sensor": (_landsat7, InvalidInputError, ["unsupported spacecraft 'LANDSAT_7'"]),
}


@pytest.mark.parametrize("case", list(BAD_PRODUCTS))
def test_bad_product_fails_clearly_and_writes_nothing(
    truth: Truth, product: Path, tmp_path: Path, case: str
) -> None:
    mutate, error, messages = BAD_PRODUCTS[case]
    bad = tmp_path / "bad"
    shutil.copytree(product, bad)
    mutate(bad)
    out = tmp_path / "out" / "scene"
    with pytest.raises(error) as caught:
        import_landsat(bad, out)
    for message in messages:
        assert message in str(caught.value), str(caught.value)
    assert caught.value.hint
    assert not (tmp_path / "out").exists()  # not even the parent folder
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "scene.json").write_text("{}")
    with pytest.raises(error):
        import_landsat(bad, existing, overwrite=True)
    assert [p.name for p in existing.iterdir()] == ["scene.json"]
    assert (existing / "scene.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "existing"]


def test_dem_that_does_not_overlap_is_refused(product: Path, tmp_path: Path) -> None:
    far = tmp_path / "far.tif"
    write_geotiff(far, np.ones((50, 50), np.float32), 4326, from_origin(10.0, 50.0, 0.001, 0.001))
    with pytest.raises(InvalidInputError, match="does not overlap the scene"):
        import_landsat(product, tmp_path / "scene", dem=far)
    assert not (tmp_path / "scene").exists()


def test_bbox_outside_the_product_is_refused(product: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not overlap the product") as caught:
        import_landsat(product, tmp_path / "scene", bbox=(10.0, 45.0, 10.1, 45.1))
    assert "bbox-crs" in (caught.value.hint or "")
    assert not (tmp_path / "scene").exists()


def test_existing_output_needs_overwrite(product: Path, tmp_path: Path) -> None:
    out = tmp_path / "scene"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInputError, match="already exists"):
        import_landsat(product, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    import_landsat(product, out, overwrite=True)
    assert (out / "scene.json").is_file() and not (out / "keep.txt").exists()


def test_output_inside_the_product_is_refused(product: Path, tmp_path: Path) -> None:
    copy = tmp_path / "product"
    shutil.copytree(product, copy)
    with pytest.raises(InvalidInputError, match="would delete it"):
        import_landsat(copy, tmp_path, overwrite=True)
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in product.iterdir())


# --------------------------------------------------------------------------- any GeoTIFF
def test_geotiff_import_with_thermal_in_kelvin_and_a_dem(tmp_path: Path) -> None:
    write_multiband(tmp_path / "s2.tif", ["blue", "green", "red", "nir", "swir"])
    centre = (LON0 + 100 * STEP_DEG, LAT0 - 100 * STEP_DEG)
    x, y = Transformer.from_crs(4326, 32616, always_xy=True).transform(*centre)
    x0, y0 = x - 3000, y + 3000

    def kelvin(xm: np.ndarray, ym: np.ndarray) -> np.ndarray:
        return 300.0 + 0.001 * (xm - x0) + 0.0005 * (y0 - ym)

    cols, rows = np.meshgrid(np.arange(200) + 0.5, np.arange(200) + 0.5)
    write_geotiff(
        tmp_path / "st.tif",
        kelvin(x0 + cols * 30, y0 - rows * 30).astype(np.float32),
        32616,
        from_origin(x0, y0, 30, 30),
    )
    height = linear_dem_3857(tmp_path / "dem.tif", centre)
    manifest = import_geotiff(
        tmp_path / "s2.tif",
        tmp_path / "scene",
        thermal=tmp_path / "st.tif",
        dem=tmp_path / "dem.tif",
    )
    assert manifest["kind"] == "geotiff" and manifest["name"] == "s2"
    assert manifest["crs"] == "EPSG:32616"  # geographic input warped to its UTM zone
    assert 8 < manifest["resolution"] < 12
    assert manifest["source"]["thermal"]["unit"] == "kelvin"
    layers = read_layers(read_scene(tmp_path / "scene"))
    xs, ys = grid_centres(manifest)
    inside = layers["clear"] == 1
    assert inside.mean() > 0.9  # the warped edge has no data
    lst_error = np.abs(layers["lst"] - (kelvin(xs, ys) - 273.15))[inside]
    assert lst_error.max() < 0.01
    dem_expected = height(*Transformer.from_crs(32616, 3857, always_xy=True).transform(xs, ys))
    assert np.nanmax(np.abs(layers["dem"] - dem_expected)) < 0.1
    assert (layers["red"][~inside] == 0).all() and np.isnan(layers["lst"][~inside]).all()
    red = layers["red"][inside] / 1e4
    assert red.min() >= 0.08 - 1e-4 and red.max() <= 0.088 + 1e-4


@pytest.mark.parametrize(
    ("unit", "values", "expected_c"),
    [
        ("auto", 31.0, 31.0),
        ("celsius", 31.0, 31.0),
        ("kelvin", 304.15, 31.0),
        ("auto", 304.15, 31.0),
    ],
)
def test_thermal_units(tmp_path: Path, unit: str, values: float, expected_c: float) -> None:
    write_multiband(tmp_path / "img.tif", ["red", "green", "blue", "nir", "swir"])
    write_geotiff(
        tmp_path / "t.tif",
        np.full((220, 220), values, np.float32),
        4326,
        from_origin(LON0 - 0.001, LAT0 + 0.001, STEP_DEG, STEP_DEG),
    )
    manifest = import_geotiff(
        tmp_path / "img.tif", tmp_path / "scene", thermal=tmp_path / "t.tif", thermal_unit=unit
    )
    assert manifest["stats"]["lst_median_c"] == pytest.approx(expected_c, abs=1e-3)


def test_thermal_in_neither_unit_is_refused(tmp_path: Path) -> None:
    write_multiband(tmp_path / "img.tif", ["red", "green", "blue", "nir", "swir"])
    write_geotiff(
        tmp_path / "t.tif",
        np.full((220, 220), 31000, np.uint16),
        4326,
        from_origin(LON0 - 0.001, LAT0 + 0.001, STEP_DEG, STEP_DEG),
    )
    with pytest.raises(InvalidInputError, match="not a surface temperature"):
        import_geotiff(tmp_path / "img.tif", tmp_path / "scene", thermal=tmp_path / "t.tif")
    assert not (tmp_path / "scene").exists()


def test_four_band_image_without_swir_is_refused_with_a_hint(tmp_path: Path) -> None:
    write_multiband(tmp_path / "aerial.tif", ["red", "green", "blue", "nir"])
    with pytest.raises(InvalidInputError) as caught:
        import_geotiff(tmp_path / "aerial.tif", tmp_path / "scene")
    assert "has no swir band" in caught.value.message
    assert "--band-order" in (caught.value.hint or "")
    with pytest.raises(InvalidInputError, match=r"names 5 bands but aerial\.tif has 4"):
        import_geotiff(
            tmp_path / "aerial.tif",
            tmp_path / "scene",
            band_order=["red", "green", "blue", "nir", "swir"],
        )
    assert not (tmp_path / "scene").exists()


def test_band_order_overrides_descriptions(tmp_path: Path) -> None:
    levels = [0.20, 0.35, 0.09, 0.06, 0.04]
    write_multiband(tmp_path / "img.tif", ["b1", "b2", "b3", "b4", "b5"], levels)
    order = ["swir", "nir", "red", "green", "blue"]
    import_geotiff(tmp_path / "img.tif", tmp_path / "scene", band_order=order)
    layers = read_layers(read_scene(tmp_path / "scene"), [*order, "clear"])
    clear = layers["clear"] == 1
    for name, level in zip(order, levels, strict=True):  # each band is level x (1 .. 1.1)
        values = layers[name][clear] / 1e4
        assert level - 1e-4 <= values.min() and values.max() <= 1.1 * level + 1e-4, name


# --------------------------------------------------------------------------- the real sample
@pytest.mark.integration
def test_real_landsat8_sample(landsat_sample: Path, tmp_path: Path) -> None:
    """LC80200392015216LGN00 crop: imported, sane.

    The sample comes from the session fixture ``landsat_sample`` (tests/conftest.py),
    a copy of the one set-up fetched (skipped, naming the fetch command, without it).
    """
    out = tmp_path / "scene"
    manifest = import_landsat(landsat_sample, out)
    layers = read_layers(read_scene(out))
    clear = layers["clear"] == 1
    stats = manifest["stats"]
    assert 0.3 < stats["clear_fraction"] < 0.9
    assert 15 < float(np.median(layers["lst"][clear])) < 45
    red, nir, green = (layers[b][clear].astype(np.float64) for b in ("red", "nir", "green"))
    land = (green - nir) / (green + nir) <= 0  # McFeeters NDWI: not water
    assert np.median(((nir - red) / (nir + red))[land]) > 0.3
    masked_by_row = 1 - clear.mean(axis=1)
    assert masked_by_row[200:450].mean() > 0.75  # the band of popcorn cumulus
    assert masked_by_row[500:].mean() < 0.1  # the clear south is kept
    assert manifest["source"]["collection"] == "pre-collection"
    assert manifest["source"]["qa"]["scheme"] == "pre-collection"
    assert manifest["source"]["acquired"].startswith("2015-08-04T16:19:21")
    assert (manifest["width"], manifest["height"]) == (627, 603)
    print(json.dumps({"source": manifest["source"], "stats": stats}, indent=2))


# --------------------------------------------------------------------------- strips
@pytest.mark.parametrize("variant", ["L1", "L2"])
def test_an_import_in_strips_equals_the_import_in_one_piece(
    truth: Truth, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variant: str
) -> None:
    """A whole scene is imported strip by strip: 9-row strips (the clouds' 3 px
    dilation crosses their edges, the dark objects and the cold-cloud line are
    found over the whole area) give the very layers and manifest of one strip."""
    from terraops.pipelines.scenes import scene_strips

    product = write_product(tmp_path / variant, truth, variant)
    assert scene_strips.STRIP_ROWS >= HEIGHT
    whole = import_landsat(product, tmp_path / "whole")
    monkeypatch.setattr(scene_strips, "STRIP_ROWS", 9)
    strips = import_landsat(product, tmp_path / "strips")
    a, b = (read_layers(read_scene(tmp_path / name)) for name in ("whole", "strips"))
    assert set(a) == set(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert (a["clear"] == 0).any() and (a["clear"] == 1).any()
    for key in ("stats", "units", "layers"):
        assert whole[key] == strips[key], key
    assert whole["source"] == strips["source"]
