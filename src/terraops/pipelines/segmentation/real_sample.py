"""Real-data check of the segmenter: buildings in the solaris 0.5 m sample.

The data (:data:`~terraops.adapters.samples.SOLARIS_SAMPLE`): a real 900×900 px,
0.5 m image in EPSG:32616 and the building mask rasterised from its 43
OpenStreetMap footprints (``sample_fp_mask_from_geojson.tif``, 0/255, on the
image's pixel grid; it has no georeferencing of its own, so the image's is used).

**The honest adaptation.** The image has a single panchromatic band (uint16
digital numbers, no-data 0), not the five reflectance bands (red, green,
blue, NIR, SWIR) the production segmenter takes, and only buildings are
labelled. So the production model cannot be applied as is, and nothing here
pretends it can. Instead a U-Net from the same factory
(:func:`~terraops.models.unet.build_unet`: same blocks, depth and widths) is
built with two classes (background, building), no spectral indices, and a
one-channel first block; its reflectance normalisation is replaced by a
standardisation of ``log(DN)`` with the mean and standard deviation of the
*training* region. It is trained from scratch on the left two thirds
(columns 0–599) and evaluated once on the right third (columns 600–899),
which it never sees during training; no model selection looks at the right
third. The prediction runs the project's blended sliding-window inference
(:func:`~terraops.pipelines.segmentation.window_inference.predict_array`) on the right third
alone, so no left-hand context leaks in either.

Scores are the domain metrics: pixel IoU/F1/precision/recall for building
and SpaceNet object F1 (IoU ≥ 0.5, one-to-one) between 4-connected regions
of the prediction and of the true mask. Two baselines give the numbers a
scale: predicting all background (building IoU 0 by construction) and a
brightness threshold (the direction and cut that maximise building IoU on
the training region, applied unchanged to the right third).

Outputs (atomic): ``TERRAOPS_HOME/evaluation/segmentation-real/report.json``
and ``preview.png`` (image, truth, prediction on the right third); the model
card snippet is generated from the JSON (:func:`model_card_markdown`).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.transform import Affine

from terraops.adapters import atomic, raster_files, vector_files
from terraops.adapters.samples import SOLARIS_SAMPLE, fetch_sample
from terraops.domain.segmentation.metrics import (
    SPACENET_IOU_THRESHOLD,
    mask_instances,
    object_f1,
    pixel_metrics,
)
from terraops.errors import InvalidInputError
from terraops.pipelines.segmentation.data import augment
from terraops.pipelines.segmentation.train import segmentation_loss
from terraops.pipelines.segmentation.window_inference import predict_array
from terraops.settings import Settings

IMAGE_FILE = "sample_geotiff.tif"
MASK_FILE = "sample_fp_mask_from_geojson.tif"
LABELS_FILE = "geotiff_labels.geojson"
SPLIT_COLUMN = 600  # train: columns [0, 600), test: [600, 900)
CLASSES = {0: "background", 1: "building"}
MIN_PRED_PIXELS = 20  # 5 m² at 0.5 m: predicted specks smaller than any building are dropped
DEFAULTS: dict[str, Any] = {
    "epochs": 40,
    "base_width": 8,
    "depth": 3,
    "chip": 128,
    "chips_per_epoch": 48,
    "batch_size": 8,
    "learning_rate": 3e-3,
    "dice_weight": 1.0,
    "seed": 0,
    "tile": 256,
    "overlap": 32,
}
SCHEMA_VERSION = 1


def output_dir(settings: Settings) -> Path:
    return settings.home_dir / "evaluation" / "segmentation-real"


# ----------------------------------------------------------------------------- data
def load_sample(folder: Path) -> dict[str, Any]:
    """Image (H, W) float32 DN with NaN no-data, labels (H, W) uint8, grid, footprints."""
    folder = Path(folder)
    for name in (IMAGE_FILE, MASK_FILE, LABELS_FILE):
        if not (folder / name).is_file():
            raise InvalidInputError(
                f"{folder} has no {name}", hint="run `terraops samples fetch --sample solaris`"
            )
    picture = raster_files.read_first_band(folder / IMAGE_FILE)
    if picture.count != 1:
        raise InvalidInputError(f"{IMAGE_FILE} has {picture.count} bands, expected 1")
    raw, nodata = picture.data, picture.nodata
    transform, crs = picture.transform, picture.crs
    # The mask has no georeferencing of its own; it is on the image's pixel grid.
    mask = raster_files.read_first_band(folder / MASK_FILE, georeferenced=False).data
    if mask.shape != raw.shape:
        raise InvalidInputError(f"mask {mask.shape} and image {raw.shape} differ in shape")
    image = raw.astype(np.float32)
    if nodata is not None:
        image[raw == nodata] = np.nan
    labels = (mask > 0).astype(np.uint8)
    footprints = vector_files.read_vector_file(folder / LABELS_FILE)
    return {
        "image": image,
        "labels": labels,
        "transform": transform,
        "crs": crs.to_string() if crs else None,
        "footprints": footprints,
        "dtype": str(raw.dtype),
        "nodata": nodata,
    }


def standardiser(train_pixels: np.ndarray) -> tuple[float, float]:
    """Mean and std of log(DN) over the training region's valid pixels."""
    logs = np.log(train_pixels[np.isfinite(train_pixels) & (train_pixels > 0)])
    return float(logs.mean()), float(logs.std())


