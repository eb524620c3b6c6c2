"""`make bench`: measure terraops against its baselines, side by side, and write BENCHMARKS.md.

API benchmark (issue: UHI service): the same registered UHI model served by
  1. terraops (`terraops serve`, 2 workers),
  2. `mlflow models serve` (2 workers, OMP_NUM_THREADS=1 — its best configuration),
  3. a bare FastAPI echo endpoint on the same uvicorn stack (2 workers),
all three running at once and measured in interleaved rounds (so noise on this
2-core machine hits each alike), with wrk: latency at concurrency 1 and
throughput at concurrency 16. Medians over rounds are reported, with ratios.
In the same rounds, the batch route with ``--batch-rows``-row bodies at
concurrency 1 and 4 (rows/s), next to the echo parsing the very same body.
Then the in-process cost of one prediction and of a batch, split into its parts
(the model's own rows/s is the ceiling of the batch route).
``python bench/run.py --sections api`` runs this section alone.

Map benchmarks (``bench/maps.py``): tiles through terraops vs bare
TiTiler on the same COG (cache off and on), COG writing vs GDAL's COG driver
and rio-cogeo, predict-raster megapixels/s and peak memory at two scene sizes.
Segmentation benchmark (``bench/segmentation.py``): PyTorch eager vs
ONNX Runtime fp32 vs INT8 images/s and km²/min, INT8 IoU cost, peak memory of
``segment predict`` at three image sizes.
What-if speed (``bench/whatif_speed.py``): a 40 ha intervention on a 1024²
scene → Δ map and table, median of several runs and the split by step.
``--sections`` picks which run (all by default); each writes its own section.
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
import timeit
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    free_port,
    machine_description,
    median_of,
    replace_section,
    running_server,
    wrk,
)

BIN = Path(sys.executable).parent
#: The point call's extras measured beside the plain call: a 90 % interval and the explanation.
EXTRAS_QUERY = "interval=0.9&explain=true"
TERRAOPS = str(BIN / "terraops")


def _run(cmd: list[str], env: dict[str, str]) -> str:
    res = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    return res.stdout


def prepare_home(home: Path, size: int) -> dict[str, str]:
    """Two scenes → train UHI → promote version 1 (skipped when already there)."""
    # Only UHI is trained here; /readyz waits for every configured service.
    env = {"TERRAOPS_HOME": str(home), "TERRAOPS_SERVICES": '["uhi"]'}
    scenes = []
    for seed, morphology in ((1, "dense"), (2, "sprawl")):
        out = home / "scenes" / f"city{seed}"
        if not (out / "scene.json").exists():
            _run(
                [
                    TERRAOPS,
                    "scene",
                    "generate",
                    "--seed",
                    str(seed),
                    "--morphology",
                    morphology,
                    "--size",
                    str(size),
                    "--out",
                    str(out),
                ],
                env,
            )
        scenes.append(str(out))
    if not (home / "bench-trained").exists():
        result = json.loads(_run([TERRAOPS, "train", "uhi", "--scenes", *scenes, "--json"], env))
        _run(
            [
                TERRAOPS,
                "promote",
                "uhi",
                "--version",
                str(result["version"]),
                "--reason",
                "benchmark",
            ],
            env,
        )
        (home / "bench-trained").write_text(str(result["version"]))
    return env


def full_instance(home: Path) -> dict[str, float]:
    """One request with every feature of the UHI champion (mlflow serve requires all)."""
    from terraops.adapters.model_bundle import load_predictor
    from terraops.adapters.registry import ModelRegistry
    from terraops.services import get_service
    from terraops.settings import Settings

    registry = ModelRegistry(Settings(home=home))
    version = registry.get_alias("uhi", "champion")
    assert version is not None, "no UHI champion in the benchmark home"
    names = load_predictor(registry.fetch_model("uhi", version)).feature_names
    service = get_service("uhi")
    return {name: float(service.feature(name).example) for name in names}


def batch_body(instance: dict[str, float], rows: int, seed: int = 0) -> str:
    """``{"instances": [...]}`` of ``rows`` locations: the instance with each value
    scaled by 0.9–1.0 (every value stays inside its feature's range), so the model
    walks different tree paths rather than one cached row."""
    rng = np.random.default_rng(seed)
    names = list(instance)
    base = np.array([instance[n] for n in names])
    values = base * rng.uniform(0.9, 1.0, size=(rows, len(names)))
    records = [dict(zip(names, row, strict=True)) for row in values.tolist()]
    return json.dumps({"instances": records})


def api_benchmark(
    home: Path, env: dict[str, str], rounds: int, seconds: float, batch_rows: int = 10_000
) -> dict:
    instance = full_instance(home)
    bodies = {
        "terraops": json.dumps(instance),
        "mlflow models serve": json.dumps({"dataframe_records": [instance]}),
        "FastAPI echo": json.dumps(instance),
    }
    ports = {name: free_port() for name in bodies}
    one_thread = {"OMP_NUM_THREADS": "1"}
    servers = {
        "terraops": (
            [
                TERRAOPS,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(ports["terraops"]),
                "--workers",
                "2",
            ],
            f"http://127.0.0.1:{ports['terraops']}/readyz",
            f"http://127.0.0.1:{ports['terraops']}/v1/uhi/predict",
        ),
        "mlflow models serve": (
            [
                str(BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                "models:/uhi@champion",
                "--env-manager",
                "local",
                "-w",
                "2",
                "-h",
                "127.0.0.1",
                "-p",
                str(ports["mlflow models serve"]),
            ],
            f"http://127.0.0.1:{ports['mlflow models serve']}/ping",
            f"http://127.0.0.1:{ports['mlflow models serve']}/invocations",
        ),
        "FastAPI echo": (
            [
                str(BIN / "uvicorn"),
                "bench.echo_app:create_echo_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(ports["FastAPI echo"]),
                "--workers",
                "2",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            f"http://127.0.0.1:{ports['FastAPI echo']}/docs",
            f"http://127.0.0.1:{ports['FastAPI echo']}/echo",
        ),
    }
    # mlflow models serve execs `uvicorn` from PATH: make it this venv's.
    tracking = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    from contextlib import ExitStack

    c1: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    c16: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    # Batch route vs the echo parsing and answering the very same body.
    batch = batch_body(instance, batch_rows)
    batch_urls = {
        "terraops batch": f"http://127.0.0.1:{ports['terraops']}/v1/uhi/predict/batch",
        "FastAPI echo": servers["FastAPI echo"][2],
    }
    batch_runs: dict[str, dict[int, list[dict[str, float]]]] = {
        name: {1: [], 4: []} for name in batch_urls
    }
    # The point call with a calibrated interval and its explanation, beside the plain one.
    extras_url = f"{servers['terraops'][2]}?{EXTRAS_QUERY}"
    c1_extras: list[dict[str, float]] = []
    with ExitStack() as stack:
        for cmd, ready, _ in servers.values():
            stack.enter_context(
                running_server(
                    cmd, ready_url=ready, env={**env, **one_thread, **tracking}, timeout_s=180
                )
            )
        for name, (_, _, url) in servers.items():  # warm-up
            wrk(url, bodies[name], connections=4, threads=1, seconds=1)
        wrk(extras_url, bodies["terraops"], connections=4, threads=1, seconds=1)
        for round_no in range(rounds):
            for name, (_, _, url) in servers.items():
                print(f"round {round_no + 1}/{rounds}: {name}", file=sys.stderr)
                c1[name].append(wrk(url, bodies[name], connections=1, threads=1, seconds=seconds))
                c16[name].append(wrk(url, bodies[name], connections=16, threads=2, seconds=seconds))
                if name == "terraops":
                    c1_extras.append(
                        wrk(extras_url, bodies[name], connections=1, threads=1, seconds=seconds)
                    )
            for name, url in batch_urls.items():
                print(f"round {round_no + 1}/{rounds}: {name}, {batch_rows} rows", file=sys.stderr)
                for conns in (1, 4):
                    batch_runs[name][conns].append(
                        wrk(url, batch, connections=conns, threads=1, seconds=seconds)
                    )
    return {
        "c1": {name: median_of(runs) for name, runs in c1.items()},
        "c16": {name: median_of(runs) for name, runs in c16.items()},
        "c1_extras": median_of(c1_extras),
        "body": bodies["terraops"],
        "batch": {
            name: {conns: median_of(runs) for conns, runs in by_conns.items()}
            for name, by_conns in batch_runs.items()
        },
        "batch_rows": batch_rows,
        "batch_bytes": len(batch.encode()),
    }


def _median_us(stmt, number: int = 2000, repeat: int = 7) -> float:  # type: ignore[no-untyped-def]
    return statistics.median(timeit.repeat(stmt, number=number, repeat=repeat)) / number * 1e6


def in_process_costs(home: Path) -> dict[str, float]:
    """Where the time of one prediction goes, measured in this process."""
    import mlflow
    import pandas as pd

    from terraops.adapters.model_bundle import load_predictor
    from terraops.adapters.registry import ModelRegistry
    from terraops.api.schemas import features_model
    from terraops.services import get_service
    from terraops.settings import Settings

    settings = Settings(home=home)
    service = get_service("uhi")
    registry = ModelRegistry(settings)
    version = registry.get_alias("uhi", "champion")
    assert version is not None
    predictor = load_predictor(registry.fetch_model("uhi", version))
    model_cls = features_model(service)
    instance = full_instance(home)
    body = json.dumps(instance)
    names = predictor.feature_names
    parsed = model_cls.model_validate_json(body)
    row = np.array([[getattr(parsed, n) for n in names]], dtype=np.float64)
    batch_costs = _batch_costs(service, predictor, instance, rows=10_000)
    mlflow.set_tracking_uri(settings.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model("models:/uhi@champion")
    frame = pd.DataFrame([instance])
    return {
        "pydantic validation of the body": _median_us(lambda: model_cls.model_validate_json(body)),
        "numpy row from the validated model": _median_us(
            lambda: np.array([[getattr(parsed, n) for n in names]], dtype=np.float64)
        ),
        "LightGBM booster predict (1 row, 1 thread)": _median_us(lambda: predictor.predict(row)),
        "pandas DataFrame of one record (mlflow serve path)": _median_us(
            lambda: pd.DataFrame([instance]), number=500
        ),
        "mlflow pyfunc predict (1-row DataFrame)": _median_us(
            lambda: pyfunc.predict(frame), number=200
        ),
        **_extras_costs(predictor, row),
        **batch_costs,
    }


def _extras_costs(predictor: Any, row: np.ndarray) -> dict[str, float]:
    """µs of what ``?interval=0.9&explain=true`` adds to one point prediction."""
    from terraops.api.predict_extras import PredictExtras, extra_fields

    value = predictor.predict(row)
    both = PredictExtras(0.9, True)
    return {
        "interval + applicability (1 row)": _median_us(
            lambda: predictor.interval_with_domain(row, 0.9, value), number=500
        ),
        "TreeSHAP explanation (1 row)": _median_us(lambda: predictor.explain(row), number=500),
        "every extra as the API adds it (1 row)": _median_us(
            lambda: extra_fields(predictor, row, value, both), number=500
        ),
    }


def _batch_costs(
    service: Any, predictor: Any, instance: dict[str, float], rows: int
) -> dict[str, float]:
    """Per-row µs of each step of a ``rows``-row batch request, in this process."""
    from terraops.api.fast_inputs import FastInputs
    from terraops.api.schemas import batch_model, features_model

    body = batch_body(instance, rows)
    data = json.loads(body)
    inputs = FastInputs(service, predictor.feature_names, rows)
    matrix = inputs.records(data)
    assert matrix is not None, "the benchmark batch must pass the fast validation"
    documented = batch_model(service, features_model(service), rows)
    per_row = lambda stmt: _median_us(stmt, number=1, repeat=3) / rows  # noqa: E731
    return {
        f"batch of {rows}: json.loads, per row": per_row(lambda: json.loads(body)),
        f"batch of {rows}: column-wise validation (fast path), per row": per_row(
            lambda: inputs.records(data)
        ),
        f"batch of {rows}: pydantic validation (documented path), per row": per_row(
            lambda: documented.model_validate(data)
        ),
        f"batch of {rows}: model predict (compiled trees, 1 thread), per row": per_row(
            lambda: predictor.predict(matrix)
        ),
    }


def render(api: dict, costs: dict[str, float], args: argparse.Namespace, took_s: float) -> str:
    c1, c16 = api["c1"], api["c16"]
    ours = c16["terraops"]["rps"]
    mlf, echo = c16["mlflow models serve"]["rps"], c16["FastAPI echo"]["rps"]
    p95 = c1["terraops"]["p95_ms"]
    lines = [
        "## Prediction API: `POST /v1/uhi/predict`",
        "",
        f"Machine: {machine_description()}.  ",
        f"Command: `python bench/run.py --sections api --rounds {args.rounds} --seconds "
        f"{args.seconds:g} --size {args.size} --batch-rows {args.batch_rows}` (part of `make "
        f"bench`), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, took {took_s:.0f} s; "
        f"1-minute load average {args.load_before:.1f} before the run (other work on the "
        "same cores).  ",
        "Load: wrk on loopback; all three servers up at once, 2 uvicorn workers each, "
        "`OMP_NUM_THREADS=1`; measured in interleaved rounds, medians over rounds. "
        f"Body: `{api['body']}` (mlflow serve gets the same record as `dataframe_records`).",
        "",
        "| server | c1 p50 ms | c1 p95 ms | c1 p99 ms | c1 req/s | c16 req/s | c16 p99 ms "
        "| errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in c1:
        a, b = c1[name], c16[name]
        lines.append(
            f"| {name} | {a['p50_ms']:.3f} | {a['p95_ms']:.3f} | {a['p99_ms']:.3f} | "
            f"{a['rps']:.0f} | {b['rps']:.0f} | {b['p99_ms']:.2f} | "
            f"{a['errors'] + b['errors']:.0f} |"
        )
    extras = api["c1_extras"]
    lines.append(
        f"| terraops `?{EXTRAS_QUERY}` | {extras['p50_ms']:.3f} | {extras['p95_ms']:.3f} | "
        f"{extras['p99_ms']:.3f} | {extras['rps']:.0f} | — | — | {extras['errors']:.0f} |"
    )
    verdict = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    lines += [
        "",
        f"- c1 p95 = {p95:.3f} ms: the p95 objective of SLO.md (≤ 1.5 ms) "
        f"{verdict(p95 <= 1.5)}; ≤ 5 ms {verdict(p95 <= 5)}.",
        f"- c1 p95 with a 90 % interval and the explanation (`?{EXTRAS_QUERY}`) = "
        f"{extras['p95_ms']:.3f} ms (goal ≤ 2 ms {verdict(extras['p95_ms'] <= 2)}).",
        f"- c16 throughput vs `mlflow models serve`: **{ours / mlf:.1f}×** "
        f"(goal ≥ 5× {verdict(ours >= 5 * mlf)}).",
        f"- c16 throughput vs bare echo: **{ours / echo:.2f}×** "
        f"(goal ≥ 0.7× {verdict(ours >= 0.7 * echo)}).",
        "",
        f"Batch route `POST /v1/uhi/predict/batch`, {api['batch_rows']:,}-row bodies "
        f'({api["batch_bytes"] / 1e6:.1f} MB, `{{"instances": [...]}}`), same rounds; the echo '
        "parses and re-serialises the very same body (the JSON floor of the stack):",
        "",
        "| server | c1 req/s | c1 rows/s | c1 p50 ms | c4 req/s | c4 rows/s | c4 p50 ms | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows_per = api["batch_rows"]
    for name, by_conns in api["batch"].items():
        a, b = by_conns[1], by_conns[4]
        lines.append(
            f"| {name} | {a['rps']:.2f} | {a['rps'] * rows_per:,.0f} | {a['p50_ms']:.1f} | "
            f"{b['rps']:.2f} | {b['rps'] * rows_per:,.0f} | {b['p50_ms']:.1f} | "
            f"{a['errors'] + b['errors']:.0f} |"
        )
    best = max(by["rps"] for by in api["batch"]["terraops batch"].values()) * rows_per
    model_row_us = next((us for step, us in costs.items() if "model predict" in step), None)
    ceiling = f"{1e6 / model_row_us:,.0f}" if model_row_us else "?"
    lines += [
        "",
        f"- batch: {best:,.0f} rows/s with `instances` bodies; the model alone predicts "
        f"{ceiling} rows/s on one thread in-process (table below). Each body format, both "
        "sizes and the goal: section *Batch prediction* below.",
        "",
        "In-process cost of one prediction (median of 7 repeats):",
        "",
        "| step | µs |",
        "|---|---|",
    ]
    lines += [f"| {step} | {us:.1f} |" for step, us in costs.items()]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--home", type=Path, default=None, help="reuse a prepared home")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--size", type=int, default=512, help="scene size for the model")
    parser.add_argument(
        "--sections",
        nargs="+",
        choices=SECTIONS,
        default=list(SECTIONS),
        help="which benchmarks to run (default: all)",
    )
    parser.add_argument("--batch-rows", type=int, default=10_000, help="rows per batch body")
    parser.add_argument("--cog-runs", type=int, default=3, help="runs of each COG writer")
    parser.add_argument("--tile-rounds", type=int, default=3)
    parser.add_argument("--tile-seconds", type=float, default=3)
    parser.add_argument("--raster-sizes", nargs="+", default=["1024", "2048", "4096"])
    parser.add_argument("--raster-runs", type=int, default=2, help="cached predict-raster runs")
    parser.add_argument("--seg-rounds", type=int, default=5, help="segmentation timing rounds")
    parser.add_argument("--seg-scene-size", type=int, default=512, help="segmentation scenes")
    parser.add_argument("--seg-sizes", nargs="+", default=["512", "1024", "2048"])
    parser.add_argument("--whatif-runs", type=int, default=5, help="what-if speed runs")
    parser.add_argument(
        "--batch-sizes", nargs="+", default=["10000", "100000"], help="batch bench rows"
    )
    parser.add_argument("--batch-rounds", type=int, default=3, help="batch bench rounds")
    args = parser.parse_args()
    started = time.monotonic()
    load_before = args.load_before = os.getloadavg()[0]
    home = (args.home or Path(tempfile.mkdtemp(prefix="terraops-bench-"))).resolve()
    # The UHI home is needed by every section but segmentation (which builds its own model).
    env = prepare_home(home, args.size) if set(args.sections) - {"segmentation"} else {}
    print(f"benchmark home: {home}", file=sys.stderr)
    if "api" in args.sections:
        api = api_benchmark(home, env, args.rounds, args.seconds, args.batch_rows)
        costs = in_process_costs(home)
        text = render(api, costs, args, time.monotonic() - started)
        replace_section(args.out, "api", text)
        print(text)
    maps = [s for s in args.sections if s not in ("api", "segmentation", "whatif", "batch")]

    def header(took_s: float) -> str:
        return (
            f"Machine: {machine_description()}.  \n"
            f"Command: `make bench` (`python bench/run.py {_command_args(args)}`), "
            f"{time.strftime('%Y-%m-%d')}; this section took {took_s:.0f} s; 1-minute load "
            f"average {load_before:.1f} before the run (other work on the same 2 cores).  "
        )

    def emit(name: str, text: str) -> None:
        replace_section(args.out, name, text)
        print(text)

    if maps:
        from bench.maps import run_maps

        run_maps(home, env, args, header, emit)
    if "segmentation" in args.sections:
        from bench.segmentation import run_segmentation

        run_segmentation(args, header, emit)
    if "whatif" in args.sections:
        from bench.whatif_speed import run_whatif_speed

        run_whatif_speed(home, args, header, emit)
    if "batch" in args.sections:
        from bench.batch_predict import run_batch_bench

        run_batch_bench(home, env, args, header, emit)
    print(f"make bench took {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


SECTIONS = ("api", "cog", "tiles", "raster", "segmentation", "whatif", "batch")


def _command_args(args: argparse.Namespace) -> str:
    """The options that shape the numbers, as they would be typed."""
    return (
        f"--rounds {args.rounds} --seconds {args.seconds:g} --size {args.size} "
        f"--cog-runs {args.cog_runs} --tile-rounds {args.tile_rounds} "
        f"--tile-seconds {args.tile_seconds:g} --raster-sizes {' '.join(args.raster_sizes)} "
        f"--raster-runs {args.raster_runs} --seg-rounds {args.seg_rounds} "
        f"--seg-scene-size {args.seg_scene_size} --seg-sizes {' '.join(args.seg_sizes)} "
        f"--whatif-runs {args.whatif_runs} --batch-sizes {' '.join(args.batch_sizes)} "
        f"--batch-rounds {args.batch_rounds}"
    )


if __name__ == "__main__":
    sys.exit(main())
