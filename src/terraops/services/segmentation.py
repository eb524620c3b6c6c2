"""Segmentation service: buildings, water and trees from five-band imagery, by a U-Net.

A service of its own kind. The tabular services (UHI, flood) are
:class:`~terraops.services.base.ServiceDefinition`\\ s: a feature table, a
target, a LightGBM model, a row-wise HTTP API. Segmentation is a picture in,
a picture out: its declaration names classes, bands, the chip geometry and the
network instead. What the lifecycle needs is shared with the tabular services
and spelt the same (``name``, ``primary_metric``,
``primary_metric_higher_is_better``, ``slo``), so registry, promotion gates,
alias history and rollback treat ``segmentation`` like any other model.

It is deliberately *not* in :func:`terraops.services.all_services`: that
registry drives the tabular code paths (API predict routes, feedback,
drift, data-quality suites), which would all expect a feature schema.
The lifecycle looks it up through :func:`terraops.services.registered.model_service`.

Why building IoU on held-out scenes as the primary metric: footprints are
what users ask for, buildings are the class spectral rules cannot separate
from roads (both are sealed surfaces), and held-out *cities* (whole scenes
predicted with the same sliding-window blending as production) measure
transfer, not memory of the training city. 0.85 is the target we hold the segmenter to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from terraops.domain.bands import REFLECTANCE_BANDS
from terraops.domain.segmentation.classes import CLASS_COLOURS, CLASS_NAMES
from terraops.services.base import SLO

BUILDING_IOU = "building_iou_val"


def make_unet(params: Mapping[str, Any]) -> Any:
    """The model factory: a U-Net from architecture parameters (imports torch on call)."""
    # lazy: torch, from the optional segment extra
    from terraops.models.unet import build_unet

    return build_unet(dict(params))


#: Architecture of a new model (``--param name=value`` overrides). Depthwise-separable
#: 3×3 convolutions (``block``): the shape a CPU runs fastest, about an eighth of the
#: standard block's parameters; trained twice as many epochs it scores at least as well on
#: held-out cities (the segmentation card), and ONNX Runtime runs it several times
#: faster than PyTorch (BENCHMARKS.md, section on segmentation). ``block=standard`` gives
#: full 3×3 convolutions.
ARCHITECTURE_DEFAULTS: dict[str, Any] = {
    "depth": 3,
    "base_width": 16,
    "upsampling": "bilinear",
    "indices": True,
    "block": "separable",
}

#: Training knobs. ``chips_per_epoch`` random crops of ``chip`` px per epoch;
#: ``class_weight_power``: CE weight ∝ frequency^-power (0 = unweighted,
#: 0.5 = inverse square root, a softened inverse-frequency balancing).
TRAINING_DEFAULTS: dict[str, Any] = {
    "epochs": 48,
    "batch_size": 8,
    "chip": 128,
    "chips_per_epoch": 96,
    "learning_rate": 0.004,
    "weight_decay": 0.0001,
    "class_weight_power": 0.5,
    "dice_weight": 0.5,
    "seed": 0,
}


@dataclass(frozen=True)
class SegmentationService:
    """What makes the segmentation service: classes, inputs, geometry, model, gates."""

    name: str
    title: str
    description: str
    classes: Mapping[int, str]
    colours: Mapping[int, tuple[int, int, int, int]]
    bands: tuple[str, ...]
    tile: int
    overlap: int
    model_factory: Callable[[Mapping[str, Any]], Any]
    architecture: Mapping[str, Any]
    training: Mapping[str, Any]
    primary_metric: str
    primary_metric_higher_is_better: bool
    slo: SLO
    map_group: str
    min_area_m2: float
    """Polygons (and holes) smaller than this are dropped (filled) when vectorising."""
    intended_use: str = ""
    out_of_scope: tuple[str, ...] = ()
    limitations: tuple[str, ...] = ()
    foreground: tuple[int, ...] = field(default=(1, 2, 3))
    model_card: str = "segmentation"
    """Which sections the one card builder renders (``terraops card segmentation``):
    per-class held-out scores, learning curve, inference engines, real-data report."""

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def foreground_classes(self) -> dict[int, str]:
        return {c: self.classes[c] for c in self.foreground}


SEGMENTATION = SegmentationService(
    name="segmentation",
    title="Building, water and tree footprints",
    description="Per-pixel classes (background, building, water, tree) of 5-band imagery "
    "(red, green, blue, NIR, SWIR surface reflectance) by a U-Net; masks as COGs and "
    "footprints as polygons.",
    classes=dict(CLASS_NAMES),
    colours={int(k): v for k, v in CLASS_COLOURS.items()},
    bands=tuple(REFLECTANCE_BANDS),
    # 256 px windows (512 m at 2 m) with 32 px overlap: the blend ramp is wider
    # than the border band where a depth-3 U-Net lacks context (its receptive
    # field is ~70 px), and the stride (224 px) keeps the overhead at ~30 %.
    tile=256,
    overlap=32,
    model_factory=make_unet,
    architecture=ARCHITECTURE_DEFAULTS,
    training=TRAINING_DEFAULTS,
    primary_metric=BUILDING_IOU,
    primary_metric_higher_is_better=True,
    # The objective of POST /v1/segment for a ≤ 1 megapixel upload on 2 cores (measured
    # in BENCHMARKS.md, section on the route) and the promotion gate (held-out building IoU).
    slo=SLO(
        p95_latency_ms=2000.0,
        error_budget=0.01,
        metric=BUILDING_IOU,
        metric_target=0.85,
        metric_higher_is_better=True,
    ),
    map_group="footprints",
    # 8 m² ≈ two pixels at 2 m: a single-pixel blob is noise, the smallest
    # shed (~2 × 3 m) is not.
    min_area_m2=8.0,
    intended_use=(
        "Mapping building footprints, open water and tree canopy from 1–4 m multispectral "
        "imagery (red, green, blue, NIR, SWIR surface reflectance) for urban planning, "
        "land-cover layers of the heat and flood services, and change screening."
    ),
    out_of_scope=(
        "Imagery without NIR and SWIR bands (plain RGB aerial photos), or coarser than "
        "~5 m per pixel, where single buildings are no longer resolved.",
        "Cadastral or legal boundaries: footprints are roof outlines as seen from above, "
        "simplified to ~0.75 pixel.",
        "Building height, use or roof material.",
    ),
    limitations=(
        "Trained on synthetic, physically grounded cities (Sentinel-2-like reflectances, "
        "sensor blur and noise, cast shadows); real imagery adds off-nadir lean, "
        "atmospheric effects and roof materials the generator lacks — retrain or "
        "fine-tune on local labels before trusting its numbers on a real city.",
        "Touching buildings merge into one polygon where the mask has no gap between "
        "them; object-level F1 counts such a merge as one match at most.",
        "Roads and flat dark roofs are spectrally alike: small dark roofs are the commonest miss.",
    ),
)
