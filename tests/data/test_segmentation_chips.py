"""Segmentation training data from a tiny scene: arrays, labels, chips, augmentation, checks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from terraops.adapters.raster_io import read_layers, read_scene
from terraops.domain.segmentation.classes import (
    N_CLASSES,
    SEGMENTATION_NODATA,
    segmentation_from_landcover,
)
from terraops.pipelines.segmentation.data import (
    SceneArrays,
    augment,
    check_training_data,
    class_counts,
    class_weights,
    fingerprint,
    load_scene,
    random_chips,
)


@pytest.fixture(scope="module")
def scenes(tiny_scenes: list[Path]) -> list[SceneArrays]:
    return [load_scene(d) for d in tiny_scenes]


def test_scene_arrays_are_reflectance_and_true_landcover_labels(
    scenes: list[SceneArrays], tiny_scenes: list[Path]
) -> None:
    s = scenes[0]
    scene = read_scene(tiny_scenes[0])
    layers = read_layers(scene, ["red", "landcover"])
    assert s.image.shape == (5, scene.height, scene.width)
    assert s.image.dtype == np.float32
    assert np.isfinite(s.image).all() and s.image.min() > 0 and s.image.max() <= 1
    scale = scene.layer("red").scale
    np.testing.assert_allclose(s.image[0], layers["red"] * scale, rtol=1e-6)
    np.testing.assert_array_equal(s.labels, segmentation_from_landcover(layers["landcover"]))
    assert set(np.unique(s.labels)) <= set(range(N_CLASSES))


def test_nodata_pixels_are_labelled_ignore(tiny_scenes: list[Path], tmp_path: Path) -> None:
    """A band's no-data value becomes NaN reflectance and label 255."""
    import shutil

    import rasterio

    scene = tmp_path / "scene"
    shutil.copytree(tiny_scenes[0], scene)
    nodata = read_scene(scene).layer("nir").nodata
    with rasterio.open(scene / "nir.tif", "r+") as dst:
        band = dst.read(1)
        band[:4, :6] = nodata
        dst.write(band, 1)
    loaded = load_scene(scene)
    assert np.isnan(loaded.image[3, :4, :6]).all()
    assert (loaded.labels[:4, :6] == SEGMENTATION_NODATA).all()
    assert (loaded.labels[4:] != SEGMENTATION_NODATA).all()


def test_random_chips_are_seeded_crops_of_the_scenes(scenes: list[SceneArrays]) -> None:
    a = random_chips(scenes, 6, 64, np.random.default_rng(5))
    b = random_chips(scenes, 6, 64, np.random.default_rng(5))
    c = random_chips(scenes, 6, 64, np.random.default_rng(6))
    assert a[0].shape == (6, 5, 64, 64) and a[1].shape == (6, 64, 64)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    # A chip as large as the scene is the scene itself, image and labels aligned.
    side = min(scenes[0].shape)
    x, y = random_chips(scenes[:1], 1, side, np.random.default_rng(0))
    np.testing.assert_array_equal(x[0], scenes[0].image[:, :side, :side])
    np.testing.assert_array_equal(y[0], scenes[0].labels[:side, :side])


def test_chips_larger_than_a_scene_are_refused(scenes: list[SceneArrays]) -> None:
    from terraops.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="smaller than"):
        random_chips(scenes, 1, max(scenes[0].shape) + 1, np.random.default_rng(0))


def test_augmentation_keeps_image_and_labels_aligned() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, (16, 12, 12))
    x = np.repeat(y[:, None].astype(np.float32), 5, axis=1) + np.arange(5)[None, :, None, None]
    xa, ya = augment(x, y, np.random.default_rng(2))
    np.testing.assert_array_equal(xa[:, 0], ya)  # band 0 still equals the label everywhere
    np.testing.assert_array_equal(xa[:, 4], ya + 4)
    assert not np.array_equal(ya, y)  # something was transformed
    for i in range(len(y)):  # each chip is one of the 8 dihedral images of its original
        images = [np.rot90(y[i], k) for k in range(4)]
        images += [im[:, ::-1] for im in images]
        assert any(np.array_equal(ya[i], im) for im in images)


def test_class_weights_favour_rare_classes() -> None:
    counts = np.array([900, 80, 20, 0])
    w = class_weights(counts, 0.5)
    assert w[2] > w[1] > w[0] > 0 and w[3] == 0
    assert float((w * counts / counts.sum()).sum()) == pytest.approx(1.0)
    np.testing.assert_allclose(class_weights(counts, 0.0)[:3], 1.0)


def test_training_data_checks_pass_on_good_scenes_and_name_failures(
    scenes: list[SceneArrays],
) -> None:
    good = check_training_data(scenes[:1], scenes[1:], chip=64)
    assert good["passed"], [c for c in good["checks"] if not c["passed"]]
    no_water = replace(scenes[0], labels=np.where(scenes[0].labels == 2, 0, scenes[0].labels))
    bad = check_training_data([no_water], scenes[1:], chip=64)
    failed = [c["check"] for c in bad["checks"] if not c["passed"]]
    assert failed == ["train: class 2 present"]
    assert not check_training_data(scenes[:1], [], chip=64)["passed"]
    too_big = check_training_data(scenes[:1], scenes[1:], chip=10_000)
    assert not too_big["passed"]


def test_class_counts_and_fingerprint_follow_the_pixels(scenes: list[SceneArrays]) -> None:
    counts = class_counts(scenes)
    assert counts.sum() == sum(s.labels.size for s in scenes)
    before = fingerprint(scenes, ["train", "val"])
    image = scenes[0].image.copy()
    image[0, 0, 0] += 0.01
    after = fingerprint([replace(scenes[0], image=image), scenes[1]], ["train", "val"])
    assert before["sha256"] != after["sha256"]
    assert before["scenes"][1] == after["scenes"][1]
