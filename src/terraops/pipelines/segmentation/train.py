"""Train the segmentation U-Net: scenes → chips → epochs → held-out IoU → MLflow → challenger.

The recipe (every knob is a ``--param``; defaults in
:data:`terraops.services.segmentation.TRAINING_DEFAULTS`):

- each epoch draws fresh random chips from the training scenes with
  dihedral augmentation (:mod:`terraops.pipelines.segmentation.data`);
- loss = class-weighted cross-entropy (weights ∝ frequency^-½ over the
  training labels) + ``dice_weight`` × soft Dice (Milletari et al. 2016,
  "V-Net", 3DV, eq. 1, averaged over classes), which rewards overlap on the
  small classes directly; no-data pixels are ignored;
- AdamW (Loshchilov & Hutter 2019) with a one-cycle learning-rate schedule
  (Smith & Topin 2019): warm up, then anneal — a fast, stable schedule for
  short budgets, which ends at a small learning rate, so the *last* epoch's
  weights are the model (no early stopping chosen on the validation scenes,
  whose score would then be optimistic);
- after every epoch the validation scenes are predicted **whole**, with the
  same sliding-window blending as production
  (:func:`terraops.pipelines.segmentation.window_inference.predict_array`), and scored per
  class: IoU, F1, precision, recall, plus building object F1 (SpaceNet).

Seeded (numpy and torch), so a CPU run is repeatable. The run logs params,
per-epoch metrics, the data-quality report, the data fingerprint, the input
schema, and the bundle as an MLflow ``pyfunc`` model, registered as model
``segmentation`` and aliased ``challenger`` through the lifecycle.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from terraops.adapters.registry import ModelRegistry
from terraops.adapters.segmentation_bundle import gpu_autocast, resolve_device
from terraops.domain.segmentation.classes import SEGMENTATION_NODATA, SegClass
from terraops.domain.segmentation.metrics import mask_instances, mean_iou, object_f1, pixel_metrics
from terraops.errors import InvalidInputError
from terraops.pipelines.lifecycle.aliases import assign_alias
from terraops.pipelines.monitoring.quality import DataQualityError
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
from terraops.pipelines.segmentation.int8 import quantize_registered_version
from terraops.pipelines.segmentation.run_log import log_training_run
from terraops.pipelines.segmentation.window_inference import predict_array
from terraops.pipelines.training.params import coerce_param
from terraops.services.segmentation import SegmentationService
from terraops.settings import Settings

Advance = Callable[[str], None]


@dataclass(frozen=True)
class SegTrainResult:
    service: str
    run_id: str
    version: int
    metrics: dict[str, float]
    history: list[dict[str, float]]
    duration_s: float
    device: str
    n_parameters: int


# ----- parameters -------------------------------------------------------------
def resolve_params(
    service: SegmentationService, overrides: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(architecture, training) = the service's defaults updated by validated overrides."""
    arch, training = dict(service.architecture), dict(service.training)
    for name, raw in (overrides or {}).items():
        target = arch if name in arch else training if name in training else None
        if target is None:
            known = ", ".join(sorted([*arch, *training]))
            raise InvalidInputError(f"unknown parameter {name!r}", hint=f"known: {known}")
        target[name] = coerce_param(name, raw, target[name])
    for name in ("epochs", "batch_size", "chip", "chips_per_epoch"):
        if int(training[name]) < 1:
            raise InvalidInputError(f"{name} must be at least 1, got {training[name]}")
    if not training["learning_rate"] > 0:
        raise InvalidInputError("learning_rate must be > 0")
    from terraops.models.unet import UNetConfig  # torch: the optional segment extra

    UNetConfig.from_dict({**arch, "n_classes": service.n_classes})  # validates
    return arch, training


# ----- the loss -----------------------------------------------------------------
def segmentation_loss(
    logits: Any, target: Any, weights: Any, dice_weight: float, smooth: float = 1.0
) -> Any:
    """Weighted cross-entropy + ``dice_weight`` × mean soft-Dice loss; 255 ignored."""
    import torch
    import torch.nn.functional as F

    loss = F.cross_entropy(logits, target, weight=weights, ignore_index=SEGMENTATION_NODATA)
    if dice_weight <= 0:
        return loss
    n_classes = logits.shape[1]
    valid = (target != SEGMENTATION_NODATA).unsqueeze(1).float()
    probs = torch.softmax(logits, dim=1) * valid
    onehot = F.one_hot(target.clamp(max=n_classes - 1), n_classes).permute(0, 3, 1, 2) * valid
    inter = (probs * onehot).sum(dim=(0, 2, 3))
    denom = probs.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    dice = 1.0 - (2.0 * inter + smooth) / (denom + smooth)
    return loss + dice_weight * dice.mean()


