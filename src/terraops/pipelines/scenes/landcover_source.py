"""Where a scene's observed land cover comes from: spectral rules or the segmentation champion.

The UHI and flood features are built on a land-cover layer *classified from
the imagery* (:mod:`terraops.pipelines.scenes.cell_tables`), because imported scenes
and users' GeoTIFFs have none. Two classifiers exist:

- ``spectral``: :func:`terraops.domain.landcover.classify_spectral`, rules on
  band indices, pixel by pixel — always available;
- ``segmentation``: the registered ``segmentation`` champion (a U-Net that sees
  each pixel's neighbourhood) for building, water and tree, completed by the
  spectral rules for the classes it does not predict
  (:func:`terraops.domain.segmentation.classes.landcover_from_segmentation`).

``TERRAOPS_LANDCOVER_SOURCE`` picks one: ``auto`` (default) uses the champion
when one is registered and an inference engine is installed, on scenes whose
pixels it resolves (:data:`MAX_SEGMENTATION_PIXEL_M`), ``spectral`` never
does, ``segmentation`` requires it. The choice is resolved *once* per
entry point (:func:`resolve_landcover_source`, one registry call) and passed
down; the model is loaded only when a table has to be built (a cached table
of the same model version is reused — the version is in the cache file name).

The U-Net runs in-process through the same windowed, blended inference as
``terraops segment predict``
(:func:`terraops.pipelines.segmentation.window_inference.predict_array`), by ONNX Runtime when
it is installed (several times faster than PyTorch on CPU), else PyTorch.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from terraops.adapters.registry import ModelRegistry
from terraops.domain.landcover import classify_spectral
from terraops.domain.segmentation.classes import landcover_from_segmentation
from terraops.errors import InvalidInputError, ModelNotFoundError
from terraops.pipelines.segmentation.scene_predict import load_segmenter
from terraops.pipelines.segmentation.window_inference import predict_array

if TYPE_CHECKING:
    from terraops.adapters.segmentation_bundle import Segmenter
    from terraops.settings import Settings

log = logging.getLogger(__name__)

LANDCOVER_SOURCES = ("auto", "spectral", "segmentation")
"""Values of ``TERRAOPS_LANDCOVER_SOURCE``."""

SEGMENTATION_MODEL = "segmentation"
"""The registered model whose champion classifies land cover."""

ALIAS = "champion"

MAX_SEGMENTATION_PIXEL_M = 5.0
"""Coarsest pixel (m) on which ``auto`` uses the U-Net. The segmentation service's
card puts imagery coarser than ~5 m out of scope (single buildings are no
longer resolved); on the 30 m Landsat city the champion's land cover made the
UHI spatial-CV MAE worse than the rules' (docs/model_cards/segmentation-landcover.md).
``TERRAOPS_LANDCOVER_SOURCE=segmentation`` uses it anyway."""


class LandcoverSource:
    """One resolved land-cover classifier: spectral, or a segmentation model version.

    ``lineage`` is what cell tables and training runs record; ``cache_suffix``
    goes into the cell-table cache file name so that a table built by another
    model version (or by the rules) is never reused.
    """

    def __init__(
        self,
        kind: Literal["spectral", "segmentation"],
        *,
        settings: Settings | None = None,
        version: int | None = None,
        engine: str | None = None,
        reason: str = "",
        forced: bool = False,
    ) -> None:
        if kind == "segmentation" and (settings is None or version is None or engine is None):
            raise ValueError("a segmentation source needs settings, a version and an engine")
        self.kind = kind
        self.version = version
        self.engine = engine
        self.reason = reason
        self.forced = forced
        self._settings = settings
        self._segmenter: Segmenter | None = None
        self._run_id = ""

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (e.g. sent to a Dask worker) without the loaded model: it reloads there."""
        return {**self.__dict__, "_segmenter": None}

    def __repr__(self) -> str:
        model = f" {SEGMENTATION_MODEL} v{self.version} ({self.engine})" if self.version else ""
        return f"<LandcoverSource {self.kind}{model}>"

    @property
    def cache_suffix(self) -> str:
        """``""`` for the rules (the historical file name), ``_lcseg-v<N>`` for a model."""
        return "" if self.kind == "spectral" else f"_lcseg-v{self.version}"

    @property
    def lineage(self) -> dict[str, Any]:
        """Flat, JSON- and MLflow-param-friendly description of the source ("none": no model)."""
        return {
            "landcover_source": self.kind,
            "landcover_model": SEGMENTATION_MODEL if self.kind == "segmentation" else "none",
            "landcover_model_version": self.version if self.version is not None else "none",
            "landcover_engine": self.engine or "none",
            "landcover_reason": self.reason,
            "landcover_forced": self.forced,
        }

    def for_resolution(self, resolution_m: float) -> LandcoverSource:
        """The source for a scene of ``resolution_m`` pixels: the rules where the U-Net is
        out of scope (coarser than :data:`MAX_SEGMENTATION_PIXEL_M`), unless forced."""
        if self.kind == "spectral" or self.forced or resolution_m <= MAX_SEGMENTATION_PIXEL_M:
            return self
        return LandcoverSource(
            "spectral",
            reason=f"auto: {resolution_m:g} m pixels are coarser than the "
            f"{MAX_SEGMENTATION_PIXEL_M:g} m the segmentation model resolves",
        )

    def classify(self, bands: Mapping[str, np.ndarray]) -> np.ndarray:
        """The land-cover layer (uint8 codes) of a scene's reflectance ``bands`` (NaN = no data)."""
        spectral = classify_spectral(**bands)
        if self.kind == "spectral":
            return spectral
        segmenter = self._load()
        missing = [b for b in segmenter.meta.bands if b not in bands]
        if missing:
            raise InvalidInputError(
                f"the segmentation model needs bands {missing} the scene lacks",
                hint="re-import the scene with them, or set TERRAOPS_LANDCOVER_SOURCE=spectral",
            )
        image = np.stack([bands[b] for b in segmenter.meta.bands]).astype(np.float32)
        labels, _scores = predict_array(
            image,
            segmenter.predict_proba,
            n_classes=segmenter.n_classes,
            tile=segmenter.meta.tile,
            overlap=segmenter.meta.overlap,
        )
        model_classes = [c for c, name in segmenter.meta.classes.items() if name != "background"]
        return landcover_from_segmentation(labels, spectral, model_classes=model_classes)

    def _load(self) -> Segmenter:
        if self._segmenter is None:
            assert self._settings is not None and self.version is not None
            engine: Any = self.engine
            self._segmenter, model = load_segmenter(
                self._settings, version=self.version, engine=engine, device="cpu"
            )
            self._run_id = model.run_id
            log.info("land cover from %s v%s (%s)", SEGMENTATION_MODEL, self.version, engine)
        return self._segmenter


