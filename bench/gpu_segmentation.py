"""Segmentation on a GPU: training time to the IoU target, model and end-to-end throughput.

Run on a machine with a CUDA device (the project's CI has none; the numbers in
``BENCHMARKS.md`` came from a lent H100/H200, with the command recorded there)::

    PYTHONPATH=src:. python -m bench.gpu_segmentation --out-dir OUT

What it measures, each step on the same freshly trained model:

1. **Training** with the registered service's defaults (the same U-Net, chips and
   epochs as ``terraops segment train``) on three synthetic cities, validated on a
   fourth: seconds until the held-out building IoU first reaches the service's
   target (0.85), and at the end. bf16 autocast on the GPU (``gpu_autocast``).
2. **Bare model** images/s and megapixels/s on a batch already on the device:
   fp32 NCHW, bf16 + channels_last (what ``Segmenter`` runs on CUDA), and the
   same under ``torch.compile``.
3. **bf16 cost**: held-out building IoU of the CUDA (bf16) engine vs fp32 on the CPU.
4. **End to end**: ``segment_image`` (the code behind ``terraops segment predict``)
   on large GeoTIFFs — windowed reads, model, blending, the mask COG and the
   polygons — megapixels/s, with a profile of where the time goes.

Without a GPU, the same end-to-end pipeline's CPU figure: ``--device cpu`` with
an existing model (``--bundle``, a bundle folder) and scene (``--scene``, the
held-out city) skips training and the GPU-only steps; ``--vector-workers 0 2``
runs each size once per worker count (0: polygons in the calling process), side
by side in one run::

    PYTHONPATH=src:. python -m bench.gpu_segmentation --device cpu --bundle BUNDLE \
        --scene SCENE --e2e-sizes 2048 --e2e-engine onnx --vector-workers 0 2

Writes ``gpu_segmentation.json`` and ``gpu_segmentation.md`` into ``--out-dir``.
A step that would pass ``--budget-s`` is skipped and says so.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.segmentation import RESOLUTION_M, write_image

CITIES = ((1, "dense"), (2, "sprawl"), (3, "coastal"), (4, "dense"))  # the last is held out


def _say(text: str) -> None:
    print(f"[gpu-seg] {text}", file=sys.stderr, flush=True)


def device_facts(device: str) -> dict[str, Any]:
    import torch

    facts: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "device": device,
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        facts.update(
            gpu=torch.cuda.get_device_name(0),
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    return facts


def make_scenes(work: Path, size: int) -> list[Path]:
    from terraops.pipelines.scenes.generate import generate_scene

    dirs = []
    for seed, morphology in CITIES:
        out = work / "scenes" / f"city{seed}"
        generate_scene(out, seed=seed, size=size, resolution=RESOLUTION_M, morphology=morphology)
        dirs.append(out)
    return dirs


def train(dirs: list[Path], device: str, epochs: int | None) -> tuple[Any, dict[str, Any], Any]:
    """The service's default training on ``device``; the per-epoch curve with wall times."""
    from terraops.pipelines.segmentation.data import load_scene
    from terraops.pipelines.segmentation.train import fit, resolve_params
    from terraops.services.segmentation import SEGMENTATION

    scenes = [load_scene(d) for d in dirs]
    train_scenes, held_out = scenes[:-1], scenes[-1]
    overrides = {} if epochs is None else {"epochs": epochs}
    arch, training = resolve_params(SEGMENTATION, overrides)
    target = SEGMENTATION.slo.metric_target
    curve: list[dict[str, float]] = []
    started = time.perf_counter()

    def on_epoch(record: dict[str, float]) -> None:
        curve.append({**record, "elapsed_s": time.perf_counter() - started})
        _say(f"epoch {int(record['epoch'])}: building IoU {record['building_iou_val']:.3f}")

    model, _ = fit(
        SEGMENTATION, arch, training, train_scenes, [held_out], device, on_epoch=on_epoch
    )
    reached = next((r for r in curve if r["building_iou_val"] >= target), None)
    result = {
        "epochs": int(training["epochs"]),
        "chips_per_epoch": int(training["chips_per_epoch"]),
        "batch_size": int(training["batch_size"]),
        "target_building_iou": target,
        "seconds_total": curve[-1]["elapsed_s"],
        "building_iou_final": curve[-1]["building_iou_val"],
        "seconds_to_target": None if reached is None else reached["elapsed_s"],
        "epoch_at_target": None if reached is None else int(reached["epoch"]),
        "curve": [
            {k: round(r[k], 4) for k in ("epoch", "elapsed_s", "building_iou_val", "train_loss")}
            for r in curve
        ],
    }
    return model, result, held_out


