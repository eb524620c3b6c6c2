"""What a job costs on named cloud instances, from throughputs already in BENCHMARKS.md.

Consultants quote a price per job — a million predictions, 100 km² mapped, 100
km² of footprints — not requests per second. This script measures nothing: it
reads the measured throughputs from their sections of BENCHMARKS.md (api,
batch, raster, segmentation, gpu), so each figure keeps one source, and turns
them into hours and US dollars at the hourly prices assumed in ``INSTANCES``.
A figure missing from its section stops the script with a message naming the
section, rather than a quote made from a guess.

Scaling from the measured machine to an instance with more vCPUs is an
assumption (linear in vCPUs for CPU-bound work), stated in the output beside
the measured machine's own figure.

``python bench/costs.py --out BENCHMARKS.md`` writes its section (``costs``).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import machine_description, replace_section  # noqa: E402

PRICES_AS_OF = (
    "AWS us-east-1, Linux, on-demand, list prices as published in 2024–2025 and not "
    "re-checked on the day of the run: check the current price list before quoting"
)


@dataclass(frozen=True)
class Instance:
    """A named instance type and the hourly price assumed for it."""

    name: str
    vcpus: int
    usd_per_h: float
    note: str = ""


CPU_INSTANCES = (
    Instance("c7i.large", 2, 0.08925, "1 physical core, 2 hyper-threads"),
    Instance("c7i.4xlarge", 16, 0.714),
    Instance("c7i.16xlarge", 64, 2.856),
)
GPU_INSTANCES = (
    Instance("p5.48xlarge, one GPU's share", 24, 98.32 / 8, "1 × H100; USD 98.32/h ÷ 8 GPUs"),
    Instance("g5.xlarge", 4, 1.006, "1 × A10G, 4 vCPU"),
)

MILLION = 1_000_000
AREA_KM2 = 100.0
SEGMENT_PIXEL_M = 0.5


class MissingFigure(ValueError):
    """A figure the costs need is not in its BENCHMARKS.md section."""


def section(text: str, name: str) -> str:
    """The text between ``<!-- bench:name -->`` and ``<!-- /bench:name -->``."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    if start not in text or end not in text:
        raise MissingFigure(
            f"BENCHMARKS.md has no section '{name}' ({start} … {end}): run the benchmark "
            "that writes it first (`make bench`)"
        )
    return text.split(start, 1)[1].split(end, 1)[0]


def tables(body: str) -> list[list[dict[str, str]]]:
    """Every markdown table of a section, each as rows keyed by the header's cells."""
    found: list[list[dict[str, str]]] = []
    lines = body.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.startswith("|") and lines[i + 1].startswith("|---"):
            header = [c.strip() for c in line.strip("|").split("|")]
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                cells = [c.strip() for c in row.strip("|").split("|")]
                rows.append(dict(zip(header, cells, strict=False)))
            found.append(rows)
    return found


def number(cell: str, name: str, what: str) -> float:
    """A table cell as a number ('79,000' → 79000.0); an error naming the section if not."""
    match = re.search(r"-?\d[\d,]*(?:\.\d+)?", cell.replace(" ", ""))
    if not match:
        raise MissingFigure(f"section '{name}': {what} is '{cell}', not a number")
    return float(match.group().replace(",", ""))


def column(body: str, name: str, must: Sequence[str], what: str) -> list[dict[str, str]]:
    """The rows of the first table whose header has every column in ``must``."""
    for rows in tables(body):
        if rows and all(any(m == key for key in rows[0]) for m in must):
            return rows
    raise MissingFigure(
        f"section '{name}' has no table with the columns {', '.join(must)} ({what})"
    )


def machine_cores(body: str, name: str) -> tuple[str, int]:
    """The section's 'Machine:' text and its core count (logical CPUs, as os.cpu_count)."""
    match = re.search(r"Machine: (.+?),\s*(\d+) cores", body)
    if not match:
        raise MissingFigure(f"section '{name}' names no machine ('Machine: …, N cores')")
    return f"{match.group(1)}, {match.group(2)} cores", int(match.group(2))


