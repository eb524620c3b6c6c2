"""The typed scene record: read once, validated, and written back unchanged.

``Scene.from_manifest`` / ``to_manifest`` must round-trip what the generator
and the Landsat importer write, byte for byte; a bad manifest must be refused
with a message naming the bad part (never a ``KeyError`` deep in a pipeline).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from landsat_support import make_truth, write_product
from terraops.adapters import raster_io
from terraops.domain.scene_record import MANIFEST_NAME, Scene
from terraops.errors import InvalidInputError, NotFoundError
from terraops.pipelines.scenes.generate import generate_scene
from terraops.pipelines.scenes.importing import import_landsat


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("record") / "city"
    generate_scene(out, seed=3, size=64, resolution=4.0)
    return out


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("landsat")
    product = write_product(root / "l1", make_truth())
    import_landsat(product, root / "scene")
    return root / "scene"


def _written(folder: Path) -> str:
    return (folder / MANIFEST_NAME).read_text(encoding="utf-8")


@pytest.mark.parametrize("kind", ["generated", "imported"])
def test_the_written_manifest_round_trips_byte_for_byte(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    folder: Path = request.getfixturevalue(kind)
    text = _written(folder)
    manifest = json.loads(text)
    scene = Scene.from_manifest(manifest, folder)
    assert scene.to_manifest() == manifest
    assert list(scene.to_manifest()) == list(manifest)  # same key order (the CLI's --json)
    raster_io.write_manifest(tmp_path, scene)
    assert _written(tmp_path) == text


def test_a_generated_scene_reads_as_typed_facts(generated: Path) -> None:
    scene = raster_io.read_scene(generated)
    assert scene.folder == generated and scene.crs.startswith("EPSG:")
    assert (scene.width, scene.height, scene.resolution) == (64, 64, 4.0)
    assert scene.affine.a == 4.0 and scene.affine.e == -4.0
    assert scene.origin == (scene.transform[2], scene.transform[5])
    assert [b.name for b in scene.bands] == ["red", "green", "blue", "nir", "swir"]
    red = scene.layer("red")
    assert red.file == "red.tif" and red.scale == pytest.approx(1e-4) and red.nodata == 0
    assert scene.layer("landcover").scale is None and scene.physics is not None
    assert scene.river_inflow() is not None and scene.cache_version == scene.generator_version
    assert raster_io.read_layer(scene, "red").shape == (64, 64)


def test_an_imported_scene_has_lineage_and_no_physics(imported: Path) -> None:
    scene = raster_io.read_scene(imported)
    assert scene.kind == "landsat" and scene.physics is None and scene.generator_version is None
    assert scene.source is not None and "product_id" in scene.source
    assert scene.has_layer("clear") and not scene.has_layer("landcover")
    assert scene.cache_version == "landsat" and scene.river_inflow() is None


def test_a_missing_layer_is_named(generated: Path) -> None:
    scene = raster_io.read_scene(generated)
    with pytest.raises(NotFoundError, match="has no layer 'thermal'"):
        raster_io.read_layer(scene, "thermal")


def _valid() -> dict[str, Any]:
    return {
        "name": "x",
        "crs": "EPSG:32633",
        "resolution": 2.0,
        "width": 4,
        "height": 4,
        "transform": [2.0, 0.0, 500000.0, 0.0, -2.0, 4000000.0],
        "layers": {"red": "red.tif"},
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"crs": ""}, "'crs' must be a non-empty string"),
        ({"crs": 32633}, "'crs' must be a non-empty string"),
        ({"transform": [1, 2, 3]}, "'transform' must be six numbers"),
        ({"transform": [0.0, 0.0, 1.0, 0.0, -2.0, 1.0]}, "non-zero pixel sizes"),
        ({"transform": None}, "'transform' must be six numbers"),
        ({"width": 0}, "'width' must be a whole number > 0"),
        ({"resolution": True}, "'resolution' must be a number > 0"),
        ({"name": None}, "'name' must be a non-empty string"),
        ({"layers": ["red.tif"]}, "'layers' must map layer names to files"),
        ({"layers": {"red": "../red.tif"}}, "layer 'red' must name a file inside"),
        ({"layers": {"red": "/etc/passwd"}}, "layer 'red' must name a file inside"),
        ({"reflectance": {"scale": "big"}}, "numbers for scale, offset and nodata"),
        ({"physics": "varied"}, "'physics' must be a JSON object"),
    ],
)
def test_a_bad_manifest_is_refused_with_its_bad_part_named(
    change: dict[str, Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInputError, match=message) as refused:
        Scene.from_manifest(_valid() | change, tmp_path)
    assert str(tmp_path / MANIFEST_NAME) in refused.value.message


def test_a_manifest_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="must hold a JSON object, not list"):
        Scene.from_manifest([], tmp_path)


def test_a_folder_without_a_manifest_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"scene\.json missing"):
        raster_io.read_scene(tmp_path)


json_leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
finite = st.floats(min_value=-1e7, max_value=1e7, allow_nan=False)
pixel = st.floats(min_value=0.01, max_value=1e3)


@given(
    name=st.text(min_size=1, max_size=12),
    size=st.tuples(st.integers(1, 10_000), st.integers(1, 10_000)),
    res=pixel,
    origin=st.tuples(finite, finite),
    extra=st.dictionaries(st.sampled_from(["seed", "stats", "bounds", "morphology"]), json_values),
    source=st.none() | st.dictionaries(st.text(max_size=6), json_values, max_size=3),
    nodata=st.none() | st.integers(0, 65535) | finite,
)
@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_valid_manifest_round_trips(
    name: str,
    size: tuple[int, int],
    res: float,
    origin: tuple[float, float],
    extra: dict[str, Any],
    source: dict[str, Any] | None,
    nodata: float | None,
) -> None:
    manifest: dict[str, Any] = {
        "name": name,
        "crs": "EPSG:32633",
        "resolution": res,
        "width": size[1],
        "height": size[0],
        "transform": [res, 0.0, origin[0], 0.0, -res, origin[1]],
        **extra,
        "reflectance": {"bands": ["red"], "scale": 1e-4, "offset": 0.0, "nodata": nodata},
        "layers": {"red": "red.tif"},
    }
    if source is not None:
        manifest["source"] = source
    scene = Scene.from_manifest(json.loads(json.dumps(manifest)), Path("scene"))
    again = scene.to_manifest()
    assert json.dumps(again) == json.dumps(manifest)
    assert Scene.from_manifest(again, Path("scene")) == scene