def save_weights(model: Any, folder: Path) -> Path:
    """Weights + metadata only: enough for the torch engine (the ONNX export is a CPU concern)."""
    import torch

    from terraops.adapters.segmentation_bundle import META_FILE, WEIGHTS_FILE, BundleMeta
    from terraops.services.segmentation import SEGMENTATION

    folder.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    torch.save(model.state_dict(), folder / WEIGHTS_FILE)
    meta = BundleMeta.for_model(SEGMENTATION, model.config)
    (folder / META_FILE).write_text(json.dumps(meta.to_dict(), indent=2), encoding="utf-8")
    return folder


def _timed(fn: Any, x: Any, iters: int) -> float:
    import torch

    for _ in range(3):
        fn(x)
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(iters):
        fn(x)
    torch.cuda.synchronize()
    return (time.perf_counter() - started) / iters


def bare_model(bundle: Path, held_out: Any, batch: int, compile_model: bool) -> dict[str, Any]:
    """Forward passes on a batch already on the GPU: fp32, bf16+channels_last, compiled."""
    import torch

    from terraops.adapters.onnx_quantize import calibration_chips
    from terraops.adapters.segmentation_bundle import Segmenter

    tile = 256
    chips = calibration_chips([held_out], n=batch, chip=tile, seed=3)
    chips = np.where(np.isfinite(chips), chips, 0.1).astype(np.float32)
    fp32 = Segmenter(bundle, engine="torch", device="cuda")._model
    x = torch.from_numpy(chips).cuda()
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def run_fp32(t: Any) -> Any:
        with torch.inference_mode():
            return fp32.to(memory_format=torch.contiguous_format)(t)

    def run_bf16(t: Any) -> Any:
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            return fp32(t)

    variants: dict[str, Any] = {}
    fp32_s = _timed(run_fp32, x, 20)
    fp32.to(memory_format=torch.channels_last)
    variants["fp32 NCHW"] = fp32_s
    variants["bf16 channels_last"] = _timed(run_bf16, x_cl, 20)
    if compile_model:
        compiled = torch.compile(fp32, mode="max-autotune-no-cudagraphs")

        def run_compiled(t: Any) -> Any:
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
                return compiled(t)

        started = time.perf_counter()
        run_compiled(x_cl)
        compile_s = time.perf_counter() - started
        variants["bf16 channels_last + torch.compile"] = _timed(run_compiled, x_cl, 20)
        variants["_compile_s"] = compile_s
    pixels = batch * tile * tile
    out: dict[str, Any] = {"batch": batch, "tile": tile}
    for name, seconds in variants.items():
        if name.startswith("_"):
            out[name[1:]] = round(seconds, 2)
            continue
        out[name] = {
            "ms_per_batch": round(seconds * 1e3, 3),
            "images_s": round(batch / seconds, 1),
            "megapixels_s": round(pixels / seconds / 1e6, 1),
        }
    return out


def bf16_cost(bundle: Path, held_out: Any) -> dict[str, float]:
    from terraops.adapters.onnx_quantize import building_iou
    from terraops.adapters.segmentation_bundle import Segmenter, read_meta

    meta = read_meta(bundle)
    return {
        name: round(
            building_iou(
                Segmenter(bundle, engine="torch", device=dev), [held_out], meta.tile, meta.overlap
            ),
            4,
        )
        for name, dev in (("cuda bf16", "cuda"), ("cpu fp32", "cpu"))
    }


def end_to_end(
    bundle: Path,
    held_out: Any,
    work: Path,
    size: int,
    batch: int,
    device: str,
    engine: str = "torch",
    vector_workers: int | None = None,
) -> dict[str, Any]:
    """``segment_image`` on a ``size``² GeoTIFF: mask COG + GeoJSON, with a profile.

    ``vector_workers``: processes vectorising the strips (None: one per core).
    """
    from terraops.pipelines.segmentation.scene_predict import segment_image
    from terraops.settings import Settings

    image = work / f"image_{size}.tif"
    if not image.exists():
        started = time.perf_counter()
        write_image(image, held_out.image, size)
        _say(f"wrote {image.name} in {time.perf_counter() - started:.1f} s")
    settings = Settings(home=work / "home", segment_vector_workers=vector_workers)
    kwargs: dict[str, Any] = dict(
        image=image,
        band_order=["red", "green", "blue", "nir", "swir"],
        out_mask=work / f"mask_{size}.tif",
        out_vector=work / f"footprints_{size}.geojson",
        engine=engine,
        device=device,
        bundle=bundle,
        batch_size=batch,
        register=False,
        progress=False,
    )
    profiler = cProfile.Profile()
    profiler.enable()
    result = segment_image(settings, **kwargs)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(12)
    megapixels = size * size / 1e6
    return {
        "size": size,
        "megapixels": round(megapixels, 2),
        "batch": batch,
        "engine": engine,
        "vector_workers": vector_workers,
        "seconds": result["seconds"],
        "megapixels_s_end_to_end": round(megapixels / result["seconds"]["total"], 2),
        "megapixels_s_streaming": result["megapixels_per_s"],
        "polygons": result["polygons"],
        "profile_top_tottime": text.getvalue().splitlines()[-22:],
    }