@dataclass(frozen=True)
class Throughput:
    """One measured throughput, where it came from, and how it was counted."""

    section: str
    per_s: float
    unit: str
    counted: str
    machine: str
    cores: int
    shown_per: float = 1.0
    """Multiplier from per second to the unit shown (3600 for a figure per hour)."""


def point_predictions(text: str) -> Throughput:
    body = section(text, "api")
    rows = column(body, "api", ("server", "c16 req/s"), "the point route's throughput")
    row = next((r for r in rows if r["server"] == "terraops"), None)
    if row is None:
        raise MissingFigure("section 'api': no 'terraops' row in the table with c16 req/s")
    machine, cores = machine_cores(body, "api")
    counted = "one prediction per request, 16 connections, wrk on the same cores"
    return Throughput("api", number(row["c16 req/s"], "api", "c16 req/s"), "predictions/s",
                      counted, machine, cores)  # fmt: skip


def batch_predictions(text: str) -> Throughput:
    body = section(text, "batch")
    rows = column(body, "batch", ("body", "rows", "rows/s"), "rows/s per body format")
    best = max(rows, key=lambda r: number(r["rows/s"], "batch", "rows/s"))
    machine, cores = machine_cores(body, "batch")
    counted = f"best body format and size ({best['body']}, {best['rows']} rows a request)"
    return Throughput("batch", number(best["rows/s"], "batch", "rows/s"), "rows/s", counted,
                      machine, cores)  # fmt: skip


def mapping(text: str) -> Throughput:
    """km²/s for UHI + flood: the cold run (cell table + UHI) plus one cached predict (flood)."""
    body = section(text, "raster")
    rows = column(body, "raster", ("scene", "run", "Mpx/s"), "predict-raster Mpx/s")
    pixel = re.search(r"(\d+(?:\.\d+)?) m pixels", body)
    cell = re.search(r"(\d+(?:\.\d+)?) m cells", body)
    if not pixel or not cell:
        raise MissingFigure("section 'raster' states no pixel size ('N m pixels, M m cells')")
    by_scene: dict[str, dict[str, float]] = {}
    for r in rows:
        by_scene.setdefault(r["scene"], {})[r["run"]] = number(r["Mpx/s"], "raster", "Mpx/s")
    whole = {s: v for s, v in by_scene.items() if {"cold", "cached"} <= set(v)}
    if not whole:
        raise MissingFigure("section 'raster': no scene with both a cold and a cached run")
    scene = max(whole, key=lambda s: number(s, "raster", "scene size"))
    cold, cached = whole[scene]["cold"], whole[scene]["cached"]
    px_m = float(pixel.group(1))
    mpx_per_s = 1.0 / (1.0 / cold + 1.0 / cached)
    machine, cores = machine_cores(body, "raster")
    counted = (
        f"scene {scene} at {px_m:g} m pixels, {cell.group(1)} m cells: the cold run (cell "
        f"table incl. flood terrain + UHI, {cold:g} Mpx/s) plus a second predict on the cached "
        f"table standing for flood ({cached:g} Mpx/s, assumed equal to UHI's); process "
        f"start-up and model load (once per job) left out; area = scene pixels × ({px_m:g} m)², "
        "so imagery at another pixel size changes the figure"
    )
    return Throughput("raster", mpx_per_s * px_m**2, "km²/h", counted, machine, cores, 3600.0)


