"""Segmentation benchmark: PyTorch eager vs ONNX Runtime fp32 vs INT8, CPU.

One bundle, built here in a few CPU minutes: a U-Net of the served architecture
trained with the service's own recipe (its training defaults) on five synthetic
scenes and scored on a sixth it never saw, so the model timed is one that passes
the promotion gate (held-out building IoU ≥ 0.85), saved with the bundle code
(``model.pt`` + fp32 ``model.onnx``) and quantised by
:func:`terraops.adapters.onnx_quantize.quantize_bundle` (static, QDQ,
per-channel, calibrated on 32 real chips of the training scenes). Then, in one
run:

1. **Throughput** on the same 8 × 5 × 256² chips of a held-out scene, for the
   three engines of :class:`~terraops.adapters.segmentation_bundle.Segmenter`
   (same threads), measured in interleaved rounds; medians → images/s, km²/min
   at 2 m (one 256² chip = 0.262 km²) and ratios to eager.
2. **Building IoU** of each engine on the whole held-out scene (production
   sliding-window prediction): the INT8 cost in IoU points.
3. **Peak memory** of end-to-end ``terraops segment predict`` (``--engine
   onnx-int8``, ``--bundle``, GeoTIFF input, mask COG + polygons) on images of
   three sizes, each in its own process; the peak is that process's own ``VmHWM``
   (reset at its start, read at its exit).
4. **CPU knobs one by one** (:mod:`bench.segmentation_cpu`): graph optimisation
   levels, spinning, IO binding, INT8, the separable block; wall time and
   single-thread CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BIN = Path(sys.executable).parent
CHIP = 256
BATCH = 8
RESOLUTION_M = 2.0
KM2_PER_CHIP = CHIP * CHIP * RESOLUTION_M**2 / 1e6
KNOB_BATCH = 4  # chips per call in the CPU-knobs micro-benchmark
TRAINING_SCENES = ((11, "dense"), (12, "sprawl"), (13, "coastal"), (14, "dense"), (16, "dense"))
HELD_OUT_SCENE = (15, "sprawl")
ENGINES = ("torch", "onnx", "onnx-int8")
UPLOAD_SIZE = 1024  # the /v1/segment objective is for uploads of at most one megapixel
BAND_ORDER = ("red", "green", "blue", "nir", "swir")
MEMORY_ENGINE = "onnx-int8"  # the fastest path; the windows, not the engine, bound memory
LABELS = {
    "torch": "PyTorch eager (fp32)",
    "onnx": "ONNX Runtime fp32",
    "onnx-int8": "ONNX Runtime INT8 (static QDQ, per-channel)",
}


def _say(text: str) -> None:
    print(f"[segmentation] {text}", file=sys.stderr, flush=True)


def build_bundle(work: Path, scene_size: int) -> tuple[Path, list[Any], Any, dict[str, Any]]:
    """Scenes → U-Net trained with the service's recipe → bundle (fp32 ONNX) → INT8 graph."""
    from terraops.adapters.onnx_quantize import quantize_bundle
    from terraops.adapters.segmentation_bundle import BundleMeta, save_bundle
    from terraops.models.unet import UNetConfig
    from terraops.pipelines.scenes.generate import generate_scene
    from terraops.pipelines.segmentation.data import load_scene
    from terraops.pipelines.segmentation.int8 import calibration_chips
    from terraops.pipelines.segmentation.train import fit, resolve_params
    from terraops.services.segmentation import SEGMENTATION

    scenes = []
    for seed, morphology in (*TRAINING_SCENES, HELD_OUT_SCENE):
        out = work / "scenes" / f"city{seed}"
        generate_scene(
            out, seed=seed, size=scene_size, resolution=RESOLUTION_M, morphology=morphology
        )
        scenes.append(load_scene(out))
    train, held_out = scenes[:-1], scenes[-1]
    arch, training = resolve_params(SEGMENTATION, None)  # the served architecture and recipe
    started = time.perf_counter()
    model, history = fit(SEGMENTATION, arch, training, train, [held_out], "cpu")
    train_s = time.perf_counter() - started
    config = UNetConfig.from_dict({**arch, "n_classes": SEGMENTATION.n_classes})
    meta = BundleMeta.for_model(SEGMENTATION, config)
    bundle = work / "bundle"
    save_bundle(bundle, model, meta)
    started = time.perf_counter()
    chips = calibration_chips(train, n=32, chip=CHIP, seed=0)
    quantize_bundle(bundle, chips, calibration_source="bench training scenes")
    facts = {
        "train_s": train_s,
        "quantize_s": time.perf_counter() - started,
        "torch_building_iou_val": history[-1]["building_iou_val"],
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "arch": arch,
        "training": training,
    }
    return bundle, train, held_out, facts


