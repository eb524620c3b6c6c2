"""Batch prediction: rows/s of ``POST /v1/uhi/predict/batch`` per body format, and its parts.

Side by side in one run, on the UHI champion of the benchmark home:

1. in this process, on one thread: LightGBM's ``Booster.predict`` and the compiled
   trees (:mod:`terraops.domain.compiled_forest`) on the same matrix, and the cost of
   reading each body format into that matrix (``instances`` rows: ``json.loads`` +
   the column-wise checks; ``columns``: msgspec + numpy checks; Arrow IPC) and of
   writing the response;
2. over HTTP: ``terraops serve`` with 2 uvicorn workers (``OMP_NUM_THREADS=1``),
   wrk on loopback at 4 connections, each body format at each size, interleaved in
   rounds (noise on the shared cores hits each alike); medians over rounds.

``python bench/batch_predict.py --home H`` runs it alone (after ``bench/run.py``
prepared ``H``); ``bench/run.py --sections batch`` runs it as the ``batch`` section.
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
sys.path.insert(0, str(HERE.parent))

from bench.harness import WRK_SCRIPT, free_port, median_of, running_server  # noqa: E402

GOAL_ROWS_S = 300_000
ARROW = "application/vnd.apache.arrow.stream"
FORMATS = ("instances (rows)", "columns (JSON)", "Arrow IPC")


def rows_matrix(instance: dict[str, float], rows: int, seed: int = 0) -> np.ndarray:
    """``rows`` locations: the instance with each value scaled by 0.9–1.0 (inside every
    feature's range), so the model walks different paths rather than one cached row."""
    rng = np.random.default_rng(seed)
    base = np.array(list(instance.values()))
    return base * rng.uniform(0.9, 1.0, size=(rows, len(instance)))


def bodies(names: list[str], matrix: np.ndarray) -> dict[str, tuple[bytes, str]]:
    """The same rows in each body format: (bytes, content type)."""
    import pyarrow as pa

    records = [dict(zip(names, row, strict=True)) for row in matrix.tolist()]
    columns = {name: matrix[:, j].tolist() for j, name in enumerate(names)}
    table = pa.table({name: matrix[:, j] for j, name in enumerate(names)})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return {
        FORMATS[0]: (json.dumps({"instances": records}).encode(), "application/json"),
        FORMATS[1]: (json.dumps({"columns": columns}).encode(), "application/json"),
        FORMATS[2]: (sink.getvalue().to_pybytes(), ARROW),
    }


def run_scale(rows: int) -> float:
    """How many times ``--seconds`` one wrk run lasts at ``rows`` rows a request."""
    return 2.0 if rows <= 10_000 else 4.0


def wrk_body(url: str, body: bytes, ctype: str, *, connections: int, seconds: float) -> dict:
    """One wrk run POSTing ``body`` (any bytes) as ``ctype``."""
    handle, name = tempfile.mkstemp(prefix="wrk-batch-")
    with os.fdopen(handle, "wb") as sink:
        sink.write(body)
    try:
        res = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds:g}s",
                "--timeout",
                "30s",
                "-s",
                *[str(WRK_SCRIPT), url],
            ],
            env={**os.environ, "WRK_BODY_FILE": name, "WRK_CONTENT_TYPE": ctype},
            capture_output=True,
            text=True,
        )
    finally:
        Path(name).unlink(missing_ok=True)
    if res.returncode != 0:
        raise RuntimeError(f"wrk failed: {res.stdout[-500:]}{res.stderr[-500:]}")
    return json.loads(next(ln for ln in res.stdout.splitlines() if ln.startswith("{")))


def _best_s(stmt: Callable[[], Any], repeat: int) -> float:
    """Median seconds of ``repeat`` calls (after one warm-up call)."""
    stmt()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        stmt()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def in_process(home: Path, sizes: list[int], repeat: int) -> dict[str, dict[int, float]]:
    """Rows/s of each step at each size, one thread, this process."""
    from bench.run import full_instance
    from terraops.adapters.model_bundle import load_predictor
    from terraops.adapters.registry import ModelRegistry
    from terraops.api.columnar_inputs import ColumnarInputs
    from terraops.api.fast_inputs import FastInputs
    from terraops.services import get_service
    from terraops.settings import Settings

    registry = ModelRegistry(Settings(home=home))
    version = registry.get_alias("uhi", "champion")
    assert version is not None, "no UHI champion in the benchmark home"
    predictor = load_predictor(registry.fetch_model("uhi", version))
    assert predictor.compiled is not None, "the champion was not compiled (see the log)"
    instance = full_instance(home)
    inputs = FastInputs(get_service("uhi"), predictor.feature_names, max(sizes))
    columnar = ColumnarInputs(inputs, "Uhi")
    out: dict[str, dict[int, float]] = {}
    for rows in sizes:
        for step, seconds in _steps(predictor, inputs, columnar, instance, rows, repeat).items():
            out.setdefault(step, {})[rows] = rows / seconds
    return out


