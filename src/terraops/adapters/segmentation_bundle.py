"""Segmentation model bundles on disk, and the :class:`Segmenter` that runs them.

A bundle is a folder:

- ``model.pt`` — the U-Net's ``state_dict`` (loaded with ``weights_only=True``:
  tensors only, no pickled code);
- ``model.onnx`` — the same network plus a softmax, exported at registration
  (opset :data:`ONNX_OPSET`, dynamic batch/height/width), so CPU inference
  needs ONNX Runtime only;
- ``segmentation.json`` — what a reader must know: classes, bands and their
  normalisation, architecture, tile and overlap, training metrics, and the
  measured PyTorch/ONNX agreement.

Two engines give the same probabilities: ``torch`` (eager, CPU or CUDA) and
``onnx`` (ONNX Runtime, CPU). Their agreement is checked when the bundle is
written and again by the promotion gate (:func:`load_and_verify`): the largest
absolute difference of a class probability must be at most
:data:`ONNX_TOLERANCE` on a fixed example chip.

The ONNX graph is exported with the TorchScript-based exporter
(``dynamo=False``): for this plain convolutional network it produces the same
graph in ~1 s, where the ``torch.export`` path takes ~10 s and upgrades the
opset on its own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from terraops.adapters.model_bundle import TERRAOPS_METADATA_KEY
from terraops.adapters.tracked_run import TrackedRun
from terraops.errors import InvalidInputError, ModelNotFoundError
from terraops.extras import SEGMENT, require_extra
from terraops.models.onnx_session import cpu_session
from terraops.timing import phase

Engine = Literal["torch", "onnx", "onnx-int8"]
Device = Literal["auto", "cpu", "cuda"]

BUNDLE_FORMAT = 1
META_FILE = "segmentation.json"
WEIGHTS_FILE = "model.pt"
ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
"""The INT8 (static, per-channel, QDQ) graph written by :mod:`terraops.adapters.onnx_quantize`."""
ONNX_OPSET = 17
ONNX_INPUT = "reflectance"
ONNX_OUTPUT = "probabilities"
ONNX_TOLERANCE = 1e-4
"""Largest allowed |p_onnx − p_torch| of any class probability (fp32, CPU)."""
EXAMPLE_SIDE = 64


@dataclass(frozen=True)
class BundleMeta:
    """The content of ``segmentation.json``."""

    service: str
    classes: dict[int, str]
    bands: tuple[str, ...]
    normalisation: dict[str, Any]
    architecture: dict[str, Any]
    tile: int
    overlap: int
    training: dict[str, Any] = field(default_factory=dict)
    onnx: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_model(
        cls, service: Any, config: Any, training: dict[str, Any] | None = None
    ) -> BundleMeta:
        """What a bundle of ``service``'s U-Net built from ``config`` records (every writer)."""
        return cls(
            service=service.name,
            classes=dict(service.classes),
            bands=tuple(service.bands),
            normalisation=config.normalisation(),
            architecture=config.to_dict(),
            tile=service.tile,
            overlap=service.overlap,
            training=dict(training or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": BUNDLE_FORMAT,
            "service": self.service,
            "classes": {str(k): v for k, v in sorted(self.classes.items())},
            "bands": list(self.bands),
            "normalisation": self.normalisation,
            "architecture": self.architecture,
            "tile": self.tile,
            "overlap": self.overlap,
            "training": self.training,
            "onnx": self.onnx,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BundleMeta:
        if data.get("format") != BUNDLE_FORMAT:
            raise InvalidInputError(f"unsupported bundle format {data.get('format')!r}")
        return cls(
            service=str(data["service"]),
            classes={int(k): str(v) for k, v in data["classes"].items()},
            bands=tuple(data["bands"]),
            normalisation=dict(data["normalisation"]),
            architecture=dict(data["architecture"]),
            tile=int(data["tile"]),
            overlap=int(data["overlap"]),
            training=dict(data.get("training", {})),
            onnx=dict(data.get("onnx", {})),
        )


def example_chip(side: int = EXAMPLE_SIDE) -> np.ndarray:
    """A fixed (1, 5, side, side) float32 reflectance chip: smooth fields plus noise.

    Deterministic (seeded), so the torch/ONNX comparison of every bundle is made
    on the same input; values span dark water to bright roofs (0.01–0.5).
    """
    rng = np.random.default_rng(20150518)  # U-Net's arXiv date
    yy, xx = np.mgrid[0:side, 0:side] / side
    base = 0.25 + 0.2 * np.sin(6 * xx) * np.cos(5 * yy)
    chip = base[None] * rng.uniform(0.4, 1.6, (5, 1, 1)) + rng.normal(0, 0.02, (5, side, side))
    example: np.ndarray = np.clip(chip, 0.01, 0.5).astype(np.float32)[None]
    return example


# --------------------------------------------------------------------------- writing
def export_onnx(model: Any, path: Path) -> None:
    """Export ``softmax(model(x))`` with dynamic batch, height and width."""
    import torch

    # lazy: torch, from the optional segment extra
    from terraops.models.unet import Probabilities

    wrapper = Probabilities(model).eval()
    dummy = torch.from_numpy(example_chip())
    dynamic = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            wrapper,
            (dummy,),
            str(path),
            input_names=[ONNX_INPUT],
            output_names=[ONNX_OUTPUT],
            dynamic_axes={ONNX_INPUT: dynamic, ONNX_OUTPUT: dynamic},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )


def save_bundle(out_dir: Path, model: Any, meta: BundleMeta) -> BundleMeta:
    """Write weights, ONNX graph and metadata; returns the metadata as written.

    The model is put in eval mode and moved to the CPU first. Raises
    ``InvalidInputError`` if the exported graph disagrees with PyTorch beyond
    :data:`ONNX_TOLERANCE` (a bundle that would give two answers is not written).
    """
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    torch.save(model.state_dict(), out_dir / WEIGHTS_FILE)
    export_onnx(model, out_dir / ONNX_FILE)
    diff = torch_onnx_difference(out_dir, meta)
    if diff > ONNX_TOLERANCE:
        raise InvalidInputError(
            f"ONNX export differs from PyTorch by {diff:.2e} (tolerance {ONNX_TOLERANCE:g})"
        )
    onnx_facts = {
        "opset": ONNX_OPSET,
        "input": ONNX_INPUT,
        "output": ONNX_OUTPUT,
        "dynamic_axes": ["batch", "height", "width"],
        "tolerance_max_abs_prob": ONNX_TOLERANCE,
        "max_abs_prob_diff_on_example": diff,
    }
    written = replace(meta, onnx=onnx_facts)
    (out_dir / META_FILE).write_text(
        json.dumps(written.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return written


def torch_onnx_difference(bundle_dir: Path, meta: BundleMeta | None = None) -> float:
    """Max |p_torch − p_onnx| on :func:`example_chip` for the bundle in ``bundle_dir``."""
    meta = meta or read_meta(bundle_dir)
    chip = example_chip()
    torch_probs = Segmenter(bundle_dir, meta, engine="torch", device="cpu").predict_proba(chip)
    onnx_probs = Segmenter(bundle_dir, meta, engine="onnx").predict_proba(chip)
    return float(np.abs(torch_probs - onnx_probs).max())


def pip_requirements() -> list[str]:
    """Pinned runtime requirements of a logged segmentation model."""
    import onnxruntime
    import torch

    return [
        f"torch=={torch.__version__.split('+')[0]}",
        f"onnxruntime=={onnxruntime.__version__}",
        f"numpy=={np.__version__}",
    ]


def log_bundle(run: TrackedRun, bundle_dir: Path, meta: BundleMeta, *, registered_name: str) -> int:
    """Log the bundle to ``run`` as a ``pyfunc`` model; register a new version.

    The bundle travels as the model's ``artifacts/bundle`` folder; the
    ``pyfunc`` face (:mod:`terraops.models.pyfunc`) takes (N, 5, H, W) float32
    reflectance and returns (N, C, H, W) probabilities. The signature is
    explicit (tensor shapes with -1 for dynamic axes) and the requirements are
    pinned: MLflow's inference of either would run the model and guess.
    """
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    # lazy: MLflow's pyfunc, needed only to log a model
    from terraops.models.pyfunc import BUNDLE_ARTIFACT, SegmentationPyfunc

    bands, classes = len(meta.bands), len(meta.classes)
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, bands, -1, -1))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, classes, -1, -1))]),
    )
    # MLflow warns that it cannot infer a schema from predict()'s hints and that no
    # input example was given (the explicit signature makes both moot), and that a
    # pickled python_model may run code: ours pickles a reference to an importable
    # class (terraops.models.pyfunc), no code.
    pyfunc_log = logging.getLogger("mlflow.pyfunc")
    level = pyfunc_log.level
    pyfunc_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            _, version = run.log_pyfunc_model(
                registered_name,
                python_model=SegmentationPyfunc(),
                artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
                signature=signature,
                pip_requirements=pip_requirements(),
                metadata={TERRAOPS_METADATA_KEY: {"service": meta.service, "kind": "segmentation"}},
            )
    finally:
        pyfunc_log.setLevel(level)
    return version