# ----- validation ---------------------------------------------------------------
def torch_predictor(model: Any, device: str) -> Callable[[np.ndarray], np.ndarray]:
    """``predict_proba`` of a model being trained (eval mode, no gradients)."""
    import torch

    fill = model.normalise.offset.detach().cpu().numpy()

    def predict(chips: np.ndarray) -> np.ndarray:
        x = np.where(np.isfinite(chips), chips, fill).astype(np.float32)
        with torch.inference_mode():
            probs = torch.softmax(model(torch.from_numpy(x).to(device)), dim=1)
        return np.asarray(probs.cpu().numpy(), dtype=np.float32)

    return predict


def validate(
    model: Any, scenes: Sequence[SceneArrays], service: SegmentationService, device: str
) -> dict[str, float]:
    """Whole-scene scores on held-out scenes: ``{class}_{iou,f1,precision,recall}_val``,
    ``miou_val``, ``building_object_f1_val`` (pixel counts pooled over the scenes)."""
    model.eval()
    predict = torch_predictor(model, device)
    preds, truths, pred_polys, true_polys = [], [], [], []
    building = int(SegClass.BUILDING)
    for scene in scenes:
        labels, _ = predict_array(
            scene.image,
            predict,
            n_classes=service.n_classes,
            tile=service.tile,
            overlap=service.overlap,
        )
        preds.append(labels.ravel())
        truths.append(scene.labels.ravel())
        pred_polys += mask_instances(labels, building, transform=scene.transform)
        true_polys += mask_instances(scene.labels, building, transform=scene.transform)
    model.train()
    scores = pixel_metrics(
        np.concatenate(preds), np.concatenate(truths), service.classes, ignore=SEGMENTATION_NODATA
    )
    out: dict[str, float] = {}
    for class_id, s in scores.items():
        name = service.classes[class_id]
        out.update(
            {
                f"{name}_iou_val": s.iou,
                f"{name}_f1_val": s.f1,
                f"{name}_precision_val": s.precision,
                f"{name}_recall_val": s.recall,
            }
        )
    out["miou_val"] = mean_iou(scores)
    out["building_object_f1_val"] = object_f1(pred_polys, true_polys).f1
    return out