def segmentation_cpu(text: str) -> Throughput:
    body = section(text, "segmentation")
    rows = column(body, "segmentation", ("image", "megapixels"), "end-to-end MP/s")
    mp_col = next((k for k in rows[0] if "MP/s" in k), None)
    if mp_col is None:
        raise MissingFigure("section 'segmentation': the end-to-end table has no MP/s column")
    largest = max(rows, key=lambda r: number(r["megapixels"], "segmentation", "megapixels"))
    machine, cores = machine_cores(body, "segmentation")
    engine = re.search(r"--engine ([\w-]+)", body)
    counted = (
        f"`terraops segment predict` end to end ({engine.group(1) if engine else 'CPU'}, "
        f"GeoTIFF → mask COG + polygons), its largest image ({largest['image']})"
    )
    mp_s = number(largest[mp_col], "segmentation", mp_col)
    return Throughput("segmentation", mp_s, "MP/s", counted, machine, cores)


def segmentation_gpu(text: str) -> Throughput | None:
    """The GPU end-to-end MP/s, or None where the section holds no such measurement."""
    body = section(text, "gpu")
    best: float | None = None
    for bullet in re.split(r"\n\s*\n|\n- ", body):
        if re.search(r"end to end", bullet, re.IGNORECASE):
            found = re.search(r"(\d+(?:\.\d+)?)\s*MP/s", bullet)
            if found and (best is None or float(found.group(1)) > best):
                best = float(found.group(1))
    if best is None:
        return None
    device = re.search(r"NVIDIA [A-Z]+\d+\w*", body)
    cpus = re.search(r"(\d+) CPUs", body)
    machine = f"{device.group() if device else 'a lent GPU'}, {cpus.group(1) if cpus else '?'} CPUs"
    counted = "`segment_image` end to end (reads, model, blending, mask COG, polygons)"
    return Throughput("gpu", best, "MP/s", counted, machine, int(cpus.group(1)) if cpus else 0)


@dataclass(frozen=True)
class Workload:
    """A job to price: how much work, and the measured throughput it is done at."""

    title: str
    label: str
    work: float
    measured: Throughput


def hours(work: float, per_s: float) -> float:
    return work / per_s / 3600.0


def figure(x: float) -> str:
    """Three significant figures, thousands separated, never in e-notation."""
    if x >= 100:
        return f"{x:,.0f}"
    return f"{float(f'{x:.3g}'):g}"


def duration(h: float) -> str:
    """Hours as a reader says them: seconds, minutes or hours."""
    if h < 1 / 60:
        return f"{figure(h * 3600)} s"
    if h < 1:
        return f"{figure(h * 60)} min"
    return f"{figure(h)} h"


def usd(x: float) -> str:
    return f"{x:.2g}" if x < 1 else f"{x:,.2f}"


def cpu_table(w: Workload) -> list[str]:
    t = w.measured
    lines = [
        "| instance | vCPU | USD/h (assumed) | throughput | time | USD per job |",
        "|---|---|---|---|---|---|",
        f"| measured: {t.machine} (section *{t.section}*) | {t.cores} | — | "
        f"{figure(t.per_s * t.shown_per)} {t.unit} | {duration(hours(w.work, t.per_s))} | — |",
    ]
    for inst in CPU_INSTANCES:
        per_s = t.per_s * inst.vcpus / t.cores
        h = hours(w.work, per_s)
        note = f" ({inst.note})" if inst.note else ""
        lines.append(
            f"| {inst.name}{note} | {inst.vcpus} | {inst.usd_per_h:.4g} | "
            f"{figure(per_s * t.shown_per)} {t.unit} (× {inst.vcpus}/{t.cores}) | {duration(h)} | "
            f"{usd(h * inst.usd_per_h)} |"
        )
    return lines


def gpu_table(w: Workload) -> list[str]:
    t = w.measured
    lines = [
        "| instance | USD/h (assumed) | throughput | time | USD per job |",
        "|---|---|---|---|---|",
    ]
    h = hours(w.work, t.per_s)
    lines.append(
        f"| measured: {t.machine} (section *{t.section}*) | — | {figure(t.per_s)} {t.unit} | "
        f"{duration(h)} | — |"
    )
    for inst in GPU_INSTANCES:
        note = f" ({inst.note})" if inst.note else ""
        lines.append(
            f"| {inst.name}{note} | {inst.usd_per_h:.4g} | {figure(t.per_s)} {t.unit} (assumed "
            f"as measured) | {duration(h)} | {usd(h * inst.usd_per_h)} |"
        )
    return lines