def throughput(bundle: Path, held_out: Any, rounds: int) -> dict[str, dict[str, float]]:
    """images/s of each engine on the same batch of held-out chips; interleaved rounds."""
    from terraops.adapters.onnx_quantize import argmax_agreement
    from terraops.adapters.segmentation_bundle import Segmenter
    from terraops.pipelines.segmentation.int8 import calibration_chips

    chips = calibration_chips([held_out], n=BATCH, chip=CHIP, seed=11)
    segs = {e: Segmenter(bundle, engine=e, device="cpu") for e in ENGINES}  # type: ignore[arg-type]
    probs = {e: s.predict_proba(chips) for e, s in segs.items()}  # warm-up
    times: dict[str, list[float]] = {e: [] for e in ENGINES}
    for r in range(rounds):
        for e, s in segs.items():
            t0 = time.perf_counter()
            s.predict_proba(chips)
            times[e].append(time.perf_counter() - t0)
        _say(f"throughput round {r + 1}/{rounds}: " + ", ".join(
            f"{e} {times[e][-1]:.2f} s" for e in ENGINES
        ))  # fmt: skip
    out = {}
    for e in ENGINES:
        sec = statistics.median(times[e])
        out[e] = {
            "batch_s": sec,
            "img_s": BATCH / sec,
            "km2_min": BATCH / sec * KM2_PER_CHIP * 60,
            "max_abs_prob_diff_vs_torch": float(np.abs(probs[e] - probs["torch"]).max()),
            "argmax_agreement_vs_torch": argmax_agreement(probs[e], probs["torch"]),
        }
    return out


def iou(bundle: Path, held_out: Any) -> dict[str, float]:
    from terraops.adapters.segmentation_bundle import Segmenter, read_meta
    from terraops.pipelines.segmentation.int8 import building_iou

    meta = read_meta(bundle)
    return {
        e: building_iou(
            Segmenter(bundle, engine=e, device="cpu"),  # type: ignore[arg-type]
            [held_out],
            meta.tile,
            meta.overlap,
        )
        for e in ENGINES
    }