def standardise(image: np.ndarray, stats: tuple[float, float]) -> np.ndarray:
    """(1, H, W) float32: (log(DN) − mean) / std; no-data → 0 (the mean)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (np.log(image) - stats[0]) / stats[1]
    return np.where(np.isfinite(z), z, 0.0).astype(np.float32)[None]


# ----------------------------------------------------------------------------- model
def build_model(params: Mapping[str, Any]) -> Any:
    """The factory's U-Net, two classes, with a one-channel input block (see module doc)."""
    from torch import nn

    from terraops.models.unet import ConvBlock, build_unet  # torch: the optional segment extra

    model = build_unet(
        {
            "n_classes": len(CLASSES),
            "depth": int(params["depth"]),
            "base_width": int(params["base_width"]),
            "indices": False,
        }
    )
    model.normalise = nn.Identity()  # type: ignore[assignment]  # input standardised already
    model.encoders[0] = ConvBlock(1, int(params["base_width"]))
    return model


def train(x: np.ndarray, y: np.ndarray, params: Mapping[str, Any]) -> tuple[Any, list[float]]:
    """Train on the (1, H, W) standardised image ``x`` and labels ``y`` (left region)."""
    import torch

    seed = int(params["seed"])
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(params)
    chip, n = int(params["chip"]), int(params["chips_per_epoch"])
    if min(y.shape) < chip:
        raise InvalidInputError(f"training region {y.shape} is smaller than the {chip} px chip")
    batch, epochs = int(params["batch_size"]), int(params["epochs"])
    steps = -(-n // batch)
    counts = np.bincount(y.ravel(), minlength=2).astype(np.float64)
    weights = torch.tensor((counts.sum() / np.maximum(counts, 1)) ** 0.5, dtype=torch.float32)
    weights = weights / weights.mean()
    lr = float(params["learning_rate"])
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=epochs * steps)
    losses: list[float] = []
    model.train()
    for _ in range(epochs):
        rows = rng.integers(0, y.shape[0] - chip + 1, size=n)
        cols = rng.integers(0, y.shape[1] - chip + 1, size=n)
        xc = np.stack([x[:, r : r + chip, c : c + chip] for r, c in zip(rows, cols, strict=True)])
        yc = np.stack([y[r : r + chip, c : c + chip] for r, c in zip(rows, cols, strict=True)])
        xc, yc = augment(xc, yc.astype(np.int64), rng)
        epoch_losses = []
        for i in range(steps):
            xb = torch.from_numpy(np.ascontiguousarray(xc[i * batch : (i + 1) * batch]))
            yb = torch.from_numpy(np.ascontiguousarray(yc[i * batch : (i + 1) * batch]))
            loss = segmentation_loss(model(xb), yb, weights, float(params["dice_weight"]))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            epoch_losses.append(float(loss.detach()))
        losses.append(float(np.mean(epoch_losses)))
    return model.eval(), losses


