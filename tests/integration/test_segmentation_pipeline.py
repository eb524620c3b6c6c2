"""Segmentation end to end through the CLI, on a real MLflow store and tiny scenes.

train (tiny U-Net, one short epoch) → registered ``segmentation`` challenger →
promotion gate on building IoU → rollback → predict a scene (ONNX and
PyTorch) → mask COG + polygons + catalogue layers → evaluate. The network is
far too small and short-trained to be good: these tests check the plumbing
and the contracts, not the model's quality (that is measured, not tested).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from segmentation_support import invoke, train_tiny
from terraops.adapters.registry import ModelRegistry
from terraops.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def trained(tiny_scenes: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A home with segmentation v1 trained through the CLI (city 1), validated on city 2."""
    settings = Settings(home=tmp_path_factory.mktemp("seg") / "home", user="tester")
    train_dir, val_dir = tiny_scenes
    result = train_tiny(settings, train_dir, val_dir, promote=False)
    return {"settings": settings, "train": json.loads(result.stdout), "scene": val_dir}


def test_training_logs_and_registers_a_challenger(trained: dict[str, Any]) -> None:
    settings, out = trained["settings"], trained["train"]
    registry = ModelRegistry(settings)
    assert out["version"] == 1 and registry.get_alias("segmentation", "challenger") == 1
    info = registry.get_version("segmentation", 1)
    assert info.tags["terraops.data_quality"] == "passed"
    assert info.tags["terraops.service"] == "segmentation"
    for name in ("building", "water", "tree", "background"):
        assert 0.0 <= info.metrics[f"{name}_iou_val"] <= 1.0
        assert info.metrics[f"{name}_iou_val"] == pytest.approx(out["metrics"][f"{name}_iou_val"])
    assert info.params["base_width"] == "4" and info.params["device"] == "cpu"
    artifacts = set(registry.run_artifacts("segmentation", 1))
    assert {"feature_schema.json", "data_fingerprint.json", "data_quality.json"} <= artifacts
    assert len(out["history"]) == 1 and info.metrics["onnx_max_abs_prob_diff"] <= 1e-4


def test_gate_rollback_and_history(trained: dict[str, Any]) -> None:
    settings = trained["settings"]
    refused = invoke(settings, "promote", "segmentation", "--challenger")
    assert refused.exit_code == 4, refused.output
    assert "building_iou_val" in refused.output and "0.85" in refused.output
    forced = invoke(settings, "promote", "segmentation", "--challenger", "--force")
    assert forced.exit_code == 0, forced.output
    registry = ModelRegistry(settings)
    assert registry.get_alias("segmentation", "champion") == 1

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    original = client.get_model_version("segmentation", "1")
    v2 = int(client.create_model_version("segmentation", original.source, original.run_id).version)
    assert (
        invoke(settings, "promote", "segmentation", "--version", str(v2), "--force").exit_code == 0
    )
    assert registry.get_alias("segmentation", "champion") == v2
    rolled = invoke(settings, "rollback", "segmentation", "--reason", "test")
    assert rolled.exit_code == 0, rolled.output
    assert registry.get_alias("segmentation", "champion") == 1
    history = json.loads(invoke(settings, "models", "history", "segmentation", "--json").stdout)
    assert [(h["action"], h["to_version"]) for h in history[:3]] == [
        ("rollback", 1),
        ("promote", v2),
        ("promote", 1),
    ]
    gates = {g["gate"]: g for g in history[2]["gates"]}
    assert gates["loadable"]["passed"] and not gates["metric_target"]["passed"]


def test_model_card_reads_every_figure_from_the_run(
    trained: dict[str, Any], tmp_path: Path
) -> None:
    """`segment card` renders the champion's logged scores, not typed-in numbers."""
    settings = trained["settings"]
    card = tmp_path / "cards" / "segmentation.md"
    result = invoke(settings, "segment", "card", "--out", str(card))
    assert result.exit_code == 0, result.output
    text = card.read_text()
    info = ModelRegistry(settings).get_version("segmentation", 1)
    assert "version 1" in text and info.run_id in text
    building = f"| building | {info.metrics['building_iou_val']:.3f} |"
    assert building in text
    assert "**not met**" in text  # the tiny model misses the 0.85 gate, and the card says so
    assert (card.parent / "segmentation-plots" / "learning_curve.png").stat().st_size > 1000
    assert "No real-data report in this home yet" in text


