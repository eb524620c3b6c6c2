"""Map benchmarks: tiles, COG writing, predict-raster — side by side in one run.

1. **Tiles** on one COG (a 4096² float32 field written by terraops' COG writer
   and registered in the benchmark home's catalogue with a colormap and a
   rescale range): bare TiTiler (``bench/titiler_app.py``, ``url=`` + the same
   colormap and rescale as query parameters) vs terraops'
   ``/layers/{id}/tiles/{z}/{x}/{y}.png`` with the tile cache off
   (``TERRAOPS_TILE_CACHE_MB=0``) vs the same with the cache on, repeated views
   of the same tiles. Three servers up at once (uvicorn, 2 workers each, same
   ``OMP_NUM_THREADS`` / GDAL settings), driven by wrk through one fixed list of
   tile paths in rotation (``bench/wrk_tiles.lua``), interleaved rounds, medians;
   then a paired pass (each tile asked of TiTiler and terraops back to back) whose
   per-tile ratio shrugs off the machine's drifting load.
2. **COG writing** of the same 4096² float32 raster: ``terraops.adapters.cog.write_cog``
   vs GDAL's COG driver with its defaults, with DEFLATE, and with DEFLATE on all
   cores, vs ``rio_cogeo.cog_translate`` with its deflate profile; interleaved runs,
   medians, sizes.
3. **predict-raster** (UHI champion) on scenes of two sizes: megapixels/s cold
   (the first run builds the scene's cell table) and with the table cached, and
   the peak RSS of each run, every run in its own process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    free_port,
    median_of,
    running_server,
)
from bench.maps_field import (  # noqa: E402
    FIELD_COLORMAP,
    FIELD_CRS,
    FIELD_LAYER_ID,
    FIELD_ORIGIN,
    FIELD_RESCALE,
    FIELD_RESOLUTION_M,
    FIELD_SIZE,
)
from bench.maps_report import render_cog, render_raster, render_tiles  # noqa: E402

BIN = Path(sys.executable).parent
TILES_WRK = HERE / "wrk_tiles.lua"

TILE_ZOOMS = (14, 15)
"""Zooms of the tile list: 14 reads the COG's overviews, 15 is near full resolution."""

