"""STAC items → scenes: Sentinel-2 L2A (earth-search and Planetary Computer keys) and
Landsat Collection 2 Level-1/Level-2, local assets, lineage, unreachable assets.

Items are written by tests/sentinel2_support.py over products of the two support
modules; each import is compared with the import of the same product as files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import landsat_support
import sentinel2_support as s2
from terraops.adapters.raster_io import read_layers, read_scene
from terraops.errors import InvalidInputError, NotFoundError
from terraops.pipelines.scenes.importing import import_landsat
from terraops.pipelines.scenes.sentinel2 import import_sentinel2
from terraops.pipelines.scenes.stac import import_stac


@pytest.fixture(scope="module")
def truth() -> s2.Truth:
    return s2.make_truth()


@pytest.fixture(scope="module")
def safe_scene(truth: s2.Truth, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("safe")
    out = root / "scene"
    import_sentinel2(s2.write_safe(root, truth, "04.00"), out)
    return read_layers(read_scene(out))


def same_layers(out: Path, reference: dict) -> None:
    layers = read_layers(read_scene(out))
    assert set(layers) == set(reference)
    for name, values in reference.items():
        np.testing.assert_array_equal(layers[name], values, err_msg=name)


@pytest.mark.parametrize(
    ("style", "baseline", "offset_in_files", "extra", "rule"),
    [
        ("earth-search", "04.00", None, {}, "s2:processing_baseline = 04.00"),
        ("planetary", "02.14", 0, {}, "s2:processing_baseline = 02.14"),
        (
            "earth-search",
            "04.00",
            0,
            {"earthsearch:boa_offset_applied": True},
            "earthsearch:boa_offset_applied = true (offset already in the COGs)",
        ),
    ],
)
def test_sentinel2_item_imports_like_the_safe(
    truth: s2.Truth,
    safe_scene: dict,
    tmp_path: Path,
    style: str,
    baseline: str,
    offset_in_files: int | None,
    extra: dict,
    rule: str,
) -> None:
    item = s2.write_s2_item(
        tmp_path / "item", truth, style=style, baseline=baseline,
        offset_in_files=offset_in_files, **extra,
    )  # fmt: skip
    manifest = import_stac(str(item), tmp_path / "scene")
    same_layers(tmp_path / "scene", safe_scene)
    source = manifest["source"]
    assert source["offset_source"] == [rule]
    assert manifest["kind"] == "sentinel2" and manifest["name"] == s2.product_name(baseline)
    stac = source["stac"]
    assert stac["item_id"] == json.loads(item.read_text())["id"]
    assert stac["datetime"] == "2023-08-06T16:38:39.024000Z" and stac["platform"] == "sentinel-2b"
    assert stac["collection"] == "sentinel-2-l2a" and stac["item"] == str(item)
    keys = s2.EARTH_SEARCH if style == "earth-search" else s2.PLANETARY
    expected = {
        keys[b]: str(tmp_path / "item" / f"{b}.tif") for b in (*s2.TERRAOPS.values(), "SCL")
    }
    assert stac["assets"] == expected
    assert source["acquired"] == "2023-08-06T16:38:39.024000Z"
    assert source["footprint"]["type"] == "Polygon" and source["tile"] == s2.TILE


def test_raster_bands_scale_and_offset_when_the_item_says_nothing_else(
    truth: s2.Truth, safe_scene: dict, tmp_path: Path
) -> None:
    item = s2.write_s2_item(tmp_path / "item", truth)
    document = json.loads(item.read_text())
    del document["properties"]["s2:processing_baseline"]
    item.write_text(json.dumps(document))
    manifest = import_stac(str(item), tmp_path / "scene")
    same_layers(tmp_path / "scene", safe_scene)
    assert manifest["source"]["offset_source"] == ["raster:bands scale and offset"]
    for asset in document["assets"].values():
        asset.pop("raster:bands", None)
    item.write_text(json.dumps(document))
    with pytest.raises(InvalidInputError, match="reflectance offset"):
        import_stac(str(item), tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_sentinel2_item_with_landsat_thermal(truth: s2.Truth, tmp_path: Path) -> None:
    landsat = landsat_support.write_product(
        tmp_path / "l1st", landsat_support.make_truth(), "L1+ST"
    )
    item = s2.write_s2_item(tmp_path / "item", truth)
    manifest = import_stac(str(item), tmp_path / "scene", thermal=landsat)
    assert manifest["source"]["thermal"]["date_gap_days"] == pytest.approx(2.013, abs=1e-3)
    assert "lst" in manifest["layers"]


@pytest.mark.parametrize(
    ("variant", "style"), [("L2SP", "common"), ("L1", "common"), ("L1", "roles"), ("L2SP", "roles")]
)
def test_landsat_item_imports_like_the_product_folder(
    tmp_path: Path, variant: str, style: str
) -> None:
    product = landsat_support.write_product(
        tmp_path / "product", landsat_support.make_truth(), variant
    )
    reference = import_landsat(product, tmp_path / "reference")
    item = s2.write_landsat_item(tmp_path / "item.json", product, style=style)
    manifest = import_stac(str(item), tmp_path / "scene")
    same_layers(tmp_path / "scene", read_layers(read_scene(tmp_path / "reference")))
    source = manifest["source"]
    stac = source.pop("stac")
    assert source == reference["source"]  # same files, same sha256, same constants
    assert read_scene(tmp_path / "scene").to_manifest()["source"]["stac"] == stac
    assert stac["item_id"] == reference["name"] and stac["platform"] == "landsat-8"
    assert stac["datetime"] == "2023-08-04T16:20:05.123456Z"
    assert all(Path(href).parent == product for href in stac["assets"].values())
    thermal = "lwir11" if style == "common" else ("ST_B10" if variant == "L2SP" else "B10")
    assert thermal in stac["assets"]


def test_missing_local_asset_is_named_and_nothing_written(truth: s2.Truth, tmp_path: Path) -> None:
    item = s2.write_s2_item(tmp_path / "item", truth)
    (tmp_path / "item" / "B08.tif").unlink()
    with pytest.raises(NotFoundError, match=r"asset 'nir' of the STAC item not found"):
        import_stac(str(item), tmp_path / "scene")
    assert not (tmp_path / "scene").exists()


def test_unreachable_url_asset_is_named(truth: s2.Truth, tmp_path: Path) -> None:
    item = s2.write_s2_item(tmp_path / "item", truth)
    document = json.loads(item.read_text())
    document["assets"]["red"]["href"] = "http://127.0.0.1:9/B04.tif"  # a closed local port
    item.write_text(json.dumps(document))
    with pytest.raises(
        InvalidInputError, match=r"asset 'red' could not be read from http"
    ) as caught:
        import_stac(str(item), tmp_path / "scene")
    assert "without a network" in (caught.value.hint or "")
    landsat = landsat_support.write_product(
        tmp_path / "product", landsat_support.make_truth(), "L2SP"
    )
    path = s2.write_landsat_item(tmp_path / "landsat.json", landsat)
    document = json.loads(path.read_text())
    document["assets"]["swir16"]["href"] = "http://127.0.0.1:9/SR_B6.TIF"
    path.write_text(json.dumps(document))
    with pytest.raises(InvalidInputError, match=r"asset 'swir16' could not be fetched"):
        import_stac(str(path), tmp_path / "scene")
    assert not (tmp_path / "scene").exists()


def _rewrite(item: Path, change: dict) -> None:
    document = json.loads(item.read_text())
    for key, value in change.items():
        if key == "drop_asset":
            del document["assets"][value]
        elif key == "properties":
            document["properties"] |= value
        else:
            document[key] = value
    item.write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"drop_asset": "scl"}, "has no asset for SCL (scl / SCL / SCL_20m)"),
        ({"collection": "sentinel-2-l1c", "id": "S2B_MSIL1C_x"}, "Level-1C"),
        (
            {"collection": "naip", "properties": {"platform": "aircraft"}, "id": "m_123"},
            "neither Landsat",
        ),
        ({"properties": {"s2:processing_baseline": "4"}}, "not a baseline like 04.00"),
    ],
)
def test_bad_items_fail_clearly(
    truth: s2.Truth, tmp_path: Path, change: dict, message: str
) -> None:
    item = s2.write_s2_item(tmp_path / "item", truth)
    _rewrite(item, change)
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_stac(str(item), tmp_path / "scene")
    assert not (tmp_path / "scene").exists()


def test_not_an_item(tmp_path: Path) -> None:
    path = tmp_path / "search.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    with pytest.raises(InvalidInputError, match="not a STAC Item"):
        import_stac(str(path), tmp_path / "scene")
    with pytest.raises(NotFoundError, match="STAC item not found"):
        import_stac(str(tmp_path / "none.json"), tmp_path / "scene")
    (tmp_path / "broken.json").write_text("{ not json")
    with pytest.raises(InvalidInputError, match="not a valid STAC Item"):
        import_stac(str(tmp_path / "broken.json"), tmp_path / "scene")


def test_thermal_with_a_landsat_item_is_refused(tmp_path: Path) -> None:
    product = landsat_support.write_product(tmp_path / "p", landsat_support.make_truth(), "L2SP")
    item = s2.write_landsat_item(tmp_path / "item.json", product)
    with pytest.raises(InvalidInputError, match="--thermal is for Sentinel-2"):
        import_stac(str(item), tmp_path / "scene", thermal=product)


def test_s3_hrefs_are_refused_with_a_hint(truth: s2.Truth, tmp_path: Path) -> None:
    item = s2.write_s2_item(tmp_path / "item", truth)
    document = json.loads(item.read_text())
    document["assets"]["scl"]["href"] = "s3://sentinel-cogs/16/R/DU/SCL.tif"
    item.write_text(json.dumps(document))
    with pytest.raises(InvalidInputError, match=r"asset 'scl' has a s3:// href") as caught:
        import_stac(str(item), tmp_path / "scene")
    assert "https alternate" in (caught.value.hint or "")
    assert not (tmp_path / "scene").exists()


def test_the_items_product_metadata_gives_the_offsets(
    truth: s2.Truth, safe_scene: dict, tmp_path: Path
) -> None:
    item = s2.write_s2_item(tmp_path / "item", truth)
    (tmp_path / "item" / "MTD_MSIL2A.xml").write_text(s2.mtd_msil2a("04.00", []))
    document = json.loads(item.read_text())
    del document["properties"]["s2:processing_baseline"]
    document["assets"]["product_metadata"] = {"href": "./MTD_MSIL2A.xml"}
    item.write_text(json.dumps(document))
    manifest = import_stac(str(item), tmp_path / "scene")
    same_layers(tmp_path / "scene", safe_scene)
    assert manifest["source"]["offset_source"] == ["BOA_ADD_OFFSET of the item's MTD_MSIL2A.xml"]
    assert manifest["source"]["bands"]["B08"]["boa_add_offset"] == -1000.0