# --------------------------------------------------------------------------- reading
def locate_bundle(path: Path) -> Path:
    """The bundle in ``path``: the folder itself or an MLflow model's ``artifacts/bundle``."""
    path = Path(path)
    candidates = [path, *sorted((path / "artifacts").glob("*"))]
    for candidate in candidates:
        if (candidate / META_FILE).is_file():
            return candidate
    raise ModelNotFoundError(
        f"no segmentation bundle ({META_FILE}) in {path}",
        hint="train one with `terraops segment train --scenes DIR ...`",
    )


def read_meta(bundle_dir: Path) -> BundleMeta:
    path = locate_bundle(bundle_dir) / META_FILE
    try:
        return BundleMeta.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"{path} is not a valid segmentation bundle: {exc}") from exc


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when PyTorch sees a GPU, else ``cpu``; ``cuda`` without one: error."""
    import torch

    if device not in ("auto", "cpu", "cuda"):
        raise InvalidInputError(f"unknown device {device!r}", hint="use auto, cpu or cuda")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("--device cuda asked for, but PyTorch sees no CUDA device")
    return device


def default_threads() -> int:
    """Threads for ONNX Runtime: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class Segmenter:
    """Class probabilities of reflectance chips from a bundle, by PyTorch or ONNX Runtime.

    ONNX Runtime runs with ``threads`` intra-op threads (default: every CPU this
    process may use), one inter-op thread and sequential execution: one chip
    batch at a time, each operator parallel inside, which is what a
    convolutional network on a few cores wants.
    """

    @phase("load model")
    def __init__(
        self,
        bundle_dir: Path,
        meta: BundleMeta | None = None,
        *,
        engine: Engine = "onnx",
        device: Device = "auto",
        threads: int | None = None,
    ) -> None:
        if engine not in ("torch", "onnx", "onnx-int8"):
            raise InvalidInputError(
                f"unknown engine {engine!r}", hint="use torch, onnx or onnx-int8"
            )
        require_extra(SEGMENT)  # a clear "install the segment extra", not an ImportError
        # With ``meta`` given the folder is the bundle itself (it may not have its
        # segmentation.json yet: save_bundle compares the engines before writing it).
        self.bundle_dir = Path(bundle_dir) if meta is not None else locate_bundle(bundle_dir)
        self.meta = meta or read_meta(self.bundle_dir)
        self.engine: Engine = engine
        self.device = "cpu"
        self._min_side = 2 ** int(self.meta.architecture.get("depth", 3))
        self._fill = np.asarray(self.meta.normalisation["offset"], np.float32)[None, :, None, None]
        if engine == "torch":
            self.device = resolve_device(device)
            self._model = self._load_torch()
        else:
            self._session = self._load_onnx(threads or default_threads(), engine)

    @classmethod
    def from_dir(cls, path: Path, **kwargs: Any) -> Segmenter:
        return cls(path, **kwargs)

    @property
    def n_classes(self) -> int:
        return len(self.meta.classes)

    def _load_torch(self) -> Any:
        import torch

        # lazy: torch, from the optional segment extra
        from terraops.models.unet import Probabilities, UNet, UNetConfig

        model = UNet(UNetConfig.from_dict(self.meta.architecture))
        path = self.bundle_dir / WEIGHTS_FILE
        if not path.is_file():
            raise ModelNotFoundError(f"bundle {self.bundle_dir} has no {WEIGHTS_FILE}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        network = Probabilities(model).eval().to(self.device)
        if self.device == "cuda":
            # NHWC lets cuDNN pick its tensor-core convolution kernels without transposes.
            network = network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        return network

    def _load_onnx(self, threads: int, engine: Engine = "onnx") -> Any:
        name = INT8_FILE if engine == "onnx-int8" else ONNX_FILE
        path = self.bundle_dir / name
        if not path.is_file():
            hint = (
                "quantise it (terraops.adapters.onnx_quantize.quantize_bundle) or use --engine onnx"
                if engine == "onnx-int8"
                else None
            )
            raise ModelNotFoundError(f"bundle {self.bundle_dir} has no {name}", hint=hint)
        return cpu_session(path, threads)

    def _check(self, chips: np.ndarray) -> np.ndarray:
        chips = np.asarray(chips)
        bands = len(self.meta.bands)
        if chips.ndim != 4 or chips.shape[1] != bands:
            raise InvalidInputError(
                f"chips must be (N, {bands}, H, W), got shape {chips.shape}",
                hint=f"bands in this order: {', '.join(self.meta.bands)}",
            )
        if min(chips.shape[2:]) < self._min_side:
            raise InvalidInputError(
                f"chips of {chips.shape[2]}×{chips.shape[3]} px are smaller than the "
                f"network's {self._min_side} px minimum",
                hint="pad small chips (domain.segmentation.windows.pad_chip)",
            )
        chips = chips.astype(np.float32, copy=False)
        missing = ~np.isfinite(chips)
        if missing.any():
            chips = np.where(missing, self._fill, chips).astype(np.float32)
        return np.ascontiguousarray(chips)

    def predict_proba(self, chips: np.ndarray) -> np.ndarray:
        """float32 (N, 5, H, W) reflectance → float32 (N, C, H, W) class probabilities.

        Missing values (NaN) are filled with the band's normalisation offset
        (a neutral input); the caller masks those pixels in the output.
        """
        x = self._check(chips)
        if self.engine != "torch":
            out = self._session.run([ONNX_OUTPUT], {ONNX_INPUT: x})[0]
            return np.asarray(out, dtype=np.float32)
        import torch

        with torch.inference_mode(), gpu_autocast(self.device):
            batch = torch.from_numpy(x).to(self.device, non_blocking=True)
            if self.device == "cuda":
                batch = batch.contiguous(memory_format=torch.channels_last)
            probs = self._model(batch)
        return np.asarray(probs.float().cpu().numpy(), dtype=np.float32)


def gpu_autocast(device: str) -> Any:
    """bf16 autocast on a CUDA device, a no-op elsewhere.

    bf16 keeps fp32's exponent range, so the softmax and the batch-norm
    statistics need no loss scaling; on Hopper/Ampere tensor cores it runs the
    convolutions several times faster than fp32. The CPU paths stay fp32 (ONNX
    Runtime and eager PyTorch are the equivalence-tested engines there).
    """
    import torch

    if device == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def load_and_verify(path: Path) -> Segmenter:
    """The promotion gate's load check: both engines load and agree on the example chip.

    Raises ``ValueError`` (with the cause) for anything unusable: missing or
    corrupt files, probabilities that are not finite or do not sum to one, or
    a PyTorch/ONNX disagreement beyond :data:`ONNX_TOLERANCE`. A missing ``segment``
    extra is not a bad model: it is raised as itself, before the check.
    """
    require_extra(SEGMENT)
    try:
        bundle = locate_bundle(path)
        meta = read_meta(bundle)
        chip = example_chip()
        onnx_seg = Segmenter(bundle, meta, engine="onnx")
        p_onnx = onnx_seg.predict_proba(chip)
        p_torch = Segmenter(bundle, meta, engine="torch", device="cpu").predict_proba(chip)
    except Exception as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from exc
    if not np.isfinite(p_onnx).all() or not np.allclose(p_onnx.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("the model's probabilities are not finite or do not sum to one")
    diff = float(np.abs(p_onnx - p_torch).max())
    if diff > ONNX_TOLERANCE:
        raise ValueError(f"ONNX and PyTorch disagree by {diff:.2e} (> {ONNX_TOLERANCE:g})")
    return onnx_seg