SERVER_ENV = {
    "OMP_NUM_THREADS": "1",
    "GDAL_CACHEMAX": "200",
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_NUM_THREADS": "1",
}
"""The same process settings for every tile server."""
WARMUP_LIMIT_S = 120.0
"""Longest the cache warm-up may take (≈ 2 × 157 renders are needed: seconds when idle)."""


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- input raster
def synthetic_field(size: int = FIELD_SIZE, seed: int = 0) -> np.ndarray:
    """A smooth temperature-like field (°C) with cell-sized texture, float32.

    Broad gradients and warm blobs (a city's heat) plus noise constant over
    8×8-pixel blocks, like a model's 20 m cells drawn on a finer grid: it
    compresses like a prediction raster rather than like pure noise or a ramp.
    """
    rng = np.random.default_rng(seed)
    axis = np.linspace(0.0, 1.0, size, dtype=np.float32)
    x, y = axis[np.newaxis, :], axis[:, np.newaxis]
    field = 30.0 + 3.0 * np.sin(2 * np.pi * 1.3 * x) * np.cos(2 * np.pi * 0.9 * y)
    for cx, cy, radius, amp in rng.uniform((0.1, 0.1, 0.03, 2.0), (0.9, 0.9, 0.15, 7.0), (8, 4)):
        field = field + amp * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * radius**2))
    block = 8
    cells = rng.normal(0.0, 0.6, (size // block, size // block)).astype(np.float32)
    texture = np.repeat(np.repeat(cells, block, axis=0), block, axis=1)
    return (field + texture).astype(np.float32)


def write_source_raster(path: Path, size: int = FIELD_SIZE) -> Path:
    """The shared input: a plain tiled, uncompressed GeoTIFF (what producers stage)."""
    import rasterio
    from rasterio.transform import from_origin

    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 1,
        "dtype": "float32",
        "crs": FIELD_CRS,
        "transform": from_origin(*FIELD_ORIGIN, FIELD_RESOLUTION_M, FIELD_RESOLUTION_M),
        "nodata": float("nan"),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(synthetic_field(size), 1)
    return path


# --------------------------------------------------------------------------- COG writing
def _cog_writers() -> dict[str, Callable[[Path, Path], object]]:
    import rasterio.shutil
    from rio_cogeo.cogeo import cog_translate
    from rio_cogeo.profiles import cog_profiles

    from terraops.adapters.cog import write_cog

    return {
        "terraops `write_cog` (DEFLATE + float predictor, all cores, validated)": (
            lambda src, dst: write_cog(src, dst)
        ),
        "GDAL COG driver, defaults": lambda src, dst: rasterio.shutil.copy(src, dst, driver="COG"),
        "GDAL COG driver, `COMPRESS=DEFLATE`": lambda src, dst: rasterio.shutil.copy(
            src, dst, driver="COG", COMPRESS="DEFLATE"
        ),
        "GDAL COG driver, `COMPRESS=DEFLATE NUM_THREADS=ALL_CPUS`": (
            lambda src, dst: rasterio.shutil.copy(
                src, dst, driver="COG", COMPRESS="DEFLATE", NUM_THREADS="ALL_CPUS"
            )
        ),
        "rio-cogeo `cog_translate`, deflate profile": lambda src, dst: cog_translate(
            str(src), str(dst), cog_profiles.get("deflate"), quiet=True
        ),
    }


def cog_benchmark(src: Path, workdir: Path, runs: int) -> dict[str, Any]:
    """Median seconds and output size of each writer, runs interleaved."""
    from terraops.adapters.cog import validate_cog

    writers = _cog_writers()
    times: dict[str, list[float]] = {name: [] for name in writers}
    sizes: dict[str, int] = {}
    valid: dict[str, bool] = {}
    workdir.mkdir(parents=True, exist_ok=True)
    warmup = workdir / "warmup.tif"  # GDAL's first use and the input into the page cache
    writers["GDAL COG driver, defaults"](src, warmup)
    warmup.unlink()
    for run in range(runs):
        for index, (name, write) in enumerate(writers.items()):
            out = workdir / f"cog-{index}.tif"
            out.unlink(missing_ok=True)
            _say(f"cog run {run + 1}/{runs}: {name}")
            started = time.perf_counter()
            write(src, out)
            times[name].append(time.perf_counter() - started)
            sizes[name] = out.stat().st_size
            if run == runs - 1:
                valid[name] = not validate_cog(out)
            out.unlink()
    validation = []
    tif = workdir / "validate.tif"
    writers[next(iter(writers))](src, tif)
    for _ in range(runs):
        started = time.perf_counter()
        validate_cog(tif)
        validation.append(time.perf_counter() - started)
    tif.unlink()
    return {
        "median_s": {name: statistics.median(t) for name, t in times.items()},
        "all_s": times,
        "bytes": sizes,
        "valid": valid,
        "validate_s": statistics.median(validation),
        "input_bytes": src.stat().st_size,
        "runs": runs,
    }


# --------------------------------------------------------------------------- tiles
def register_field_layer(home: Path, src: Path) -> tuple[Path, Any]:
    """The field as a COG (terraops' writer) in the home's catalogue, with model lineage."""
    from terraops.adapters.catalogue import LayerCatalogue
    from terraops.adapters.cog import write_cog
    from terraops.adapters.registry import ModelRegistry
    from terraops.pipelines.maps.layer_products import raster_layer
    from terraops.settings import Settings

    settings = Settings(home=home)
    registry = ModelRegistry(settings)
    version = registry.get_alias("uhi", "champion")
    lineage: dict[str, Any] = {"scene": "bench synthetic field 4096²"}
    if version is not None:
        info = registry.get_version("uhi", version)
        lineage["model"] = {"name": "uhi", "version": version, "run_id": info.run_id}
    out = settings.layers_dir / f"{FIELD_LAYER_ID}.tif"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_cog(src, out)
    layer = raster_layer(
        lid=FIELD_LAYER_ID,
        title="Benchmark field 4096² (float32)",
        group="bench",
        role="prediction",
        path=out,
        unit="°C",
        legend="synthetic temperature-like field",
        colormap=FIELD_COLORMAP,
        rescale=FIELD_RESCALE,
        lineage=lineage,
        stats={"width": FIELD_SIZE, "height": FIELD_SIZE},
    )
    LayerCatalogue(settings.layers_dir).add(layer)
    return out, layer


def tile_list(bounds: tuple[float, float, float, float]) -> list[tuple[int, int, int]]:
    """Every WebMercatorQuad tile touching the layer's bounds at :data:`TILE_ZOOMS`."""
    import morecantile

    tms = morecantile.tms.get("WebMercatorQuad")
    return [(t.z, t.x, t.y) for t in tms.tiles(*bounds, zooms=list(TILE_ZOOMS))]


def wrk_paths(
    url: str, paths_file: Path, *, connections: int, seconds: float, count_cache: bool = False
) -> dict[str, float]:
    """One bounded wrk run over the tile paths in ``paths_file`` (rotating)."""
    env = {**os.environ, "WRK_PATHS": str(paths_file)}
    if count_cache:
        env["WRK_COUNT_CACHE"] = "1"
    threads = min(connections, 2)
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s"]
    res = subprocess.run(
        [*cmd, "-s", str(TILES_WRK), url], env=env, capture_output=True, text=True, check=False
    )
    if res.returncode != 0:
        raise RuntimeError(
            f"wrk failed ({res.returncode}): {res.stdout[-500:]} {res.stderr[-500:]}"
        )
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("{"))
    return dict(json.loads(line))


def paired_latency(
    bases: dict[str, str], paths: dict[str, list[str]], names: tuple[str, str], passes: int
) -> dict[str, Any]:
    """One tile at a time, each tile asked of both servers back to back (order alternating).

    Slow drifts in the machine's load hit both members of a pair alike, so the
    median of the per-pair ratios is steadier than comparing separate runs.
    """
    import httpx

    a, b = names
    times: dict[str, list[float]] = {a: [], b: []}
    ratios: list[float] = []
    with httpx.Client(timeout=30) as client:
        count = len(paths[a])
        for i in range(passes * count):
            order = (a, b) if i % 2 == 0 else (b, a)
            took = {}
            for name in order:
                started = time.perf_counter()
                res = client.get(bases[name] + paths[name][i % count])
                took[name] = (time.perf_counter() - started) * 1000
                if res.status_code != 200:
                    raise RuntimeError(f"{name}: {res.status_code} {res.text[:200]}")
            for name in names:
                times[name].append(took[name])
            ratios.append(took[b] / took[a])
    q = statistics.quantiles
    return {
        "pairs": len(ratios),
        "p50_ms": {n: statistics.median(t) for n, t in times.items()},
        "p95_ms": {n: q(t, n=20)[-1] for n, t in times.items()},
        "ratio_median": statistics.median(ratios),
        "ratio_iqr": (q(ratios, n=4)[0], q(ratios, n=4)[2]),
    }


def _sample_tiles(
    bases: dict[str, str], paths: dict[str, list[str]], picks: list[int]
) -> dict[str, Any]:
    """Fetch a few tiles from every server: status, type, headers, same bytes?"""
    import httpx

    report: dict[str, Any] = {"identical": True, "checked": len(picks), "headers": {}}
    for i in picks:
        bodies = {}
        for name, base in bases.items():
            res = httpx.get(base + paths[name][i], timeout=30)
            if res.status_code != 200 or not res.headers.get("content-type", "").startswith(
                "image/png"
            ):
                raise RuntimeError(f"{name} {paths[name][i]} → {res.status_code}: {res.text[:300]}")
            bodies[name] = res.content
            report["headers"][name] = {
                k: v
                for k, v in res.headers.items()
                if k.lower().startswith(("x-", "etag", "cache-control"))
            }
        if len(set(bodies.values())) != 1:
            report["identical"] = False
    return report


def tiles_benchmark(
    home: Path, env: dict[str, str], layer: Any, rounds: int, seconds: float, workdir: Path
) -> dict[str, Any]:
    """Bare TiTiler vs terraops (cache off) vs terraops (cache on), interleaved rounds."""
    from urllib.parse import quote

    from terraops.api.app import SERVING_SWITCH_INTERVAL_S

    tiles = tile_list(tuple(layer.bounds))
    lo, hi = layer.rescale
    query = f"colormap_name={layer.colormap}&rescale={lo:g},{hi:g}"
    cog_url = quote(layer.path, safe="")
    paths = {
        "bare TiTiler": [
            f"/cog/tiles/WebMercatorQuad/{z}/{x}/{y}.png?url={cog_url}&{query}" for z, x, y in tiles
        ],
        "terraops, cache off": [f"/layers/{layer.id}/tiles/{z}/{x}/{y}.png" for z, x, y in tiles],
    }
    paths["terraops, cache on"] = paths["terraops, cache off"]
    files: dict[str, Path] = {}
    for name, lines in paths.items():
        files[name] = workdir / f"paths-{len(files)}.txt"
        files[name].write_text("\n".join(lines) + "\n")
    ports = {name: free_port() for name in paths}
    uvicorn = [str(BIN / "uvicorn"), "--host", "127.0.0.1", "--workers", "2"]
    uvicorn += ["--no-access-log", "--log-level", "warning"]
    serve = [str(BIN / "terraops"), "serve", "--host", "127.0.0.1", "--workers", "2"]
    servers = {
        "bare TiTiler": (
            [*uvicorn, "bench.titiler_app:create_titiler_app", "--factory"],
            "/healthz",
            {"BENCH_SWITCH_INTERVAL_S": str(SERVING_SWITCH_INTERVAL_S)},
        ),
        "terraops, cache off": (serve, "/readyz", {"TERRAOPS_TILE_CACHE_MB": "0"}),
        "terraops, cache on": (serve, "/readyz", {"TERRAOPS_TILE_CACHE_MB": "256"}),
    }
    bases = {name: f"http://127.0.0.1:{ports[name]}" for name in servers}
    logs = {name: workdir / f"server-{i}.log" for i, name in enumerate(servers)}
    c1: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    c4: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    warm: list[dict[str, float]] = []
    began = time.monotonic()
    with ExitStack() as stack:
        for name, (cmd, ready, extra) in servers.items():
            stack.enter_context(
                running_server(
                    [*cmd, "--port", str(ports[name])],
                    ready_url=bases[name] + ready,
                    env={**env, **SERVER_ENV, **extra, "PYTHONPATH": str(ROOT)},
                    timeout_s=180,
                    log_path=logs[name],
                )
            )
        _say(f"tile servers up after {time.monotonic() - began:.0f} s")
        sample = _sample_tiles(bases, paths, [0, len(tiles) // 2, len(tiles) - 1])
        for name in ("bare TiTiler", "terraops, cache off"):
            wrk_paths(bases[name], files[name], connections=4, seconds=2)
        # Fill the cache of both workers (each has its own): passes over the whole list
        # until one pass sees no miss — the kernel spreads each pass's new connections
        # over the workers, so a worker left cold by one pass is filled by the next.
        cached = "terraops, cache on"
        deadline = time.monotonic() + WARMUP_LIMIT_S
        while time.monotonic() < deadline:
            warm.append(
                wrk_paths(
                    bases[cached], files[cached], connections=4, seconds=seconds, count_cache=True
                )
            )
            if warm[-1]["cache_misses"] == 0 and warm[-1]["cache_hits"] > 0:
                break
        _say(f"tile cache warm after {len(warm)} passes, {time.monotonic() - began:.0f} s")
        for round_no in range(rounds):
            for name in servers:
                _say(f"tiles round {round_no + 1}/{rounds}: {name}")
                c1[name].append(wrk_paths(bases[name], files[name], connections=1, seconds=seconds))
                c4[name].append(wrk_paths(bases[name], files[name], connections=4, seconds=seconds))
        check = wrk_paths(
            bases[cached], files[cached], connections=4, seconds=seconds, count_cache=True
        )
        _say("paired c1 pass: bare TiTiler / terraops, cache off")
        paired = paired_latency(bases, paths, ("bare TiTiler", "terraops, cache off"), 1)
        _say(f"tile rounds done after {time.monotonic() - began:.0f} s; stopping the servers")
    _say(f"tile servers stopped after {time.monotonic() - began:.0f} s")
    zooms = {z: sum(1 for t in tiles if t[0] == z) for z in TILE_ZOOMS}
    warnings = {
        name: log.read_text(errors="replace").count("Warning:") for name, log in logs.items()
    }
    return {
        "c1": {name: median_of(runs) for name, runs in c1.items()},
        "c4": {name: median_of(runs) for name, runs in c4.items()},
        "all_c4_rps": {name: [r["rps"] for r in runs] for name, runs in c4.items()},
        "all_c1_p50": {name: [r["p50_ms"] for r in runs] for name, runs in c1.items()},
        "tiles": len(tiles),
        "zooms": zooms,
        "sample": sample,
        "warmup": warm,
        "cache_check": check,
        "example": {name: lines[0] for name, lines in paths.items()},
        "paired": paired,
        "stderr_warnings": warnings,
    }


# --------------------------------------------------------------------------- predict-raster
def predict_child(home: Path, scene: Path, out: Path) -> dict[str, Any]:
    """Run in its own process: UHI predict-raster of ``scene``, with this process's peak RSS.

    Peaks come from ``/proc/self/status`` (``VmHWM``), not ``ru_maxrss``: on Linux
    an exec'd child's ``ru_maxrss`` starts at the high-water mark of the process
    that forked it (the benchmark driver, hundreds of MiB), which would hide the
    child's own peak.
    """
    from terraops.pipelines.maps.raster_predict import choose_model, predict_raster
    from terraops.services import get_service
    from terraops.settings import Settings

    settings = Settings(home=home)
    definition = get_service("uhi")
    choose_model(settings, definition, None)
    loaded_peak_kb = _proc_status_kb("VmHWM")
    loaded_kb = _proc_status_kb("VmRSS")
    # Reset the high-water mark (Linux ≥ 4.0): what follows is the predict step's own peak.
    reset = _reset_peak_rss()
    result = predict_raster(settings, definition, scene, out=out)
    step_peak_kb = _proc_status_kb("VmHWM")
    return {
        "seconds": result["seconds"],
        "megapixels_per_s": result["megapixels_per_s"],
        "grid": result["grid"],
        "cells": result["cells"],
        "rss_loaded_mb": loaded_kb / 1024,
        "rss_peak_mb": max(loaded_peak_kb, step_peak_kb) / 1024,
        "rss_step_peak_mb": step_peak_kb / 1024,
        "step_peak_is_own": reset,
    }


def _proc_status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


TIME_V = Path("/usr/bin/time")
"""GNU time: ``-v`` reports the child's maximum resident set size (whole process)."""


def time_v_max_rss_mb(stderr: str) -> float | None:
    """The 'Maximum resident set size (kbytes)' of GNU ``time -v`` output, in MiB."""
    for line in stderr.splitlines():
        if "Maximum resident set size" in line:
            return int(line.rsplit(":", 1)[1]) / 1024
    return None


def _run_child(home: Path, env: dict[str, str], scene: Path, out: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.maps", "predict-child", str(home), str(scene), str(out)]
    if TIME_V.exists():
        cmd = [str(TIME_V), "-v", *cmd]
    started = time.perf_counter()
    res = subprocess.run(
        cmd, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    if res.returncode != 0:
        raise RuntimeError(f"predict-raster child failed:\n{res.stderr[-3000:]}")
    result = dict(json.loads(res.stdout.strip().splitlines()[-1]))
    result["process_s"] = time.perf_counter() - started
    result["time_v_rss_mb"] = time_v_max_rss_mb(res.stderr)
    return result


def _median_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known and len(known) == len(values) else None


def raster_benchmark(
    home: Path, env: dict[str, str], sizes: tuple[int, ...], warm_runs: int
) -> dict[str, Any]:
    """Per size: a fresh scene, one cold run (builds the cell table), then cached runs."""
    from terraops.pipelines.scenes.generate import generate_scene

    results: dict[int, dict[str, Any]] = {}
    for index, size in enumerate(sizes):
        scene = home / "bench-scenes" / f"city{size}"
        generated_s = None
        if scene.exists():
            for cached in [*scene.glob("cells_*.parquet"), *scene.glob("hydrology_*.npz")]:
                cached.unlink()  # a reused home: make it cold again
        else:
            _say(f"generating a {size}² scene")
            started = time.perf_counter()
            generate_scene(scene, seed=40 + index, size=size, resolution=2.0, morphology="dense")
            generated_s = time.perf_counter() - started
        out = home / "bench-raster" / f"uhi-{size}.tif"
        _say(f"predict-raster {size}²: cold")
        cold = _run_child(home, env, scene, out)
        warm = []
        for run in range(warm_runs):
            _say(f"predict-raster {size}²: cached {run + 1}/{warm_runs}")
            warm.append(_run_child(home, env, scene, out))
        results[size] = {
            "cold": cold,
            "cached": {
                key: statistics.median(r[key] for r in warm)
                for key in (
                    "seconds",
                    "megapixels_per_s",
                    "rss_loaded_mb",
                    "rss_peak_mb",
                    "rss_step_peak_mb",
                    "process_s",
                )
            }
            | {"time_v_rss_mb": _median_or_none([r["time_v_rss_mb"] for r in warm])},
            "cached_runs": warm,
            "grid": cold["grid"],
            "generated_s": generated_s,
        }
    return {"sizes": results, "warm_runs": warm_runs}


# --------------------------------------------------------------------------- entry points
def run_maps(
    home: Path,
    env: dict[str, str],
    args: argparse.Namespace,
    header: Callable[[float], str],
    emit: Callable[[str, str], None],
) -> None:
    """Every selected map section, each handed to ``emit(name, markdown)`` once measured."""

    sections = set(args.sections)
    work = Path(tempfile.mkdtemp(prefix="terraops-bench-maps-"))
    try:
        src = write_source_raster(work / "field-4096.tif")
        if "cog" in sections:
            started = time.monotonic()
            cog = cog_benchmark(src, work / "cogs", args.cog_runs)
            emit("cog", render_cog(cog, header(time.monotonic() - started)))
        if "tiles" in sections:
            started = time.monotonic()
            _, layer = register_field_layer(home, src)
            tiles = tiles_benchmark(home, env, layer, args.tile_rounds, args.tile_seconds, work)
            emit("tiles", render_tiles(tiles, header(time.monotonic() - started)))
        if "raster" in sections:
            started = time.monotonic()
            sizes = tuple(int(s) for s in args.raster_sizes)
            raster = raster_benchmark(home, env, sizes, args.raster_runs)
            emit("raster", render_raster(raster, header(time.monotonic() - started)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "predict-child":
        home, scene, out = (Path(a) for a in sys.argv[2:])
        print(json.dumps(predict_child(home, scene, out)))
        return 0
    print("usage: python -m bench.maps predict-child HOME SCENE OUT (make bench runs the rest)")
    return 2


if __name__ == "__main__":
    sys.exit(main())