# ----- the training loop --------------------------------------------------------
def fit(
    service: SegmentationService,
    arch: Mapping[str, Any],
    training: Mapping[str, Any],
    train: Sequence[SceneArrays],
    val: Sequence[SceneArrays],
    device: str,
    *,
    on_step: Advance | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> tuple[Any, list[dict[str, float]]]:
    """Train a fresh U-Net; returns it (eval mode) and the per-epoch history."""
    import torch

    seed = int(training["seed"])
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = service.model_factory({**arch, "n_classes": service.n_classes}).to(device)
    weights = torch.from_numpy(
        class_weights(class_counts(train), float(training["class_weight_power"]))
    ).to(device)
    batch, n_chips = int(training["batch_size"]), int(training["chips_per_epoch"])
    steps = math.ceil(n_chips / batch)
    epochs = int(training["epochs"])
    optimiser = torch.optim.AdamW(
        model.parameters(),
        lr=float(training["learning_rate"]),
        weight_decay=float(training["weight_decay"]),
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=float(training["learning_rate"]), total_steps=epochs * steps
    )
    history: list[dict[str, float]] = []
    model.train()
    for epoch in range(1, epochs + 1):
        x, y = augment(*random_chips(train, n_chips, int(training["chip"]), rng), rng)
        fill = model.normalise.offset.detach().cpu().numpy()
        x = np.where(np.isfinite(x), x, fill).astype(np.float32)
        started, losses = time.perf_counter(), []
        for i in range(steps):
            xb = torch.from_numpy(x[i * batch : (i + 1) * batch]).to(device)
            yb = torch.from_numpy(y[i * batch : (i + 1) * batch]).to(device)
            with gpu_autocast(device):
                logits = model(xb)
            loss = segmentation_loss(logits.float(), yb, weights, float(training["dice_weight"]))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(float(loss.detach()))
            if on_step is not None:
                on_step(f"epoch {epoch}/{epochs} loss {losses[-1]:.3f}")
        record = {"epoch": float(epoch), "train_loss": float(np.mean(losses))}
        record["epoch_seconds"] = time.perf_counter() - started
        record.update(validate(model, val, service, device))
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
    return model.eval(), history


# ----- the whole run ------------------------------------------------------------
def _split(scene_dirs: Sequence[Path], val_dirs: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    train, val = [Path(d) for d in scene_dirs], [Path(d) for d in val_dirs]
    if not train:
        raise InvalidInputError("no scenes given", hint="pass --scenes DIR (one or more)")
    if not val:
        if len(train) < 2:
            raise InvalidInputError(
                "no held-out scene to validate on",
                hint="pass --val-scenes DIR, or at least two --scenes (the last is held out)",
            )
        val = [train.pop()]
    overlap = {p.resolve() for p in train} & {p.resolve() for p in val}
    if overlap:
        raise InvalidInputError(
            f"scenes both trained and validated on: {sorted(map(str, overlap))}",
            hint="validation scenes must be held out",
        )
    return train, val


def _progress(enabled: bool, total: int) -> tuple[Any, Advance, Callable[[str], None]]:
    """A rich bar over training steps: (context, advance(step label), say(epoch summary))."""
    if not enabled:
        return nullcontext(), lambda _label: None, lambda _text: None
    console = Console(stderr=True)
    bar = Progress(
        TextColumn("{task.description:<30}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    task = bar.add_task("segmentation", total=total)
    return (
        bar,
        lambda label: bar.update(task, advance=1, description=label),
        lambda text: bar.console.print(text),
    )


def _refuse_unless_passed(quality: Mapping[str, Any]) -> None:
    """Raise ``DataQualityError`` (exit 2) naming each failed check."""
    if quality["passed"]:
        return
    raise DataQualityError(
        "segmentation training data failed its checks",
        reasons=[
            f"{c['scene']}: {c['check']} (observed {c['observed']})"
            for c in quality["checks"]
            if not c["passed"]
        ],
    )


def _epoch_line(r: Mapping[str, float]) -> str:
    return (
        f"epoch {int(r['epoch'])}: loss {r['train_loss']:.3f}, held-out IoU building "
        f"{r['building_iou_val']:.3f} water {r['water_iou_val']:.3f} tree "
        f"{r['tree_iou_val']:.3f} (training {r['epoch_seconds']:.0f} s)"
    )


def train_segmentation(
    settings: Settings,
    service: SegmentationService,
    scene_dirs: Sequence[Path],
    val_dirs: Sequence[Path] = (),
    params: Mapping[str, Any] | None = None,
    *,
    device: str = "auto",
    progress: bool = True,
) -> SegTrainResult:
    """Train, validate, log, register a version of ``segmentation``; make it ``challenger``."""
    # torch (the optional segment extra), only when training
    from terraops.models.unet import count_parameters

    started = time.perf_counter()
    arch, training = resolve_params(service, params)
    device = resolve_device(device)
    train_dirs, held_out = _split(scene_dirs, val_dirs)
    train = [load_scene(d) for d in train_dirs]
    val = [load_scene(d) for d in held_out]
    quality = check_training_data(train, val, int(training["chip"]))
    _refuse_unless_passed(quality)
    steps = int(training["epochs"]) * math.ceil(
        int(training["chips_per_epoch"]) / int(training["batch_size"])
    )
    bar, advance, say = _progress(progress, steps)
    with bar:
        model, history = fit(
            service,
            arch,
            training,
            train,
            val,
            device,
            on_step=advance,
            on_epoch=lambda r: say(_epoch_line(r)),
        )
    train_seconds = time.perf_counter() - started
    metrics = {k: v for k, v in history[-1].items() if k != "epoch"}
    metrics.update(
        {
            "train_seconds": train_seconds,
            "chips_seen": float(int(training["epochs"]) * int(training["chips_per_epoch"])),
        }
    )
    facts = {
        **arch,
        **training,
        **{"tile": service.tile, "overlap": service.overlap, "device": device},
        **{"n_parameters": count_parameters(model), "n_train_scenes": len(train)},
        "n_val_scenes": len(val),
    }
    run_id, version = log_training_run(
        settings,
        service,
        model,
        arch,
        facts,
        metrics,
        history,
        quality,
        fingerprint([*train, *val], ["train"] * len(train) + ["val"] * len(val)),
    )
    # INT8 (static, per-channel) graph calibrated on training chips; its IoU cost on val.
    metrics.update(quantize_registered_version(settings, service, run_id, version, train, val))
    assign_alias(
        settings,
        ModelRegistry(settings),
        service.name,
        "challenger",
        version,
        reason=f"trained by run {run_id}",
    )
    return SegTrainResult(
        service.name,
        run_id,
        version,
        metrics,
        history,
        time.perf_counter() - started,
        device,
        int(facts["n_parameters"]),
    )