def write_image(path: Path, image: np.ndarray, size: int) -> None:
    """A ``size``² five-band float32 GeoTIFF tiled from ``image`` (reflectance, NaN nodata)."""
    import rasterio
    from rasterio.transform import from_origin

    reps = (1, -(-size // image.shape[1]), -(-size // image.shape[2]))
    data = np.tile(image, reps)[:, :size, :size].astype(np.float32)
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": data.shape[0],
        "dtype": "float32",
        "crs": "EPSG:32633",
        "transform": from_origin(600_000.0, 5_345_000.0, RESOLUTION_M, RESOLUTION_M),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "nodata": float("nan"),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


# Run in the child: reset this process's high-water mark (Linux ≥ 4.0), run the CLI, and
# write VmHWM at exit. ``ru_maxrss`` of an exec'd child would start at the high-water mark
# of the process that forked it (this driver, with torch and the model: GiBs).
PEAK_WRAPPER = """
import atexit, os, pathlib, sys
pathlib.Path("/proc/self/clear_refs").write_text("5")
def _peak():
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            pathlib.Path(os.environ["SEG_BENCH_PEAK"]).write_text(line.split()[1])
atexit.register(_peak)
sys.argv = ["terraops", *sys.argv[1:]]
from terraops.cli.main import app
app()
"""


def _child_peak(args: list[str], env: dict[str, str], work: Path) -> tuple[int, float, str, str]:
    """``terraops ARGS`` in its own process; (its peak RSS in KiB, wall s, stdout, stderr)."""
    peak = work / "peak.kib"
    peak.unlink(missing_ok=True)
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-c", PEAK_WRAPPER, *args],
        env={**env, "SEG_BENCH_PEAK": str(peak)},
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    if res.returncode != 0 or not peak.is_file():
        raise RuntimeError(f"terraops {' '.join(args)} failed:\n{res.stderr[-3000:]}")
    return int(peak.read_text()), wall, res.stdout, res.stderr


def memory(bundle: Path, held_out: Any, sizes: list[int], work: Path) -> dict[int, dict[str, Any]]:
    """Peak RSS of end-to-end ``terraops segment predict`` per image size, one process each."""
    home = work / "home"
    env = {**os.environ, "TERRAOPS_HOME": str(home)}
    out: dict[int, dict[str, Any]] = {}
    for size in sizes:
        image = work / f"image{size}.tif"
        write_image(image, held_out.image, size)
        cmd = [
            *("segment", "predict", "--bundle", str(bundle), "--image", str(image)),
            *("--band-order", "red,green,blue,nir,swir", "--engine", MEMORY_ENGINE),
            *("--out-mask", str(work / f"mask{size}.tif")),
            *("--out-vector", str(work / f"polygons{size}.geojson")),
            *("--no-layers", "--json"),
        ]
        rss_kib, wall, stdout, _ = _child_peak(cmd, env, work)
        result = json.loads(stdout)
        out[size] = {
            "peak_rss_mib": rss_kib / 1024,
            "wall_s": wall,
            "megapixels_per_s": float(result.get("megapixels_per_s", float("nan"))),
        }
        _say(f"predict {size}²: peak RSS {rss_kib / 1024:.0f} MiB in {wall:.1f} s")
    return out


def render(
    header: str,
    facts: dict[str, Any],
    tp: dict,
    ious: dict[str, float],
    mem: dict,
    knobs: dict[str, Any],
) -> str:
    from bench.segmentation_cpu import describe_architecture, render_knobs
    from terraops.services.segmentation import SEGMENTATION

    gate = SEGMENTATION.slo.metric_target  # the promotion gate: held-out building IoU

    eager = tp["torch"]["img_s"]
    verdict = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    fp32_x, int8_x = tp["onnx"]["img_s"] / eager, tp["onnx-int8"]["img_s"] / eager
    loss = 100 * (ious["onnx"] - ious["onnx-int8"])
    lines = [
        "## Segmentation: PyTorch eager vs ONNX Runtime fp32 vs INT8 (CPU)",
        "",
        header,
        f"Model: the served U-Net ({describe_architecture(facts['arch'])}; "
        f"{facts['n_parameters']:,} parameters) trained here with the service's recipe "
        f"({facts['training']['epochs']} epochs of {facts['training']['chips_per_epoch']} chips "
        f"of {facts['training']['chip']}², {facts['train_s']:.0f} s on this CPU) on "
        f"{len(TRAINING_SCENES)} synthetic {facts['scene_size']}² scenes at {RESOLUTION_M:g} m, "
        f"scored on a sixth it never saw (building IoU in the table; the promotion gate asks "
        f"≥ {gate:.2f}: {verdict(ious['torch'] >= gate)}); INT8 = "
        "`quantize_bundle` (static, QDQ, per-channel int8 weights, uint8 activations, ReLU "
        "folded into the convolutions' output quantisation, MinMax "
        f"calibration on 32 real 256² chips of the training scenes; {facts['quantize_s']:.0f} s; "
        f"reduce_range {facts['reduce_range']}). ONNX Runtime sessions as served: all graph "
        "optimisations, sequential, no thread spinning.  ",
        f"Chips: the same {BATCH} × 5 × {CHIP}² chips of a held-out scene for each engine, "
        f"{facts['threads']} threads each, interleaved rounds, median of {facts['rounds']}.",
        "",
        "| engine | s / batch of 8 | images/s | km²/min at 2 m | × eager | max abs Δp vs eager "
        "| same class as eager | building IoU (held-out) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in ENGINES:
        r = tp[e]
        lines.append(
            f"| {LABELS[e]} | {r['batch_s']:.3f} | {r['img_s']:.2f} | {r['km2_min']:.1f} | "
            f"{r['img_s'] / eager:.2f}× | {r['max_abs_prob_diff_vs_torch']:.2e} | "
            f"{100 * r['argmax_agreement_vs_torch']:.2f} % | {ious[e]:.3f} |"
        )
    lines += [
        "",
        f"- ONNX Runtime fp32 vs eager: **{fp32_x:.2f}×** "
        f"(target ≥ 2.5× {verdict(fp32_x >= 2.5)}).",
        f"- INT8 vs eager: **{int8_x:.2f}×** (target ≥ 6× {verdict(int8_x >= 6)}); INT8 vs "
        f"fp32 ONNX: {tp['onnx-int8']['img_s'] / tp['onnx']['img_s']:.2f}×.",
        f"- Building IoU lost to INT8 on the held-out scene: **{loss:.2f} points** "
        f"(fp32 {ious['onnx']:.3f} → int8 {ious['onnx-int8']:.3f}; target ≤ 1 point "
        f"{verdict(loss <= 1.0)}).",
        "",
        f"End-to-end `terraops segment predict --engine {MEMORY_ENGINE}` (GeoTIFF → mask COG + "
        "polygons), "
        "each size in its own process; peak RSS = that process's own `VmHWM`:",
        "",
        "| image | megapixels | peak RSS MiB | wall s (incl. start-up) | inference MP/s |",
        "|---|---|---|---|---|",
    ]
    for size, m in mem.items():
        lines.append(
            f"| {size}² | {size * size / 1e6:.2f} | {m['peak_rss_mib']:.0f} | {m['wall_s']:.1f} | "
            f"{m['megapixels_per_s']:.2f} |"
        )
    sizes = sorted(mem)
    growth = mem[sizes[-1]]["peak_rss_mib"] / mem[sizes[0]]["peak_rss_mib"]
    pixels = (sizes[-1] / sizes[0]) ** 2
    lines += [
        "",
        f"- Peak memory {sizes[0]}² → {sizes[-1]}² ({pixels:.0f}× the pixels): "
        f"{growth:.2f}× (flat {verdict(growth <= 1.5)}; criterion ≤ 1.5×).",
        "- `POST /v1/segment` on a 1 MP upload: its own section below, on a champion trained "
        "the same way.",
        "",
    ]
    return "\n".join(lines) + "\n" + render_knobs(knobs)


def run_segmentation(
    args: argparse.Namespace, header: Callable[[float], str], emit: Callable[[str, str], None]
) -> None:
    from bench.segmentation_cpu import run_knobs
    from terraops.adapters.onnx_quantize import cpu_has_vnni
    from terraops.adapters.segmentation_bundle import default_threads

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="terraops-seg-bench-") as tmp:
        work = Path(tmp)
        _say("training and quantising the benchmark bundle")
        bundle, _train, held_out, facts = build_bundle(work, args.seg_scene_size)
        facts.update(
            {
                "scene_size": args.seg_scene_size,
                "rounds": args.seg_rounds,
                "threads": default_threads(),
                "reduce_range": not cpu_has_vnni(),
            }
        )
        tp = throughput(bundle, held_out, args.seg_rounds)
        _say("building IoU per engine on the held-out scene")
        ious = iou(bundle, held_out)
        mem = memory(bundle, held_out, [int(s) for s in args.seg_sizes], work)
    _say("CPU knobs micro-benchmark")
    knobs = run_knobs(args.seg_rounds, KNOB_BATCH, CHIP, default_threads())
    text = render(header(time.monotonic() - started), facts, tp, ious, mem, knobs)
    emit("segmentation", text)