@pytest.fixture(scope="module")
def predicted(trained: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    settings, scene = trained["settings"], trained["scene"]
    out = tmp_path_factory.mktemp("pred")
    runs = {}
    for engine in ("onnx", "torch"):
        result = invoke(
            settings,
            "segment", "predict", "--scene", str(scene), "--version", "1",
            "--engine", engine, "--out-mask", str(out / f"{engine}.tif"),
            "--out-vector", str(out / f"{engine}.geojson"), "--json",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        runs[engine] = json.loads(result.stdout)
    return {"runs": runs, "out": out, **trained}


def test_mask_is_a_valid_cog_on_the_scene_grid_with_lineage(predicted: dict[str, Any]) -> None:
    from terraops.adapters.cog import validate_cog

    mask = Path(predicted["runs"]["onnx"]["mask"])
    assert validate_cog(mask) == []
    with rasterio.open(mask) as m, rasterio.open(predicted["scene"] / "red.tif") as ref:
        assert (m.crs, m.transform, m.shape) == (ref.crs, ref.transform, ref.shape)
        assert m.nodata == 255 and m.dtypes[0] == "uint8"
        tags = m.tags()
        assert (tags["model_name"], tags["model_version"]) == ("segmentation", "1")
        assert m.colormap(1)[1][:3] == (215, 48, 39)  # buildings in the class colour
        assert set(np.unique(m.read(1))) <= {0, 1, 2, 3}


def test_polygons_are_wgs84_geojson_with_properties(predicted: dict[str, Any]) -> None:
    collection = json.loads(Path(predicted["runs"]["onnx"]["vector"]).read_text())
    features = collection["features"]
    assert collection["type"] == "FeatureCollection" and features, "no polygon predicted"
    from shapely.geometry import shape

    for feature in features:
        props = feature["properties"]
        assert props["class"] in {"building", "water", "tree"}
        assert props["model_name"] == "segmentation" and props["model_version"] == 1
        assert props["area_m2"] >= 8.0 and 0.0 <= props["score"] <= 1.0
        geometry = shape(feature["geometry"])
        assert geometry.is_valid
        lon, lat = geometry.representative_point().coords[0]
        assert -180 <= lon <= 180 and -90 <= lat <= 90


def test_layers_are_in_the_catalogue(predicted: dict[str, Any]) -> None:
    from terraops.adapters.catalogue import LayerCatalogue

    catalogue = LayerCatalogue(predicted["settings"].layers_dir)
    ids = {layer["id"]: layer["kind"] for layer in predicted["runs"]["torch"]["layers"]}
    assert sorted(ids.values()) == ["raster", "raster", "vector"]
    for lid in ids:
        layer = catalogue.get_available(lid)
        if layer.role in ("mask", "footprints"):
            assert layer.group == "footprints" and layer.model_version == 1
        if layer.role == "mask":
            _assert_tiles_show_the_class_colours(layer)


def _assert_tiles_show_the_class_colours(layer: Any) -> None:
    """The mask's tiles use its embedded class palette, not a grey ramp."""
    import io

    import morecantile
    from PIL import Image

    from terraops.adapters.layer_files import TileStyle, render_tile, tile_zooms

    _, maxzoom, (west, south, east, north) = tile_zooms(layer)
    mercator = morecantile.tms.get("WebMercatorQuad")
    tile = mercator.tile((west + east) / 2, (south + north) / 2, maxzoom)
    png = render_tile(layer, tile.z, tile.x, tile.y, 1, TileStyle(layer.colormap, layer.rescale))
    rgba = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA")).reshape(-1, 4)
    opaque = rgba[rgba[:, 3] > 0, :3].astype(int)
    assert len(opaque) > 0
    assert (np.ptp(opaque, axis=1) > 30).any(), "class colours, not greys"


def test_geopackage_keeps_the_native_crs_and_the_map_gets_geojson(
    predicted: dict[str, Any], tmp_path: Path
) -> None:
    import geopandas as gpd

    from terraops.adapters.catalogue import LayerCatalogue

    settings = predicted["settings"]
    gpkg = tmp_path / "fp.gpkg"
    result = invoke(
        settings,
        "segment", "predict", "--scene", str(predicted["scene"]), "--version", "1",
        "--out-mask", str(tmp_path / "m.tif"), "--out-vector", str(gpkg), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["format"] == "gpkg"
    frame = gpd.read_file(gpkg)
    with rasterio.open(predicted["scene"] / "red.tif") as ref:
        assert frame.crs == ref.crs
    onnx = json.loads(Path(predicted["runs"]["onnx"]["vector"]).read_text())
    assert len(frame) == len(onnx["features"])
    layer = LayerCatalogue(settings.layers_dir).get_available(
        next(x["id"] for x in json.loads(result.stdout)["layers"] if x["kind"] == "vector")
    )
    assert layer.path.endswith(".geojson") and layer.crs == "EPSG:4326"


def test_onnx_and_torch_give_the_same_mask(predicted: dict[str, Any]) -> None:
    with rasterio.open(predicted["runs"]["onnx"]["mask"]) as a:
        onnx_mask = a.read(1)
    with rasterio.open(predicted["runs"]["torch"]["mask"]) as b:
        torch_mask = b.read(1)
    assert float((onnx_mask == torch_mask).mean()) >= 0.999


def test_evaluate_cli_scores_masks_and_polygons(predicted: dict[str, Any], tmp_path: Path) -> None:
    from terraops.domain.segmentation.metrics import pixel_metrics
    from terraops.pipelines.segmentation.data import load_scene

    settings, out = predicted["settings"], predicted["out"]
    scene = load_scene(predicted["scene"])
    truth = tmp_path / "truth.tif"
    _write_mask(truth, scene.labels, scene.crs, scene.transform)
    pred_mask = out / "onnx.tif"
    result = invoke(
        settings, "segment", "evaluate", "--pred", str(pred_mask), "--truth", str(truth), "--json"
    )
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    with rasterio.open(pred_mask) as src:
        expected = pixel_metrics(src.read(1), scene.labels, [0, 1, 2, 3], ignore=255)
    for class_id, name in enumerate(("background", "building", "water", "tree")):
        assert scores["pixel"][name]["iou"] == pytest.approx(expected[class_id].iou)
    assert set(scores["objects"]["building"]) >= {"f1", "precision", "recall", "tp"}

    vector = invoke(
        settings,
        "segment",
        "evaluate",
        "--pred",
        str(out / "onnx.geojson"),
        "--truth",
        str(truth),
        "--json",
    )
    assert vector.exit_code == 0, vector.output
    from_polygons = json.loads(vector.stdout)["pixel"]
    for name in ("building", "water", "tree"):  # polygons are the simplified mask
        if scores["pixel"][name]["support"] > 500:
            assert from_polygons[name]["iou"] == pytest.approx(
                scores["pixel"][name]["iou"], abs=0.08
            )

    shifted = tmp_path / "shifted.tif"
    t = scene.transform
    _write_mask(shifted, scene.labels, scene.crs, t @ t.translation(3, 0))
    mismatch = invoke(
        settings, "segment", "evaluate", "--pred", str(pred_mask), "--truth", str(shifted)
    )
    assert mismatch.exit_code == 2 and "different grids" in mismatch.output


def test_bad_inputs_exit_with_clear_messages(predicted: dict[str, Any], tmp_path: Path) -> None:
    from terraops.pipelines.segmentation.data import load_scene

    settings = predicted["settings"]
    scene = load_scene(predicted["scene"])
    rgb = tmp_path / "rgb.tif"
    h, w = scene.shape
    with rasterio.open(
        rgb,
        "w",
        driver="GTiff",
        width=w,
        height=h,
        count=3,
        dtype="float32",
        crs=scene.crs,
        transform=scene.transform,
    ) as dst:
        dst.write(scene.image[:3])
        for i, name in enumerate(("red", "green", "blue"), start=1):
            dst.set_band_description(i, name)
    result = invoke(
        settings,
        "segment",
        "predict",
        "--image",
        str(rgb),
        "--version",
        "1",
        "--out-mask",
        str(tmp_path / "m.tif"),
        "--out-vector",
        str(tmp_path / "v.geojson"),
    )
    assert result.exit_code == 2
    assert "cannot find bands" in result.output and "nir" in result.output
    assert not (tmp_path / "m.tif").exists()

    missing = invoke(
        settings,
        "segment",
        "predict",
        "--scene",
        str(predicted["scene"]),
        "--version",
        "99",
        "--no-layers",
    )
    assert missing.exit_code == 3
    both = invoke(
        settings, "segment", "predict", "--scene", str(predicted["scene"]), "--image", str(rgb)
    )
    assert both.exit_code == 2 and "exactly one" in both.output
    bad_param = invoke(
        settings, "segment", "train", "--scenes", str(predicted["scene"]), "--param", "wings=2"
    )
    assert bad_param.exit_code == 2 and "unknown parameter" in bad_param.output


def _write_mask(path: Path, labels: np.ndarray, crs: str, transform: Any) -> None:
    h, w = labels.shape
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=w,
        height=h,
        count=1,
        dtype="uint8",
        crs=crs,
        transform=transform,
        nodata=255,
    ) as dst:
        dst.write(labels, 1)
