"""Segmentation classes, their map colours, and how they relate to the project's land cover.

The U-Net predicts four classes: the three that cities ask for as vector
footprints (buildings, water, trees) and everything else. Roads, grass and
bare soil are folded into background on purpose: they are what the
project's spectral rules already tell apart reasonably (vegetation indices,
NDBI), while individual buildings and tree crowns need the spatial context
a convolutional network sees (Zhu et al. 2017, "Deep learning in remote
sensing", IEEE GRSM 5(4):8–36).

Two directions are needed:

- training: the generator's land cover (:class:`~terraops.domain.landcover.LandCover`)
  becomes the segmentation label (:func:`segmentation_from_landcover`);
- use: a predicted label map stands in for part of a land-cover layer on
  imagery that comes without one (:data:`STANDS_IN_FOR`,
  :func:`landcover_from_segmentation`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import IntEnum

import numpy as np

from terraops.domain.landcover import NODATA_CODE, LandCover
from terraops.errors import InvalidInputError


class SegClass(IntEnum):
    """uint8 segmentation labels (:data:`SEGMENTATION_NODATA` = no data)."""

    BACKGROUND = 0
    BUILDING = 1
    WATER = 2
    TREE = 3


SEGMENTATION_NODATA = 255
N_CLASSES = len(SegClass)
CLASS_NAMES: dict[int, str] = {int(c): c.name.lower() for c in SegClass}
FOREGROUND_CLASSES: tuple[SegClass, ...] = (SegClass.BUILDING, SegClass.WATER, SegClass.TREE)

# RGBA colours for maps. Hues follow common topographic-map conventions
# (buildings red-brown, water blue, woodland green; ColorBrewer "Set1"/"Paired"
# shades that stay apart for the common forms of colour blindness as far as
# three hues can); background is transparent so the imagery shows through.
CLASS_COLOURS: dict[SegClass, tuple[int, int, int, int]] = {
    SegClass.BACKGROUND: (0, 0, 0, 0),
    SegClass.BUILDING: (215, 48, 39, 255),
    SegClass.WATER: (31, 120, 180, 255),
    SegClass.TREE: (51, 160, 44, 255),
}

LANDCOVER_TO_SEGMENTATION: dict[LandCover, SegClass] = {
    LandCover.BUILDING: SegClass.BUILDING,
    LandCover.ROAD: SegClass.BACKGROUND,
    LandCover.TREE: SegClass.TREE,
    LandCover.GRASS: SegClass.BACKGROUND,
    LandCover.WATER: SegClass.WATER,
    LandCover.BARE: SegClass.BACKGROUND,
}

# The land-cover classes a segmentation map can supply. Background is not one
# of them: it is the union of road, grass and bare, and cannot say which.
STANDS_IN_FOR: dict[SegClass, LandCover] = {
    SegClass.BUILDING: LandCover.BUILDING,
    SegClass.WATER: LandCover.WATER,
    SegClass.TREE: LandCover.TREE,
}

# Where the model says "background" but the fallback claims a class the model
# covers, the model's "no" wins and the claim is demoted to its look-alike:
# spectral rules cannot tell roofs from roads (both sealed: NDBI > 0), so a
# "building" the model rejects is a road; a "tree" it rejects is still
# vegetation (grass); "water" it rejects is a dark surface (shadow, dark roof),
# the commonest NDWI false positive in cities (Xu 2006, IJRS 27:3025–3033), bare.
_DEMOTED: dict[LandCover, LandCover] = {
    LandCover.BUILDING: LandCover.ROAD,
    LandCover.TREE: LandCover.GRASS,
    LandCover.WATER: LandCover.BARE,
}


def _lookup(table: Mapping[LandCover, SegClass], default: int) -> np.ndarray:
    lut = np.full(256, default, dtype=np.uint8)
    for key, value in table.items():
        lut[int(key)] = int(value)
    return lut


def segmentation_from_landcover(landcover: np.ndarray) -> np.ndarray:
    """Training labels (uint8) from a land-cover layer; no-data and unknown codes → 255."""
    lut = _lookup(LANDCOVER_TO_SEGMENTATION, SEGMENTATION_NODATA)
    return lut[np.asarray(landcover).astype(np.uint8)]


def stands_in_for(model_classes: Iterable[int] = FOREGROUND_CLASSES) -> frozenset[LandCover]:
    """The land-cover classes a model predicting ``model_classes`` can supply.

    A model trained on buildings only can replace the land cover's buildings
    but says nothing reliable about water or trees.
    """
    return frozenset(STANDS_IN_FOR[SegClass(c)] for c in model_classes if c in STANDS_IN_FOR)


def landcover_from_segmentation(
    labels: np.ndarray,
    fallback: np.ndarray,
    *,
    model_classes: Iterable[int] = FOREGROUND_CLASSES,
) -> np.ndarray:
    """A land-cover layer (uint8) from a segmentation map, completed by ``fallback``.

    ``fallback`` is a land-cover layer of the same shape (e.g. the spectral
    rules' :func:`~terraops.domain.landcover.classify_spectral`). Pixels the
    model labels with a class it covers take that class. Elsewhere the
    fallback's class is kept, except a class the model covers and rejected
    there, which is demoted to its look-alike (building → road, tree →
    grass, water → bare; see ``_DEMOTED``). Segmentation no-data keeps the
    fallback unchanged; fallback no-data stays no-data unless the model
    labelled the pixel.
    """
    labels = np.asarray(labels)
    fallback = np.asarray(fallback)
    if labels.shape != fallback.shape:
        raise InvalidInputError(
            f"labels {labels.shape} and fallback {fallback.shape} differ in shape"
        )
    covered = stands_in_for(model_classes)
    out = fallback.astype(np.uint8, copy=True)
    model_said_no = (labels != SEGMENTATION_NODATA) & (fallback != NODATA_CODE)
    for seg_class, cover in STANDS_IN_FOR.items():
        if cover not in covered:
            continue
        rejected = model_said_no & (labels != seg_class) & (fallback == cover)
        out[rejected] = _DEMOTED[cover]
    for seg_class, cover in STANDS_IN_FOR.items():
        if cover in covered:
            out[labels == seg_class] = cover
    return out
