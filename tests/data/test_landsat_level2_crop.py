"""A real Level-2 crop without QA band and without georeferenced GeoTIFFs (Liverpool, 2020).

The sample is read from the cache set-up fills (``scripts/fetch_test_samples.py``, which
takes it from the shared data folder or its public source, checksum verified); without it
these tests skip and name that command. Expected values come from the product's MTL and
README (corner pixel centres UL (487020, 5929980), LR (499980, 5922000), 30 m, UTM 30N),
not from terraops' own functions.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from samples_support import cached_sample, kept_distribution
from terraops.adapters.raster_io import read_layers, read_scene
from terraops.adapters.samples import LIVERPOOL_SAMPLE, fetch_sample, is_intact
from terraops.cli.main import app
from terraops.errors import InvalidInputError
from terraops.pipelines.scenes.importing import import_landsat

UL_CENTRE = (487020.0, 5929980.0)
LR_CENTRE = (499980.0, 5922000.0)
HALF_PIXEL = 15.0


@pytest.fixture(scope="module")
def crop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_sample(LIVERPOOL_SAMPLE, tmp_path_factory.mktemp("liverpool"))


@pytest.fixture(scope="module")
def imported(crop: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("scene") / "liverpool"
    return import_landsat(crop, out), out


def _edit_mtl(folder: Path, drop: str = "", replace: tuple[str, str] = ("", "")) -> None:
    mtl = next(folder.glob("*_MTL.txt"))
    lines = mtl.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not (drop and line.strip().startswith(drop))]
    text = "".join(kept)
    if replace[0]:
        assert replace[0] in text
        text = text.replace(*replace)
    mtl.write_text(text)


@pytest.mark.integration
def test_crop_imports_on_the_grid_its_mtl_describes(imported: tuple[dict, Path]) -> None:
    manifest, out = imported
    assert manifest["crs"] == "EPSG:32630"
    assert (manifest["width"], manifest["height"]) == (433, 267)
    expected = (
        UL_CENTRE[0] - HALF_PIXEL,
        LR_CENTRE[1] - HALF_PIXEL,
        LR_CENTRE[0] + HALF_PIXEL,
        UL_CENTRE[1] + HALF_PIXEL,
    )
    assert manifest["bounds"] == pytest.approx(expected, abs=1e-6)
    with rasterio.open(out / "red.tif") as written:  # what GIS tools will see
        assert written.crs.to_epsg() == 32630
        assert tuple(written.bounds) == pytest.approx(expected, abs=1e-6)


@pytest.mark.integration
def test_lineage_says_grid_from_mtl_and_no_cloud_mask(imported: tuple[dict, Path]) -> None:
    source = imported[0]["source"]
    notes = " | ".join(source["notes"])
    assert "grid from MTL" in notes and "no cloud mask" in notes
    assert source["grid"].startswith("grid from MTL")
    assert source["qa"]["scheme"] == "none"
    assert "QA" not in source["files"]
    assert source["lst_source"] == "Level-2 ST_B10"


@pytest.mark.integration
def test_without_qa_only_no_data_is_masked(imported: tuple[dict, Path]) -> None:
    manifest, out = imported
    layers = read_layers(read_scene(out))
    clear = layers["clear"] == 1
    no_data = layers["red"] == 0
    assert np.array_equal(clear, ~no_data)
    assert manifest["source"]["masked_fraction"] == pytest.approx(1 - clear.mean(), abs=1e-6)


@pytest.mark.integration
def test_land_surface_temperature_is_plausible_on_land(imported: tuple[dict, Path]) -> None:
    layers = read_layers(read_scene(imported[1]))
    clear = layers["clear"] == 1
    green, red, nir = (layers[b].astype(np.float64) for b in ("green", "red", "nir"))
    with np.errstate(divide="ignore", invalid="ignore"):
        ndwi = (green - nir) / (green + nir)  # McFeeters 1996: water > 0
        ndvi = (nir - red) / (nir + red)
    land = clear & (ndwi < 0)
    assert 0.1 < land.mean() < 0.6  # about a third is land, the rest the Irish Sea
    lst = layers["lst"][land]
    assert np.isfinite(lst).all()
    assert lst.min() >= 5.0 and lst.max() <= 30.0
    assert np.median(ndvi[land]) > 0.2  # farmland, dunes and suburbs: vegetated


@pytest.mark.integration
def test_cli_prints_the_no_cloud_mask_warning(crop: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["scene", "import", "landsat", str(crop), "--out", str(tmp_path / "s")]
    )
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "no cloud mask" in warnings[0], result.stderr


@pytest.mark.parametrize(
    ("edit", "messages"),
    [
        (
            {"drop": "CORNER_UL_PROJECTION_X_PRODUCT"},
            ["no georeferencing", "CORNER_UL_PROJECTION_X_PRODUCT"],
        ),
        (
            {
                "replace": (
                    "LR_PROJECTION_Y_PRODUCT = 5922000.0",
                    "LR_PROJECTION_Y_PRODUCT = 5921970.0",
                )
            },
            ["433x268", "433x267"],
        ),
    ],
    ids=["no corners", "corners disagree with the bands"],
)
def test_no_georeferencing_and_no_usable_mtl_grid_is_refused(
    crop: Path, tmp_path: Path, edit: dict, messages: list[str]
) -> None:
    bad = Path(shutil.copytree(crop, tmp_path / "bad"))
    _edit_mtl(bad, **edit)
    out = tmp_path / "out" / "scene"
    with pytest.raises(InvalidInputError) as caught:
        import_landsat(bad, out)
    for message in messages:
        assert message in caught.value.message, caught.value.message
    assert caught.value.hint
    assert not (tmp_path / "out").exists()


def test_tampered_archive_is_refused_by_its_checksum(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    tampered = mirror / LIVERPOOL_SAMPLE.file_name
    data = bytearray(kept_distribution(LIVERPOOL_SAMPLE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    with pytest.raises(InvalidInputError) as caught:
        fetch_sample(tmp_path / "cache", LIVERPOOL_SAMPLE, mirror=mirror, timeout_s=1)
    assert "md5" in caught.value.message and LIVERPOOL_SAMPLE.md5 in caught.value.message
    assert not is_intact(tmp_path / "cache" / LIVERPOOL_SAMPLE.name)


def test_intact_archive_from_the_mirror_is_unpacked(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(kept_distribution(LIVERPOOL_SAMPLE), mirror / LIVERPOOL_SAMPLE.file_name)
    folder = fetch_sample(tmp_path / "cache", LIVERPOOL_SAMPLE, mirror=mirror, timeout_s=1)
    assert is_intact(folder)
    names = sorted(p.name for p in folder.iterdir())
    assert len([n for n in names if n.endswith(".TIF")]) == 8
    assert not any("QA_PIXEL" in n for n in names)