def _steps(
    predictor: Any, inputs: Any, columnar: Any, instance: dict[str, float], rows: int, repeat: int
) -> dict[str, float]:
    """Median seconds of each step for one ``rows``-row batch."""
    from terraops.adapters.log_lines import matrix_bytes
    from terraops.api.fast_inputs import finite_json_array
    from terraops.domain import compiled_forest

    matrix = rows_matrix(instance, rows)
    baseline = predictor.baseline
    model_x = matrix if baseline is None else np.delete(matrix, baseline.column, axis=1)
    booster, forest = predictor.booster, predictor.compiled
    body = bodies(list(instance), matrix)
    rows_body, columns_body, arrow_body = (body[f][0] for f in FORMATS)
    values = predictor.predict(matrix)
    steps: dict[str, Callable[[], Any]] = {
        "LightGBM `Booster.predict` (1 thread)": lambda: booster.predict(model_x, num_threads=1),
        "compiled trees (1 thread)": lambda: compiled_forest.predict(forest, model_x),
        "compiled trees (all cores)": lambda: compiled_forest.predict(
            forest, model_x, parallel=True
        ),
        "read `instances` (json.loads + column checks)": lambda: inputs.records(
            json.loads(rows_body.decode())
        ),
        "read `columns` (msgspec + numpy checks)": lambda: columnar.from_json(columns_body),
        "read Arrow IPC (pyarrow + numpy checks)": lambda: columnar.from_arrow(arrow_body),
        "write the response (msgspec)": lambda: finite_json_array(values.tolist()),
        "write the response (json.dumps)": lambda: json.dumps(values.tolist()),
        "encode the prediction log's lines": lambda: matrix_bytes(
            '{"request_id":"0123456789-a","index":',
            ',"ts":"2026-01-01T00:00:00.000000+00:00","service":"uhi","version":1,"features":{',
            [json.dumps(name) + ":" for name in instance],
            matrix,
            values,
            ',"latency_ms":1234.5,"status":200}',
        ),
    }
    return {step: _best_s(stmt, repeat) for step, stmt in steps.items()}


def over_http(
    home: Path, env: dict[str, str], sizes: list[int], rounds: int, seconds: float
) -> dict[str, dict[int, dict[str, float]]]:
    """wrk medians per (format, size) against one ``terraops serve`` with 2 workers."""
    from bench.run import TERRAOPS, full_instance

    instance = full_instance(home)
    names = list(instance)
    port = free_port()
    cmd = [TERRAOPS, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    url = f"http://127.0.0.1:{port}/v1/uhi/predict/batch"
    server_env = {**env, "OMP_NUM_THREADS": "1", "TERRAOPS_MAX_BATCH_SIZE": str(max(sizes))}
    by_size = {rows: bodies(names, rows_matrix(instance, rows)) for rows in sizes}
    runs: dict[str, dict[int, list[dict[str, float]]]] = {
        f: {n: [] for n in sizes} for f in FORMATS
    }
    ready = f"http://127.0.0.1:{port}/readyz"
    served = 0
    log_dir = home / "predictions"
    before = set(log_dir.rglob("*")) if log_dir.exists() else set()
    with running_server(cmd, ready_url=ready, env=server_env, timeout_s=180):
        for rows in sizes:  # warm-up: every format once
            for body, ctype in by_size[rows].values():
                served += rows * int(
                    wrk_body(url, body, ctype, connections=2, seconds=1)["requests"]
                )
        for round_no in range(rounds):
            for rows in sizes:
                for fmt, (body, ctype) in by_size[rows].items():
                    print(
                        f"batch round {round_no + 1}/{rounds}: {fmt}, {rows} rows", file=sys.stderr
                    )
                    # A big body takes seconds: give each run time for several requests.
                    long = seconds * run_scale(rows)
                    run = wrk_body(url, body, ctype, connections=4, seconds=long)
                    runs[fmt][rows].append(run)
                    served += rows * int(run["requests"])
        dropped = log_rows_dropped(f"http://127.0.0.1:{port}/metrics")
    sizes_bytes = {f"{fmt}@{rows}": len(by_size[rows][fmt][0]) for rows in sizes for fmt in FORMATS}
    result: dict[str, Any] = {
        fmt: {rows: median_of(runs[fmt][rows]) for rows in sizes} for fmt in FORMATS
    }
    result["bytes"] = sizes_bytes
    result["log"] = {
        "served": served,
        "dropped": dropped,
        "bytes": _remove_new_logs(log_dir, before),
    }
    return result


def _remove_new_logs(log_dir: Path, before: set[Path]) -> int:
    """Delete the log files this run wrote (tens of GB at these rates); their size."""
    written = 0
    for path in sorted(set(log_dir.rglob("*")) - before) if log_dir.exists() else []:
        if path.is_file():
            written += path.stat().st_size
            path.unlink()
    return written


def log_rows_dropped(metrics_url: str) -> int:
    """Rows the prediction log dropped, all workers together (``/metrics`` sums them)."""
    import httpx

    text = httpx.get(metrics_url, timeout=30).text
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("terraops_prediction_log_dropped_total")
        )
    )


