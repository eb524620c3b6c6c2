"""Training data of the segmentation service: scenes → arrays → chips, checks, fingerprint.

The image is read exactly as every other feature path reads a scene:
:func:`terraops.domain.features.reflectance_bands` turns the stored
bands into reflectance (0–1, NaN = no data). The label is the scene's *true*
land cover mapped to segmentation classes
(:func:`~terraops.domain.segmentation.classes.segmentation_from_landcover`):
for training a segmenter, the generator's truth is exactly the label we want
(the brief forbids it only as a *feature*). Pixels with no data in any band
are labelled 255 and ignored by the loss and the metrics.

Chips are random crops (a fresh set each epoch, from a seeded generator)
with one of the eight dihedral transforms — the rot90/flip augmentation that
suits nadir imagery, where "up" has no meaning (Buslaev et al. 2020,
"Albumentations", Information 11(2):125).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.transform import Affine

from terraops.adapters import raster_io
from terraops.domain.bands import REFLECTANCE_BANDS
from terraops.domain.features import reflectance_bands
from terraops.domain.scene_record import Scene
from terraops.domain.segmentation.classes import (
    N_CLASSES,
    SEGMENTATION_NODATA,
    segmentation_from_landcover,
)
from terraops.errors import InvalidInputError

MIN_VALID_SHARE = 0.99
"""A training scene must have data in every band on at least this share of its pixels."""


@dataclass(frozen=True)
class SceneArrays:
    """One scene in memory: reflectance (5, H, W) float32 with NaN, labels (H, W) uint8."""

    name: str
    image: np.ndarray
    labels: np.ndarray
    transform: Affine
    crs: str
    scene: Scene

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.labels.shape[0]), int(self.labels.shape[1])


def load_scene(scene_dir: Path) -> SceneArrays:
    """Reflectance bands and segmentation labels of a scene folder that has land cover."""
    scene = raster_io.read_scene(Path(scene_dir))
    if not scene.has_layer("landcover"):
        raise InvalidInputError(
            f"scene {scene.name} has no land-cover layer to learn from",
            hint="train on synthetic scenes (terraops scene generate) or scenes with labels",
        )
    layers = raster_io.read_layers(scene, [*REFLECTANCE_BANDS, "landcover"])
    bands = reflectance_bands(scene, layers)
    image = np.stack([bands[b] for b in REFLECTANCE_BANDS]).astype(np.float32)
    labels = segmentation_from_landcover(layers["landcover"])
    labels[~np.isfinite(image).all(axis=0)] = SEGMENTATION_NODATA
    return SceneArrays(
        name=scene.name,
        image=image,
        labels=labels,
        transform=scene.affine,
        crs=scene.crs,
        scene=scene,
    )


# --------------------------------------------------------------------------- checks
def check_training_data(
    train: Sequence[SceneArrays], val: Sequence[SceneArrays], chip: int
) -> dict[str, Any]:
    """Data-quality checks of the training and validation scenes (JSON-able report).

    Training is refused when any check fails (a model of bad data is never a
    candidate), as for the tabular services' suites.
    """
    checks: list[dict[str, Any]] = []

    def add(scene: str, check: str, passed: bool, observed: Any) -> None:
        checks.append(
            {"scene": scene, "check": check, "passed": bool(passed), "observed": observed}
        )

    for role, scenes in (("train", train), ("val", val)):
        for s in scenes:
            valid = float(np.isfinite(s.image).all(axis=0).mean())
            add(s.name, f"{role}: valid_share>={MIN_VALID_SHARE}", valid >= MIN_VALID_SHARE, valid)
            codes = sorted(int(c) for c in np.unique(s.labels))
            unknown = [c for c in codes if c >= N_CLASSES and c != SEGMENTATION_NODATA]
            add(s.name, f"{role}: label codes known", not unknown, codes)
            if role == "train":
                add(s.name, f"train: at least {chip} px a side", min(s.shape) >= chip, s.shape)
    counts = class_counts(train)
    for class_id, count in enumerate(counts):
        add("*", f"train: class {class_id} present", count > 0, int(count))
    add("*", "val: at least one scene", len(val) > 0, len(val))
    return {"passed": all(c["passed"] for c in checks), "checks": checks}


def class_counts(scenes: Sequence[SceneArrays]) -> np.ndarray:
    """Pixels per class over the scenes (no-data excluded)."""
    total = np.zeros(N_CLASSES, dtype=np.int64)
    for s in scenes:
        total += np.bincount(s.labels.ravel(), minlength=256)[:N_CLASSES]
    return total


def class_weights(counts: np.ndarray, power: float) -> np.ndarray:
    """Cross-entropy weights ∝ frequency^-power, normalised to a pixel-weighted mean of 1.

    ``power = 1`` is inverse-frequency balancing, ``0`` no weighting; ``0.5``
    (default) softens it so a rare class counts more without the noisy
    gradients of extreme weights (the "median frequency balancing" idea of
    Eigen & Fergus 2015, ICCV, tempered). Normalising keeps the loss scale,
    hence the learning rate, independent of the class mix.
    """
    freq = counts / max(1, counts.sum())
    weights = np.where(freq > 0, np.maximum(freq, 1e-6) ** -power, 0.0)
    mean = float((weights * freq).sum())
    return (weights / mean if mean > 0 else np.ones_like(weights)).astype(np.float32)


def fingerprint(scenes: Sequence[SceneArrays], roles: Sequence[str]) -> dict[str, Any]:
    """sha256 of each scene's pixels and labels and of its manifest, and of them all."""
    entries = []
    for s, role in zip(scenes, roles, strict=True):
        pixels = hashlib.sha256(s.image.tobytes() + s.labels.tobytes()).hexdigest()
        manifest = hashlib.sha256(
            json.dumps(s.scene.to_manifest(), sort_keys=True, default=str).encode()
        ).hexdigest()
        entries.append(
            {
                "name": s.name,
                "role": role,
                "shape": list(s.shape),
                "pixels_sha256": pixels,
                "sha256": manifest,
            }
        )
    joined = "".join(str(e["pixels_sha256"]) for e in entries)
    combined = hashlib.sha256(joined.encode()).hexdigest()
    return {"sha256": combined, "scenes": entries}


