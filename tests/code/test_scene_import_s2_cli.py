"""``terraops scene import sentinel2|stac``: exit codes, messages, warnings.

Products and items come from tests/sentinel2_support.py and tests/landsat_support.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import landsat_support
import sentinel2_support as s2
from terraops.cli.main import app

runner = CliRunner()


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def products(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli-s2")
    truth = s2.make_truth()
    landsat = landsat_support.write_product(root / "l2", landsat_support.make_truth(), "L2SP")
    return {
        "safe": s2.write_safe(root, truth),
        "item": s2.write_s2_item(root / "item", truth),
        "landsat": landsat,
        "landsat_item": s2.write_landsat_item(root / "landsat.json", landsat),
    }


def test_import_sentinel2_with_thermal(products: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "scene"
    args = ["scene", "import", "sentinel2", str(products["safe"]), "--out", str(out)]
    result = runner.invoke(app, [*args, "--thermal", str(products["landsat"]), "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest["kind"] == "sentinel2" and "lst" in manifest["layers"]
    assert json.loads((out / "scene.json").read_text()) == manifest
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "already exists" in flat(again.output)
    human = runner.invoke(app, [*args, "--overwrite"])
    assert human.exit_code == 0, human.output
    text = flat(human.output)
    assert "warning: no land-surface temperature" in text and "% clear" in text


def test_import_sentinel2_from_an_item(products: dict[str, Path], tmp_path: Path) -> None:
    args = ["scene", "import", "sentinel2", str(products["item"]), "--out", str(tmp_path / "a")]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["source"]["stac"]["platform"] == "sentinel-2b"
    wrong = ["scene", "import", "sentinel2", str(products["landsat_item"])]
    result = runner.invoke(app, [*wrong, "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "is a landsat item, not sentinel2" in flat(result.output)


def test_import_stac_landsat(products: dict[str, Path], tmp_path: Path) -> None:
    args = ["scene", "import", "stac", str(products["landsat_item"]), "--out", str(tmp_path / "s")]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest["kind"] == "landsat" and manifest["source"]["stac"]["item_id"]
    assert "QA" in manifest["source"]["files"]


@pytest.mark.parametrize(
    ("target", "extra", "code", "message"),
    [
        ("nowhere", [], 3, "product folder not found"),
        ("empty", [], 3, "not a Sentinel-2 L2A SAFE folder"),
        ("safe", ["--bbox", "1,2,3"], 2, "bad --bbox"),
        ("safe", ["--thermal", "/nonexistent/landsat"], 3, "product folder not found"),
    ],
)
def test_import_sentinel2_errors(
    products: dict[str, Path],
    tmp_path: Path,
    target: str,
    extra: list[str],
    code: int,
    message: str,
) -> None:
    (tmp_path / "empty").mkdir()
    path = products.get(target, tmp_path / target)
    out = tmp_path / "out" / "scene"
    result = runner.invoke(
        app, ["scene", "import", "sentinel2", str(path), "--out", str(out), *extra]
    )
    assert result.exit_code == code, result.output
    assert message in flat(result.output)
    assert not (tmp_path / "out").exists()


def test_import_stac_errors(tmp_path: Path) -> None:
    missing = runner.invoke(
        app, ["scene", "import", "stac", str(tmp_path / "x.json"), "--out", str(tmp_path / "s")]
    )
    assert missing.exit_code == 3 and "STAC item not found" in flat(missing.output)
    (tmp_path / "fc.json").write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    bad = runner.invoke(
        app, ["scene", "import", "stac", str(tmp_path / "fc.json"), "--out", str(tmp_path / "s")]
    )
    assert bad.exit_code == 2 and "not a STAC Item" in flat(bad.output)
    assert not (tmp_path / "s").exists()