def render(http: dict, local: dict[str, dict[int, float]], sizes: list[int], load: float) -> str:
    """The BENCHMARKS.md section body (after the header)."""
    best = max(http[fmt][rows]["rps"] * rows for fmt in FORMATS for rows in sizes)
    verdict = "met" if best >= GOAL_ROWS_S else "**not met**"
    lines = [
        f"Load: `terraops serve --workers 2` (`OMP_NUM_THREADS=1`, `TERRAOPS_MAX_BATCH_SIZE="
        f"{max(sizes)}`), wrk on loopback (1 thread, 4 connections, runs of "
        + ", ".join(f"{run_scale(n):g}× `--seconds` at {n:,} rows" for n in sizes)
        + ") on the same 2 cores; the formats and sizes interleaved in rounds, medians over "
        "rounds; a run in which no request finished counts 0. Every row goes to "
        "the prediction log as in production: a batch waits up to 10 s for room in the "
        "log's buffer, and rows that still find none are dropped and counted (line below). "
        f"1-minute load average {load:.1f} before "
        "the run: other work shared the cores, so absolute figures are low and the ratios "
        "are the stable part.",
        "",
        "| body | rows | MB | req/s | rows/s | p50 ms | errors | × rows body |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rows in sizes:
        base = http[FORMATS[0]][rows]["rps"]
        for fmt in FORMATS:
            run = http[fmt][rows]
            mb = http["bytes"][f"{fmt}@{rows}"] / 1e6
            ratio = f"{run['rps'] / base:.2f}×" if base else "—"
            lines.append(
                f"| {fmt} | {rows:,} | {mb:.1f} | {run['rps']:.2f} | {run['rps'] * rows:,.0f} | "
                f"{run['p50_ms']:.0f} | {run['errors']:.0f} | {ratio} |"
            )
    log = http.get("log", {"served": 0, "dropped": 0})
    lines += [
        "",
        f"- batch over HTTP, best format and size: **{best:,.0f} rows/s** "
        f"(goal ≥ {GOAL_ROWS_S:,} {verdict}).",
        f"- prediction log: {log['dropped']:,} rows dropped (buffer full or write error) of "
        f"at least {log['served']:,} rows served in this section; the log files it wrote "
        f"({log.get('bytes', 0) / 1e9:.1f} GB) are deleted after the run.",
        "",
        "In this process, one thread, the same rows (rows/s; median of repeats):",
        "",
        "| step | " + " | ".join(f"{n:,} rows" for n in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for step, by_size in local.items():
        lines.append(f"| {step} | " + " | ".join(f"{by_size[n]:,.0f}" for n in sizes) + " |")
    lgb = local["LightGBM `Booster.predict` (1 thread)"]
    compiled = local["compiled trees (1 thread)"]
    ratios = ", ".join(f"{compiled[n] / lgb[n]:.1f}× at {n:,} rows" for n in sizes)
    lines += ["", f"- compiled trees vs LightGBM, one thread: {ratios}."]
    return "\n".join(lines) + "\n"


def run_batch_bench(
    home: Path,
    env: dict[str, str],
    args: argparse.Namespace,
    header: Callable[[float], str],
    emit: Callable[..., None],
) -> None:
    """The ``batch`` section of ``bench/run.py``."""
    started = time.monotonic()
    load = os.getloadavg()[0]
    sizes = [int(n) for n in args.batch_sizes]
    http = over_http(home, env, sizes, args.batch_rounds, args.seconds)
    local = in_process(home, sizes, repeat=5)
    raw = Path(tempfile.gettempdir()) / "terraops-bench-batch.json"
    raw.write_text(json.dumps({"http": http, "local": local, "load": load}))  # if render fails
    text = render(http, local, sizes, load)
    title = "## Batch prediction: `POST /v1/uhi/predict/batch` per body format"
    emit("batch", f"{title}\n\n{header(time.monotonic() - started)}\n{text}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, required=True, help="a home bench/run.py prepared")
    parser.add_argument("--batch-sizes", nargs="+", default=["10000", "100000"])
    parser.add_argument("--batch-rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--http", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    sizes = [int(n) for n in args.batch_sizes]
    env = {"TERRAOPS_HOME": str(args.home), "TERRAOPS_SERVICES": '["uhi"]'}
    local = in_process(args.home, sizes, repeat=5)
    print(json.dumps(local, indent=1))
    if args.http:
        http = over_http(args.home, env, sizes, args.batch_rounds, args.seconds)
        print(render(http, local, sizes, os.getloadavg()[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
