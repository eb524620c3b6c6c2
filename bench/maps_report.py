"""Markdown for the map benchmarks of ``bench/maps.py`` (one section each in BENCHMARKS.md).

Every section states what was compared, how, and the verdict against the
target, with the raw per-round values where noise matters.
"""

from __future__ import annotations

from typing import Any

from bench.maps_field import (
    FIELD_COLORMAP,
    FIELD_LAYER_ID,
    FIELD_RESCALE,
    FIELD_RESOLUTION_M,
    FIELD_SIZE,
)


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def render_tiles(res: dict[str, Any], header: str) -> str:
    c1, c4 = res["c1"], res["c4"]
    bare, off, on = "bare TiTiler", "terraops, cache off", "terraops, cache on"
    zooms = ", ".join(f"z{z}: {n}" for z, n in res["zooms"].items())
    lines = [
        "## Tiles: terraops vs bare TiTiler on the same COG",
        "",
        header,
        f"COG: {FIELD_SIZE}² float32 synthetic field (smooth gradients + 8×8-px cell texture), "
        f"EPSG:32633 at {FIELD_RESOLUTION_M:g} m, written by `terraops.adapters.cog.write_cog` "
        f"and registered as catalogue layer `{FIELD_LAYER_ID}` (colormap `{FIELD_COLORMAP}`, "
        f"rescale {FIELD_RESCALE[0]:g}–{FIELD_RESCALE[1]:g}). Tiles: 256² PNG, the "
        f"{res['tiles']} WebMercatorQuad tiles touching the COG ({zooms}), requested in rotation "
        "by wrk (`bench/wrk_tiles.lua`).  ",
        "Servers, all up at once: bare TiTiler (`bench/titiler_app.py`: one `TilerFactory`, "
        f"`{res['example'][bare].split('?')[0]}?url=…&colormap_name={FIELD_COLORMAP}&rescale="
        f"{FIELD_RESCALE[0]:g},{FIELD_RESCALE[1]:g}`), terraops "
        f"`{res['example'][off]}` with `TERRAOPS_TILE_CACHE_MB=0`, and terraops with the cache "
        "on (256 MB per worker, filled by warm-up passes: repeated views of the same tiles). "
        "Each: uvicorn, 2 workers, `OMP_NUM_THREADS=1`, `GDAL_CACHEMAX=200`, "
        "`GDAL_NUM_THREADS=1`, `GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR`, and the 0.5 ms GIL "
        "switch interval terraops' serving processes set (given to TiTiler too, so the "
        "comparison isolates what the tile route adds). "
        "c1 = 1 connection (one tile at a time: latency), c4 = 4 connections (both workers busy: "
        "throughput). Medians over interleaved rounds.",
        "",
        "| server | c1 p50 ms | c1 p95 ms | c1 tiles/s | c4 p50 ms | c4 p95 ms | c4 tiles/s "
        "| errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in c1:
        a, b = c1[name], c4[name]
        lines.append(
            f"| {name} | {a['p50_ms']:.1f} | {a['p95_ms']:.1f} | {a['rps']:.1f} | "
            f"{b['p50_ms']:.1f} | {b['p95_ms']:.1f} | {b['rps']:.1f} | "
            f"{a['errors'] + b['errors']:.0f} |"
        )
    paired = res["paired"]
    r_p50 = c1[off]["p50_ms"] / c1[bare]["p50_ms"]
    r_p95 = c1[off]["p95_ms"] / c1[bare]["p95_ms"]
    r_c4p50 = c4[off]["p50_ms"] / c4[bare]["p50_ms"]
    r_rps = c4[off]["rps"] / c4[bare]["rps"]
    overhead = max(paired["ratio_median"] - 1, 1 / r_rps - 1)
    cached_ratio = c4[on]["rps"] / c4[bare]["rps"]
    check = res["cache_check"]
    sample = res["sample"]
    warm = res["warmup"]
    lines += [
        "",
        f"- Uncached, terraops ÷ bare TiTiler: c1 p50 **{r_p50:.2f}×**, c1 p95 {r_p95:.2f}×, "
        f"c4 p50 {r_c4p50:.2f}×, c4 tiles/s **{r_rps:.2f}×** — overhead "
        f"**{overhead:+.0%}** by the worse of the paired per-tile ratio (below) and c4 "
        "throughput, negative = terraops faster "
        f"(target ≤ 10 %: {_verdict(overhead <= 0.10)}).",
        f"- Paired, one tile at a time ({paired['pairs']} tiles, each asked of both servers "
        f"back to back, order alternating): p50 {paired['p50_ms'][bare]:.1f} ms bare TiTiler vs "
        f"{paired['p50_ms'][off]:.1f} ms terraops, p95 {paired['p95_ms'][bare]:.1f} vs "
        f"{paired['p95_ms'][off]:.1f} ms; median per-tile ratio terraops ÷ TiTiler "
        f"**{paired['ratio_median']:.2f}** (interquartile {paired['ratio_iqr'][0]:.2f}–"
        f"{paired['ratio_iqr'][1]:.2f}).",
        f"- Cached, repeated views: **{cached_ratio:.0f}×** bare TiTiler's tiles/s at c4 "
        f"({c4[on]['rps']:.0f} vs {c4[bare]['rps']:.1f}; target ≥ 10×: "
        f"{_verdict(cached_ratio >= 10)}); c1 p50 {c1[on]['p50_ms']:.2f} ms vs "
        f"{c1[bare]['p50_ms']:.1f} ms.",
        f"- Cache check after the rounds (c4, {check['requests']} requests): "
        f"{check['cache_hits']} `X-Tile-Cache: hit`, {check['cache_misses']} miss. Warm-up: "
        f"{len(warm)} passes ({sum(w['requests'] for w in warm)} requests, last with "
        f"{warm[-1]['cache_misses']} misses).",
        "- Server stderr: "
        + ", ".join(f"{n} {c} warning lines" for n, c in res["stderr_warnings"].items())
        + " (kept in files by the harness: a pipe nobody reads would block a chatty server).",
        f"- Same picture: {sample['checked']} sampled tiles were "
        + ("byte-identical PNGs" if sample["identical"] else "**not** byte-identical PNGs")
        + " from the three servers (the same rio-tiler render). c4 tiles/s in each round: "
        + "; ".join(
            f"{name} {', '.join(f'{v:.0f}' for v in vals)}"
            for name, vals in res["all_c4_rps"].items()
        )
        + ".",
    ]
    return "\n".join(lines) + "\n"


def render_cog(res: dict[str, Any], header: str) -> str:
    times, sizes = res["median_s"], res["bytes"]
    ours = next(iter(times))
    gdal = "GDAL COG driver, defaults"
    gdal_deflate = "GDAL COG driver, `COMPRESS=DEFLATE`"
    lines = [
        "## COG writing: 4096² float32",
        "",
        header,
        f"Input: the same {FIELD_SIZE}² float32 field as the tiles, as a plain tiled "
        f"uncompressed GeoTIFF ({res['input_bytes'] / 2**20:.0f} MiB, in the page cache); "
        f"{res['runs']} runs of each writer, interleaved, after one warm-up write; median "
        "wall time. terraops' time includes its `rio_cogeo.cog_validate` check and the atomic "
        "rename.",
        "",
        "| writer | median s | runs s | size MiB | valid COG | speed vs GDAL defaults |",
        "|---|---|---|---|---|---|",
    ]
    for name, t in times.items():
        lines.append(
            f"| {name} | {t:.2f} | {', '.join(f'{v:.2f}' for v in res['all_s'][name])} | "
            f"{sizes[name] / 2**20:.1f} | {'yes' if res['valid'].get(name) else 'no'} | "
            f"{times[gdal] / t:.2f}× |"
        )
    threaded = "GDAL COG driver, `COMPRESS=DEFLATE NUM_THREADS=ALL_CPUS`"
    lines += [
        "",
        f"- terraops ÷ GDAL's COG driver, time: **{times[ours] / times[gdal]:.2f}×** its "
        f"defaults (LZW, no predictor, 1 thread) — {_verdict(times[ours] <= times[gdal])} "
        f"(target: no slower); {times[ours] / times[gdal_deflate]:.2f}× GDAL + DEFLATE; "
        f"{times[ours] / times[threaded]:.2f}× GDAL + DEFLATE on all cores. Size: "
        f"{sizes[ours] / sizes[gdal]:.2f}× the defaults' file, "
        f"{sizes[ours] / sizes[gdal_deflate]:.2f}× DEFLATE's (the floating-point predictor).",
        "- terraops writes through the same GDAL driver; its options (DEFLATE + "
        "`PREDICTOR=FLOATING_POINT` + `NUM_THREADS=ALL_CPUS`, 256 px blocks, average "
        "overviews) are what differ, plus the validation "
        f"(`cog_validate`, {res['validate_s'] * 1000:.0f} ms of its time).",
    ]
    return "\n".join(lines) + "\n"


def _mib(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def _flat_memory_lines(sizes: dict[int, Any], order: list[int]) -> list[str]:
    """The first (cold) call's whole-process peak at each size against the smallest's."""
    base = sizes[order[0]]["cold"].get("time_v_rss_mb")
    if base is None or len(order) < 2:
        return [""]
    peaks = [sizes[s]["cold"]["time_v_rss_mb"] for s in order]
    worst = max(p / base for p in peaks[1:])
    ratios = ", ".join(f"{s}²: {p / base:.2f}×" for s, p in zip(order[1:], peaks[1:], strict=True))
    return [
        "",
        f"- Flat memory, first call (`time -v` max RSS of the whole process, cold) against "
        f"{order[0]}²: {ratios} — goal ≤ 1.3× ({_verdict(worst <= 1.3)}).",
    ]


def render_raster(res: dict[str, Any], header: str) -> str:
    lines = [
        "## predict-raster: UHI champion over a whole scene",
        "",
        header,
        "Scenes generated for the benchmark (dense morphology, 2 m pixels, 20 m cells; never "
        "trained on). Each run is its own process calling `predict_raster(settings, uhi, scene)` "
        "as `terraops predict-raster uhi --scene DIR` does — stream the cell table, predict "
        "every cell, write the prediction + intensity COGs, hot-spot GeoJSON, catalogue "
        "layers — after the process has imported everything and loaded the model once, so "
        "'s' is the call's own time; 'process s' is the child's whole wall time (interpreter, "
        "imports — MLflow alone ≈ 3 s —, model load and the call), what a CLI user waits. "
        "Cold = the first run on a freshly generated scene: it builds and caches the cell table "
        "(features from the imagery and DEM, flood terrain) and writes the RGB imagery layer. "
        f"Cached = the table already on disk (median of {res['warm_runs']} runs). Mpx/s = scene "
        "pixels / seconds of the call. Step peak = the process's RSS high-water mark reset "
        "after the model load (`/proc/self/clear_refs`) and read after the call (`VmHWM`); "
        "'loaded' = RSS before the call; process peak = the whole process's `VmHWM` "
        "(not `ru_maxrss`, which an exec'd child inherits from the process that forked it); "
        "`time -v` = the maximum resident set size `/usr/bin/time -v` reports for the whole "
        "child process. The cell table is built window by window (neighbourhood features with "
        "a halo, hydrology once per scene on its ≤ 256² grid, cached in the scene folder).",
        "",
        "| scene | cells | run | s | Mpx/s | loaded RSS MiB | step peak MiB | process peak MiB "
        "| `time -v` max RSS MiB | process s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    sizes = res["sizes"]
    for size, r in sizes.items():
        for label, run in (("cold", r["cold"]), ("cached", r["cached"])):
            lines.append(
                f"| {size}² px ({size * 2 / 1000:.1f} km) | {r['grid'][0]}×{r['grid'][1]} | "
                f"{label} | {run['seconds']:.2f} | {run['megapixels_per_s']:.2f} | "
                f"{run['rss_loaded_mb']:.0f} | {run['rss_step_peak_mb']:.0f} | "
                f"{run['rss_peak_mb']:.0f} | {_mib(run.get('time_v_rss_mb'))} | "
                f"{run['process_s']:.1f} |"
            )
    order = sorted(sizes)
    lines += _flat_memory_lines(sizes, order)
    if len(order) >= 2:
        small, large = sizes[order[0]], sizes[order[-1]]
        ratio = (order[-1] / order[0]) ** 2

        def growth(run: dict[str, Any]) -> float:
            return float(run["rss_step_peak_mb"] - run["rss_loaded_mb"])

        lines += [
            f"- Cached, {ratio:.0f}× the pixels: the predict step's peak is "
            f"{growth(small['cached']):.0f} MiB above the loaded process at {order[0]}² and "
            f"{growth(large['cached']):.0f} MiB at {order[-1]}² "
            f"(cell grids {small['grid'][0]}² → {large['grid'][0]}²); "
            f"{small['cached']['megapixels_per_s']:.2f} → "
            f"{large['cached']['megapixels_per_s']:.2f} Mpx/s.",
            f"- Cold: {growth(small['cold']):.0f} → {growth(large['cold']):.0f} MiB above the "
            "loaded process (the cell table is built once per scene, window by window).",
        ]
    return "\n".join(lines) + "\n"