def render(report: dict[str, Any]) -> str:
    f, t = report["facts"], report.get("training", {})
    lines = [
        "## Segmentation on a GPU",
        "",
        f"Device: {f.get('gpu', f['device'])} ({f.get('gpu_memory_gib', '?')} GiB), "
        f"CUDA {f.get('cuda')}, cuDNN {f.get('cudnn')}, torch {f['torch']}, "
        f"{f['cpus']} CPUs, Python {f['python']}.  ",
        f"Command: `{report['command']}`, {report['date']}, took {report['took_s']:.0f} s.",
        "",
    ]
    if t:
        lines += [
            f"- Training (service defaults: {t['epochs']} epochs × {t['chips_per_epoch']} chips, "
            f"batch {t['batch_size']}, bf16 autocast): building IoU {t['building_iou_final']:.3f} "
            f"on the held-out city after {t['seconds_total']:.1f} s; target "
            f"{t['target_building_iou']} first reached "
            + (
                f"at epoch {t['epoch_at_target']}, {t['seconds_to_target']:.1f} s."
                if t["seconds_to_target"] is not None
                else "never."
            ),
        ]
    bare = report.get("bare_model")
    if bare:
        lines += [
            "",
            f"Bare model, batch {bare['batch']} × {bare['tile']}² already on the GPU:",
            "",
        ]
        lines += ["| variant | ms/batch | images/s | megapixels/s |", "|---|---|---|---|"]
        for name, v in bare.items():
            if isinstance(v, dict):
                lines.append(
                    f"| {name} | {v['ms_per_batch']} | {v['images_s']} | {v['megapixels_s']} |"
                )
        if "compile_s" in bare:
            lines.append(f"\n`torch.compile` itself took {bare['compile_s']} s.")
    if report.get("bf16_iou"):
        lines += ["", f"Held-out building IoU: {report['bf16_iou']}."]
    for e2e in report.get("end_to_end", []):
        s = e2e["seconds"]
        lines.append(
            f"- End to end {e2e['size']}² ({e2e['megapixels']} MP, batch {e2e['batch']}, "
            f"{e2e.get('engine', 'torch')}, vector workers {e2e.get('vector_workers')}): "
            f"{s['total']} s total ({s['inference']} s streaming), "
            f"**{e2e['megapixels_s_end_to_end']} MP/s** end to end."
        )
    for note in report.get("skipped", []):
        lines.append(f"- Skipped: {note}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out-dir", type=Path, default=Path("."))
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--scene-size", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=None, help="default: the service's")
    parser.add_argument("--batch", type=int, default=64, help="bare-model batch")
    parser.add_argument("--e2e-sizes", type=int, nargs="+", default=[4096, 8192])
    parser.add_argument("--e2e-batch", type=int, default=32)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--budget-s", type=float, default=420.0)
    parser.add_argument("--device", default="cuda", help="cpu: the pipeline's CPU figure")
    parser.add_argument("--bundle", type=Path, help="an existing model bundle: no training")
    parser.add_argument("--scene", type=Path, help="with --bundle: the held-out scene folder")
    parser.add_argument("--e2e-engine", default="torch", help="torch, onnx or onnx-int8")
    parser.add_argument(
        "--vector-workers", type=int, nargs="+", default=[None], help="0: in-process"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-seg-"))
    work.mkdir(parents=True, exist_ok=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "command": "PYTHONPATH=src:. python -m bench.gpu_segmentation " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "facts": device_facts(args.device),
        "skipped": [],
    }

    def save() -> None:
        report["took_s"] = time.perf_counter() - started
        (args.out_dir / "gpu_segmentation.json").write_text(json.dumps(report, indent=2))
        (args.out_dir / "gpu_segmentation.md").write_text(render(report))

    _say(json.dumps(report["facts"]))
    if args.bundle is not None:
        from terraops.pipelines.segmentation.data import load_scene

        bundle, held_out = args.bundle, load_scene(args.scene)
    else:
        dirs = make_scenes(work, args.scene_size)
        model, report["training"], held_out = train(dirs, args.device, args.epochs)
        save()
        bundle = save_weights(model, work / "bundle")
    if args.device == "cuda":
        report["bare_model"] = bare_model(bundle, held_out, args.batch, not args.no_compile)
        save()
        report["bf16_iou"] = bf16_cost(bundle, held_out)
        save()
    report["end_to_end"] = []
    for size in args.e2e_sizes:
        spent = time.perf_counter() - started
        # Writing, predicting and vectorising scale with the pixels: ~1 s per 4 MP is a bound.
        if spent + size * size / 4e6 > args.budget_s:
            report["skipped"].append(f"end to end {size}² (budget {args.budget_s:.0f} s)")
            continue
        for workers in args.vector_workers:
            report["end_to_end"].append(
                end_to_end(
                    bundle,
                    held_out,
                    work,
                    size,
                    args.e2e_batch,
                    args.device,
                    args.e2e_engine,
                    workers,
                )
            )
            save()
    save()
    print(render(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