def predict(model: Any, x: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    """Blended sliding-window labels of a (1, H, W) standardised image."""
    import torch

    def proba(chips: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = np.nan_to_num(chips.astype(np.float32), nan=0.0)  # padding
            out = torch.softmax(model(torch.from_numpy(x)), dim=1)
        return np.asarray(out.numpy(), dtype=np.float32)

    tile = min(int(params["tile"]), x.shape[1], x.shape[2])
    overlap = min(int(params["overlap"]), tile // 4)
    labels, _ = predict_array(x, proba, n_classes=len(CLASSES), tile=tile, overlap=overlap)
    return labels


# ----------------------------------------------------------------------------- scoring
def score(pred: np.ndarray, truth: np.ndarray, transform: Any) -> dict[str, Any]:
    """Pixel scores of both classes and building object F1 (SpaceNet)."""
    pixel = pixel_metrics(pred, truth, CLASSES)
    pred_polys = mask_instances(pred, 1, transform=transform, min_pixels=MIN_PRED_PIXELS)
    true_polys = mask_instances(truth, 1, transform=transform)
    objects = object_f1(pred_polys, true_polys)
    return {
        "pixel": {
            CLASSES[c]: {
                "iou": s.iou,
                "f1": s.f1,
                "precision": s.precision,
                "recall": s.recall,
                "support": s.support,
            }
            for c, s in pixel.items()
        },
        "objects": {"building": {**objects.as_dict(), "iou_threshold": SPACENET_IOU_THRESHOLD}},
    }


def fit_threshold(image: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """The brightness cut and direction with the best building IoU on the given region."""
    valid = np.isfinite(image)
    values = image[valid]
    best: dict[str, Any] = {"iou": -1.0}
    for cut in np.unique(np.quantile(values, np.linspace(0.02, 0.98, 49))):
        for direction in ("above", "below"):
            pred = (image > cut) if direction == "above" else (image < cut)
            pred &= valid
            t = truth.astype(bool)
            tp = np.count_nonzero(pred & t)
            union = np.count_nonzero(pred | t)
            iou = tp / union if union else 0.0
            if iou > best["iou"]:
                best = {"iou": float(iou), "threshold_dn": float(cut), "direction": direction}
    return best


def apply_threshold(image: np.ndarray, rule: Mapping[str, Any]) -> np.ndarray:
    cut = float(rule["threshold_dn"])
    pred = (image > cut) if rule["direction"] == "above" else (image < cut)
    return (pred & np.isfinite(image)).astype(np.uint8)


# ----------------------------------------------------------------------------- run
def evaluate_real(
    settings: Settings,
    *,
    sample_dir: Path | None = None,
    params: Mapping[str, Any] | None = None,
    out_dir: Path | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Train on the left two thirds, score on the right third, write report + PNG."""
    import torch

    p = {**DEFAULTS, **dict(params or {})}
    unknown = set(p) - set(DEFAULTS)
    if unknown:
        raise InvalidInputError(
            f"unknown parameters {sorted(unknown)}", hint=f"known: {', '.join(DEFAULTS)}"
        )
    for name, value in list(p.items()):
        if isinstance(value, str):  # from the command line
            try:
                p[name] = type(DEFAULTS[name])(value)
            except ValueError:
                raise InvalidInputError(f"bad value for {name}: {value!r}") from None
    if threads is not None:
        torch.set_num_threads(int(threads))
    started = time.perf_counter()
    folder = (
        Path(sample_dir)
        if sample_dir
        else fetch_sample(settings.home_dir / "samples", SOLARIS_SAMPLE)
    )
    data = load_sample(folder)
    image, labels, transform = data["image"], data["labels"], data["transform"]
    height, width = labels.shape
    if width <= SPLIT_COLUMN:
        raise InvalidInputError(f"image is {width} px wide; the split is at column {SPLIT_COLUMN}")
    stats = standardiser(image[:, :SPLIT_COLUMN])
    x = standardise(image, stats)
    x_train, y_train = x[:, :, :SPLIT_COLUMN], labels[:, :SPLIT_COLUMN]
    x_test, y_test = x[:, :, SPLIT_COLUMN:], labels[:, SPLIT_COLUMN:]
    test_transform = transform @ Affine.translation(SPLIT_COLUMN, 0)

    loaded = time.perf_counter()
    model, losses = train(x_train, y_train, p)
    trained = time.perf_counter()
    pred = predict(model, x_test, p)
    predicted = time.perf_counter()

    rule = fit_threshold(image[:, :SPLIT_COLUMN], y_train)
    baselines = {
        "all_background": score(np.zeros_like(y_test), y_test, test_transform),
        "brightness_threshold": {
            **score(apply_threshold(image[:, SPLIT_COLUMN:], rule), y_test, test_transform),
            "rule": {k: rule[k] for k in ("threshold_dn", "direction")},
            "train_building_iou": rule["iou"],
        },
    }
    test_left_x = transform.c + SPLIT_COLUMN * transform.a
    centroids = data["footprints"].geometry.centroid
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "sample": {
            "name": SOLARIS_SAMPLE.name,
            "source": f"{SOLARIS_SAMPLE.requirement} ({SOLARIS_SAMPLE.wheel_file}, "
            f"sha256 {SOLARIS_SAMPLE.wheel_sha256})",
            "image": IMAGE_FILE,
            "mask": MASK_FILE,
            "width": width,
            "height": height,
            "bands": 1,
            "dtype": data["dtype"],
            "nodata": data["nodata"],
            "crs": data["crs"],
            "resolution_m": abs(float(transform.a)),
            "footprints": len(data["footprints"]),
            "building_fraction": float(labels.mean()),
        },
        "adaptation": (
            "panchromatic uint16 image, not the 5 reflectance bands of the production model: "
            "a U-Net from the same factory (2 classes, 1 input channel, no indices) trained "
            "from scratch on columns 0-599, log(DN) standardised with training-region statistics; "
            "scored once on columns 600-899"
        ),
        "split": {
            "train_columns": [0, SPLIT_COLUMN],
            "test_columns": [SPLIT_COLUMN, width],
            "train_building_pixels": int(y_train.sum()),
            "test_building_pixels": int(y_test.sum()),
            "test_true_instances": len(mask_instances(y_test, 1)),
            "test_footprints_by_centroid": int((centroids.x >= test_left_x).sum()),
        },
        "params": p,
        "standardisation": {"log_dn_mean": stats[0], "log_dn_std": stats[1]},
        "train_loss": losses,
        "model": score(pred, y_test, test_transform),
        "baselines": baselines,
        "min_pred_pixels": MIN_PRED_PIXELS,
        "seconds": {
            "load": round(loaded - started, 2),
            "train": round(trained - loaded, 2),
            "predict": round(predicted - trained, 3),
            "total": round(time.perf_counter() - started, 2),
        },
        "machine": {
            "cpu_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
    }
    target = Path(out_dir) if out_dir else output_dir(settings)
    write_outputs(target, report, image[:, SPLIT_COLUMN:], y_test, pred)
    report["outputs"] = {
        "report": str(target / "report.json"),
        "preview": str(target / "preview.png"),
    }
    return report


# ----------------------------------------------------------------------------- outputs
def preview_png(image: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> bytes:
    """Three panels: the image (2–98 % stretch), the true buildings, and the prediction
    coloured by outcome (hit red, false alarm orange, miss blue)."""
    import io

    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    lo, hi = np.nanpercentile(image, [2, 98])
    shown = np.clip((np.nan_to_num(image, nan=lo) - lo) / max(hi - lo, 1e-6), 0, 1)
    t, q = truth == 1, pred == 1
    outcome = np.select([t & q, q & ~t, t & ~q], [1, 2, 3], 0)
    outcomes = ListedColormap(["#fdf6f0", "#b2182b", "#f4a582", "#2166ac"])
    fig = Figure(figsize=(9, 9.6))
    panels: tuple[tuple[str, np.ndarray, str | ListedColormap, int], ...] = (
        ("image (columns 600–899)", shown, "gray", 1),
        ("true buildings", truth, "Reds", 1),
        ("prediction: hit / false alarm / miss", outcome, outcomes, 3),
    )
    for i, (title, data, cmap, vmax) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1)
        ax.imshow(data, cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=80, format="png")
    return buffer.getvalue()


def write_outputs(
    folder: Path, report: Mapping[str, Any], image: np.ndarray, truth: np.ndarray, pred: np.ndarray
) -> None:
    atomic.atomic_write_bytes(folder / "preview.png", preview_png(image, truth, pred), parents=True)
    atomic.atomic_write_json(folder / "report.json", report, indent=2, sort_keys=True, parents=True)


def model_card_markdown(report: Mapping[str, Any]) -> str:
    """The model card's real-data section, every number taken from ``report``."""
    s, split, p = report["sample"], report["split"], report["params"]

    def row(name: str, r: Mapping[str, Any]) -> str:
        b, o = r["pixel"]["building"], r["objects"]["building"]
        return (
            f"| {name} | {b['iou']:.3f} | {b['f1']:.3f} | {b['precision']:.3f} | "
            f"{b['recall']:.3f} | {o['f1']:.3f} ({o['tp']} tp, {o['fp']} fp, {o['fn']} fn) |"
        )

    rule = report["baselines"]["brightness_threshold"]["rule"]
    secs, machine = report["seconds"], report["machine"]
    return "\n".join(
        [
            "## Real data: buildings in the solaris 0.5 m sample",
            "",
            "<!-- generated by `terraops segment evaluate-real --card` from "
            "TERRAOPS_HOME/evaluation/segmentation-real/report.json; do not edit by hand -->",
            "",
            f"Data: {s['source']}: `{s['image']}` ({s['width']}×{s['height']} px, "
            f"{s['resolution_m']:g} m, {s['crs']}, {s['bands']} band {s['dtype']}, "
            f"no-data {s['nodata']}), building mask `{s['mask']}` ({s['footprints']} footprints, "
            f"{100 * s['building_fraction']:.1f} % of pixels).",
            "",
            f"Adaptation: {report['adaptation']}. U-Net depth {p['depth']}, base width "
            f"{p['base_width']}, {p['epochs']} epochs × {p['chips_per_epoch']} chips of "
            f"{p['chip']} px, seed {p['seed']}. Train columns {split['train_columns'][0]}–"
            f"{split['train_columns'][1] - 1}, test columns {split['test_columns'][0]}–"
            f"{split['test_columns'][1] - 1} ({split['test_true_instances']} true building "
            f"regions in the test mask; {split['test_footprints_by_centroid']} of the "
            f"footprints have their centroid there).",
            "",
            "Scores on the test third (building class; object F1 is SpaceNet style, "
            f"IoU ≥ 0.5, one-to-one, predicted regions under {report['min_pred_pixels']} px "
            "dropped):",
            "",
            "| predictor | pixel IoU | pixel F1 | precision | recall | object F1 |",
            "|---|---|---|---|---|---|",
            row("U-Net (adapted)", report["model"]),
            row("all background", report["baselines"]["all_background"]),
            row(
                f"brightness {rule['direction']} {rule['threshold_dn']:g} DN (fit on train)",
                report["baselines"]["brightness_threshold"],
            ),
            "",
            f"Time: {secs['train']:.0f} s training + {secs['predict']:.2f} s prediction on "
            f"{machine['cpu_threads']} CPU threads ({machine['platform']}, torch "
            f"{machine['torch']}).",
            "",
            "This is one small image (one city block scale, a few dozen buildings): the figures "
            "show the pipeline works on real imagery with a panchromatic adaptation, not the "
            "accuracy of the production five-band model. The labels are OpenStreetMap outlines "
            "rasterised by solaris, not traced on this image, so their edges need not align "
            "with the roofs; that limits pixel IoU and object matches for any predictor. "
            "Preview (image, truth, hits/false alarms/misses): "
            "TERRAOPS_HOME/evaluation/segmentation-real/preview.png.",
            "",
        ]
    )