# --------------------------------------------------------------------------- chips
def random_chips(
    scenes: Sequence[SceneArrays], n: int, chip: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random ``chip × chip`` crops: (n, 5, chip, chip) float32, (n, chip, chip) int64.

    Scenes are drawn in proportion to their area, positions uniformly, so
    every pixel of the training set is equally likely to be seen. No-data
    reflectance is returned as NaN (the network's input layer fills it).
    """
    if not scenes:
        raise InvalidInputError("no training scenes")
    small = [s.name for s in scenes if min(s.shape) < chip]
    if small:
        raise InvalidInputError(
            f"scenes {small} are smaller than the {chip} px training chip",
            hint="use larger scenes or --param chip=N",
        )
    areas = np.array([s.shape[0] * s.shape[1] for s in scenes], dtype=np.float64)
    picks = rng.choice(len(scenes), size=n, p=areas / areas.sum())
    x = np.empty((n, len(REFLECTANCE_BANDS), chip, chip), dtype=np.float32)
    y = np.empty((n, chip, chip), dtype=np.int64)
    for i, k in enumerate(picks):
        s = scenes[int(k)]
        r = int(rng.integers(0, s.shape[0] - chip + 1))
        c = int(rng.integers(0, s.shape[1] - chip + 1))
        x[i] = s.image[:, r : r + chip, c : c + chip]
        y[i] = s.labels[r : r + chip, c : c + chip]
    return x, y


def augment(
    x: np.ndarray, y: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Each chip under one of the 8 dihedral transforms (k·90° rotation, optional flip)."""
    x_out, y_out = np.empty_like(x), np.empty_like(y)
    for i in range(len(x)):
        k = int(rng.integers(0, 4))
        xi, yi = np.rot90(x[i], k, axes=(1, 2)), np.rot90(y[i], k, axes=(0, 1))
        if rng.random() < 0.5:
            xi, yi = xi[:, :, ::-1], yi[:, ::-1]
        x_out[i], y_out[i] = xi, yi
    return x_out, y_out