SPECTRAL = LandcoverSource("spectral", reason="spectral rules")
"""The rules, as every cell table was built before a segmentation model existed."""


def inference_engine() -> str | None:
    """``onnx`` when ONNX Runtime is importable, else ``torch`` when PyTorch is, else None."""
    if importlib.util.find_spec("onnxruntime") is not None:
        return "onnx"
    if importlib.util.find_spec("torch") is not None:
        return "torch"
    return None


def resolve_landcover_source(settings: Settings, choice: str | None = None) -> LandcoverSource:
    """The land-cover source ``choice`` (default ``settings.landcover_source``) stands for now.

    ``auto`` falls back to the spectral rules when no champion is registered or
    no engine is installed, and says why in ``reason``; ``segmentation``
    raises :class:`~terraops.errors.ModelNotFoundError` instead. A registry
    that cannot be reached raises either way: silently switching sources
    would change every feature.
    """
    choice = (choice or settings.landcover_source).strip().lower()
    if choice not in LANDCOVER_SOURCES:
        raise InvalidInputError(
            f"unknown land-cover source {choice!r}",
            hint=f"set TERRAOPS_LANDCOVER_SOURCE to one of: {', '.join(LANDCOVER_SOURCES)}",
        )
    if choice == "spectral":
        return LandcoverSource("spectral", reason="TERRAOPS_LANDCOVER_SOURCE=spectral")
    engine = inference_engine()
    if engine is None:
        if choice == "segmentation":
            raise ModelNotFoundError(
                "land cover from segmentation needs onnxruntime or torch; neither is installed",
                hint="pip install -e '.[segment]', or set TERRAOPS_LANDCOVER_SOURCE=spectral",
            )
        return LandcoverSource("spectral", reason="auto: no onnxruntime/torch installed")
    version = ModelRegistry(settings).get_alias(SEGMENTATION_MODEL, ALIAS)
    if version is None:
        if choice == "segmentation":
            raise ModelNotFoundError(
                f"TERRAOPS_LANDCOVER_SOURCE=segmentation but {SEGMENTATION_MODEL!r} has no {ALIAS}",
                hint="train and promote one (terraops segment train ...; terraops promote "
                "segmentation --challenger), or set TERRAOPS_LANDCOVER_SOURCE=auto or spectral",
            )
        return LandcoverSource("spectral", reason=f"auto: no {SEGMENTATION_MODEL} {ALIAS}")
    return LandcoverSource(
        "segmentation",
        settings=settings,
        version=version,
        engine=engine,
        reason=f"{choice}: {SEGMENTATION_MODEL}@{ALIAS}",
        forced=choice == "segmentation",
    )


def landcover_of_model(settings: Settings, params: Mapping[str, Any]) -> LandcoverSource:
    """The land cover a trained model's features were built with (its run's ``params``).

    Predicting, monitoring or scoring a model must rebuild *its* features: a UHI
    model trained on the rules keeps the rules after a segmentation champion
    appears, and one trained on segmentation v3 keeps v3 after v4 is promoted.
    Runs from before land-cover sources were recorded used the rules.
    """
    if str(params.get("landcover_source", "spectral")) != "segmentation":
        return LandcoverSource("spectral", reason="the model was trained on the spectral rules")
    version = int(params["landcover_model_version"])
    engine = inference_engine()
    if engine is None:
        raise ModelNotFoundError(
            f"this model was trained on {SEGMENTATION_MODEL} v{version} land cover, which "
            "needs onnxruntime or torch; neither is installed",
            hint="pip install -e '.[segment]'",
        )
    return LandcoverSource(
        "segmentation",
        settings=settings,
        version=version,
        engine=engine,
        reason=f"the model was trained on {SEGMENTATION_MODEL} v{version} land cover",
        forced=str(params.get("landcover_forced", "False")).lower() == "true",
    )


def landcover_of_version(
    settings: Settings, name: str, version: int | None = None
) -> LandcoverSource:
    """:func:`landcover_of_model` of ``name``'s ``version`` (default: its champion).

    With no champion the rules are returned: the caller's own lookup of the
    champion raises the clear "no champion" error.
    """
    registry = ModelRegistry(settings)
    if version is None:
        version = registry.get_alias(name, ALIAS)
        if version is None:
            return LandcoverSource("spectral", reason=f"{name} has no {ALIAS}")
    return landcover_of_model(settings, registry.get_version(name, version).params)


__all__ = [
    "LANDCOVER_SOURCES",
    "SPECTRAL",
    "LandcoverSource",
    "inference_engine",
    "landcover_of_model",
    "landcover_of_version",
    "resolve_landcover_source",
]
