"""A real Landsat 7 ETM+ crop without MTL, thermal or QA band (Olinda/Recife) and its DEM.

The real files come from the samples cache set-up fills (Debian's ``r-cran-stars``;
skipped, naming the command, without it). Expected values come from the file itself
(its grid: 349×352 px of 28.5 m from (288776.25, 9120760.75), SIRGAS 2000 / UTM 25S)
and from the published ETM+ calibration typed in here, not from terraops' functions.
The checks of bad input use small rasters made by code.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from typer.testing import CliRunner

from samples_support import cached_sample
from terraops.adapters.raster_io import read_layers, read_scene
from terraops.adapters.samples import OLINDA_SAMPLE
from terraops.cli.main import app
from terraops.domain.landsat.etm import etm_reflectance, parse_gains, toa_reflectance
from terraops.errors import InvalidInputError
from terraops.pipelines.scenes.cell_tables import scene_cell_table
from terraops.pipelines.scenes.landsat7_import import import_landsat7_dn, parse_band_numbers

ORIGIN = (288776.25, 9120760.75)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_sample(OLINDA_SAMPLE, tmp_path_factory.mktemp("olinda"))


@pytest.fixture(scope="module")
def imported(sample: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("scene") / "olinda"
    manifest = import_landsat7_dn(
        sample / "L7_ETMs.tif", out, dem=sample / "olinda_dem_utm25s.tif", name="olinda-recife"
    )
    return manifest, out


# --------------------------------------------------------------------------- calibration
def test_dn_to_toa_reflectance_follows_the_published_etm_calibration() -> None:
    """Band 3, high gain: LMIN −5.0, LMAX 152.9, ESUN 1533 (Chander et al. 2009)."""
    dn = np.array([[0, 1, 100, 254]], dtype=np.uint8)
    got = toa_reflectance(dn, 3, "H", 50.0)
    radiance = (152.9 + 5.0) / 254 * (np.array([1, 100, 254]) - 1) - 5.0
    expected = math.pi * radiance / (1533.0 * math.sin(math.radians(50.0)))
    assert np.isnan(got[0, 0])  # DN 0 is fill
    np.testing.assert_allclose(got[0, 1:], expected, rtol=1e-5)
    low = toa_reflectance(np.array([100], np.uint8), 4, "L", 50.0)  # band 4, low gain
    expected_low = math.pi * ((241.1 + 5.1) / 254 * 99 - 5.1) / (1039.0 * math.sin(0.8726646))
    assert low[0] == pytest.approx(expected_low, rel=1e-5)


def test_fill_and_saturated_pixels_are_masked() -> None:
    dn = {b: np.full((2, 2), 80, np.uint8) for b in (1, 2, 3, 4, 5, 7)}
    dn[1][0, 0] = 255  # saturated blue (a cloud top, often)
    dn[4][1, 1] = 0  # fill
    dn[7][0, 1] = 255  # band 7 is not stored, so its saturation does not matter
    reflectance, valid, record = etm_reflectance(
        dn, gains=parse_gains("HHHLHH"), sun_elevation_deg=50.0, correction="none"
    )
    assert valid.tolist() == [[False, True], [True, False]]
    assert np.isnan(reflectance["red"][0, 0]) and np.isfinite(reflectance["red"][0, 1])
    assert record["mask_fractions"] == {"fill": 0.25, "saturated": 0.25}


# --------------------------------------------------------------------------- the real crop
@pytest.mark.integration
def test_the_crop_imports_on_its_own_grid_with_the_dem(imported: tuple[dict, Path]) -> None:
    manifest, out = imported
    assert manifest["kind"] == "landsat7-dn" and manifest["crs"] == "EPSG:31985"
    assert (manifest["width"], manifest["height"]) == (349, 352)
    assert manifest["resolution"] == pytest.approx(28.5)
    assert manifest["bounds"][0] == pytest.approx(ORIGIN[0]) and manifest["bounds"][3] == (
        pytest.approx(ORIGIN[1])
    )
    scene = read_scene(out)
    assert set(scene.layer_files) == {"red", "green", "blue", "nir", "swir", "dem", "clear"}
    layers = read_layers(scene)
    dem = layers["dem"]
    assert np.isfinite(dem).mean() > 0.99  # the 90 m DEM covers all but the last row
    with rasterio.open(out / "dem.tif") as written:
        assert written.crs.to_epsg() == 31985 and written.res == pytest.approx((28.5, 28.5))


@pytest.mark.integration
def test_lineage_says_no_cloud_mask_no_thermal_and_how_it_was_calibrated(
    imported: tuple[dict, Path],
) -> None:
    source = imported[0]["source"]
    notes = " | ".join(source["notes"])
    assert "no cloud mask" in notes and "no thermal" in notes and "calibration assumed" in notes
    assert source["warnings"] == source["notes"]
    assert source["lst_source"] == "none" and source["qa"]["scheme"] == "none"
    assert "Chander" in source["calibration"]["reference"]
    assert source["bands"]["B4"]["gain"] == "L" and source["bands"]["B3"]["gain"] == "H"
    assert source["dem"]["file"] == "olinda_dem_utm25s.tif" and source["dem"]["coverage"] > 0.99
    assert imported[0]["stats"]["lst_median_c"] is None


@pytest.mark.integration
def test_water_is_found_by_ndwi_on_the_sea_and_the_city_is_built_up(
    imported: tuple[dict, Path],
) -> None:
    table = scene_cell_table(read_scene(imported[1]), 30.0)
    assert "lst" not in table  # nothing observed to train or compare on
    water = table["water_fraction"] > 0.5
    assert 0.08 < water.mean() < 0.3  # the Atlantic along the east edge, and the rivers
    assert table.loc[water, "elevation"].median() < 2.0  # water lies at sea level in the DEM
    assert table.loc[~water, "elevation"].median() > 5.0
    land = table[~water]
    assert (land["imperviousness"] >= 0.5).mean() > 0.05  # a city, unlike the rural strip
    assert land["ndvi"].between(-0.2, 1.0).mean() > 0.99


@pytest.mark.integration
def test_cli_prints_the_warnings(sample: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["scene", "import", "landsat7", str(sample / "L7_ETMs.tif"), "--out", str(tmp_path / "s")],
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "warning: no cloud mask" in text and "warning: no thermal" in text
    assert json.loads((tmp_path / "s" / "scene.json").read_text())["name"] == "L7_ETMs"


# --------------------------------------------------------------------------- bad input
def _geotiff(path: Path, data: np.ndarray) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype,
        crs="EPSG:31985",
        transform=from_origin(*ORIGIN, 28.5, 28.5),
    ) as dst:
        dst.write(data)
    return path


def test_bad_files_and_options_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    three = _geotiff(tmp_path / "three.tif", np.full((3, 8, 8), 60, np.uint8))
    floats = _geotiff(tmp_path / "floats.tif", np.full((6, 8, 8), 0.1, np.float32))
    out = tmp_path / "out"
    with pytest.raises(InvalidInputError, match="has 3 bands but 6 band numbers"):
        import_landsat7_dn(three, out)
    with pytest.raises(InvalidInputError, match="not digital numbers"):
        import_landsat7_dn(floats, out)
    with pytest.raises(InvalidInputError, match="bad gain states"):
        import_landsat7_dn(three, out, gains="HHH")
    with pytest.raises(InvalidInputError, match="bad sun elevation"):
        import_landsat7_dn(three, out, sun_elevation_deg=95.0)
    for text in ("1,2,3,4", "1,2,3,4,5,6", "1,1,2,3,4,5", "a,b"):
        with pytest.raises(InvalidInputError, match="bad band numbers"):
            parse_band_numbers(text)
    assert parse_band_numbers("1,2,3,4,5") == (1, 2, 3, 4, 5)
    assert not out.exists()
    result = CliRunner().invoke(
        app, ["scene", "import", "landsat7", str(three), "--out", str(out), "--gains", "HHX"]
    )
    assert result.exit_code == 2 and "bad gain states" in result.output
    assert not out.exists()