def render(text: str, command: str) -> str:
    """The costs section, computed from the text of BENCHMARKS.md."""
    seg_mp = AREA_KM2 * 1e6 / SEGMENT_PIXEL_M**2 / 1e6
    cpu = [
        Workload("One million point predictions (`POST /v1/uhi/predict`, one row a request)",
                 "point predictions", MILLION, point_predictions(text)),
        Workload("One million predictions in batches (`POST /v1/uhi/predict/batch`)",
                 "batch predictions", MILLION, batch_predictions(text)),
        Workload(f"{AREA_KM2:g} km² mapped (UHI + flood)", "mapping", AREA_KM2, mapping(text)),
        Workload(f"{AREA_KM2:g} km² segmented at {SEGMENT_PIXEL_M:g} m on CPU ({seg_mp:g} MP)",
                 "CPU segmentation", seg_mp, segmentation_cpu(text)),
    ]  # fmt: skip
    out = [
        "## Cost per job on named cloud instances",
        "",
        f"Machine: none measured here — arithmetic only (run on {machine_description()}); each "
        "throughput was measured on the machine its own section names, quoted in each table's "
        "first row.  ",
        f"Command: `{command}` (last step of `make bench`).  ",
        f"Prices: {PRICES_AS_OF}. Cost = work ÷ throughput × price per hour, billed for the "
        "busy hours only (no idle time, storage, transfer or start-up).  ",
        "Scaling: CPU figures are scaled from the measured machine's cores to the instance's "
        "vCPUs linearly (an assumption for CPU-bound work: the measured machine's 'cores' are "
        "logical CPUs, as vCPUs are; it was shared with other jobs, so its figures are low). "
        "Linear scaling leaves the cost per job the same across one family's sizes: a larger "
        "instance only finishes sooner.",
        "",
    ]
    for w in cpu:
        out += [f"### {w.title}", "", f"Counted: {w.measured.counted}.", "", *cpu_table(w), ""]
    gpu = segmentation_gpu(text)
    out += [f"### {AREA_KM2:g} km² segmented at {SEGMENT_PIXEL_M:g} m on a GPU ({seg_mp:g} MP)", ""]
    if gpu is None:
        out += [
            "Not measured: section *gpu* holds no end-to-end MP/s, so no GPU cost is given.",
            "",
        ]
    else:
        w = Workload("", "GPU segmentation", seg_mp, gpu)
        out += [
            f"Counted: {gpu.counted}, measured on {gpu.machine} (section *gpu*). Not scaled: "
            "that run's time went to CPU-side reads and vectorising, not the GPU, so the same "
            "MP/s is assumed on each instance below (an H100 or A10G in place of the measured "
            "GPU) — an assumption, not a measurement.",
            "",
            *gpu_table(w),
            "",
        ]
    sources = ", ".join(f"{w.label} ← *{w.measured.section}*" for w in cpu)
    out.append(
        f"Every throughput is quoted from its section of this file: {sources}"
        + (", GPU segmentation ← *gpu*." if gpu else ".")
    )
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=Path, default=ROOT / "BENCHMARKS.md",
                        help="BENCHMARKS.md to read the measured figures from.")  # fmt: skip
    parser.add_argument("--out", type=Path, help="Markdown file to write the section into.")
    args = parser.parse_args(argv)
    source = args.out if args.out and args.out.exists() else args.bench
    command = "python bench/costs.py" + (f" --out {args.out.name}" if args.out else "")
    # The section is re-read from the file it is written into, so a fresh run of the
    # benchmarks before it in `make bench` is what it quotes.
    try:
        body = render(source.read_text(encoding="utf-8"), command)
    except MissingFigure as err:
        print(f"costs: {err}", file=sys.stderr)
        return 2
    print(body)
    if args.out:
        replace_section(args.out, "costs", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
