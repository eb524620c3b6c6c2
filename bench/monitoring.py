"""What monitoring costs a point prediction, measured in process (no network noise).

    python bench/monitoring.py [--requests 20000]

1. The whole app (``create_app``) driven as an ASGI callable: ``POST
   /v1/uhi/predict`` with the prediction log off and on (writer thread running,
   flushing every second as in serving), best of 5 rounds each, alternated.
2. The observability middleware alone (request id + Prometheus histogram and
   counter) around a do-nothing ASGI app, prometheus-client in multiprocess
   mode as under ``terraops serve``, for a measured route and for another path.
3. The log writer's own cost per record (encoding + write, in its thread).

Prints JSON; the figures are quoted in the README's monitoring section.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

# Multiprocess mode, as under `terraops serve`: chosen when prometheus-client is imported.
_METRICS_DIR = tempfile.mkdtemp(prefix="terraops-bench-metrics-")
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", _METRICS_DIR)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from terraops.adapters.prediction_log import PredictionLog  # noqa: E402
from terraops.api.app import create_app  # noqa: E402
from terraops.api.model_holder import LoadedModel, ModelHolder  # noqa: E402
from terraops.api.observability import (  # noqa: E402
    ObservabilityMiddleware,
    ServingMetrics,
    measured_routes,
)
from terraops.services import get_service  # noqa: E402
from terraops.settings import Settings  # noqa: E402

BODY = json.dumps({"ndvi": 0.5, "building_density": 0.7, "water_distance": 1000}).encode()


class ConstantPredictor:
    """Stands in for the model: the benchmark is about what surrounds it."""

    def predict(self, X: Any) -> Any:
        return X[:, 0] * 0 + 31.5


def _holder() -> ModelHolder:
    definition = get_service("uhi")
    holder = ModelHolder(definition)
    holder.swap(
        LoadedModel(
            service="uhi",
            name="uhi",
            version=1,
            alias="champion",
            predictor=ConstantPredictor(),
            feature_names=tuple(definition.feature_names),
            source="registry",
        )
    )
    return holder


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": BODY, "more_body": False}


async def _send(message: Any) -> None:
    if message["type"] == "http.response.start" and message["status"] != 200:
        raise RuntimeError(f"status {message['status']}")


async def _per_call_us(app: Any, path: str, requests: int) -> float:
    scope = _scope(path)
    start = time.perf_counter()
    for _ in range(requests):
        await app(dict(scope), _receive, _send)
    return (time.perf_counter() - start) / requests * 1e6


async def app_with_and_without_log(home: Path, requests: int, rounds: int = 5) -> dict[str, Any]:
    apps = {}
    for name, enabled in (("log off", False), ("log on", True)):
        settings = Settings(home=home / name.replace(" ", "-"), prediction_log=enabled)
        app = create_app(settings, holders={"uhi": _holder()}, watch=False)
        apps[name] = app
    gc.collect()
    gc.freeze()  # as create_app_from_env does for a served app
    results: dict[str, list[float]] = {name: [] for name in apps}
    contexts = {name: app.router.lifespan_context(app) for name, app in apps.items()}
    for ctx in contexts.values():
        await ctx.__aenter__()
    try:
        for app in apps.values():  # warm-up
            await _per_call_us(app, "/v1/uhi/predict", 500)
        for _ in range(rounds):
            for name, app in apps.items():
                results[name].append(await _per_call_us(app, "/v1/uhi/predict", requests))
    finally:
        for ctx in contexts.values():
            await ctx.__aexit__(None, None, None)
    best = {name: min(v) for name, v in results.items()}
    return {
        "app_us_log_off": round(best["log off"], 2),
        "app_us_log_on": round(best["log on"], 2),
        "log_overhead_us": round(best["log on"] - best["log off"], 2),
    }


async def middleware_overhead(requests: int, rounds: int = 5) -> dict[str, float]:
    async def bare(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    wrapped = ObservabilityMiddleware(bare, [ServingMetrics().observe], measured_routes(["uhi"]))

    async def best(app: Any, path: str) -> float:
        return min([await _per_call_us(app, path, requests) for _ in range(rounds)])

    base = await best(bare, "/v1/uhi/predict")
    return {
        "bare_asgi_us": round(base, 3),
        "middleware_measured_route_us": round(await best(wrapped, "/v1/uhi/predict") - base, 3),
        "middleware_other_path_us": round(await best(wrapped, "/readyz") - base, 3),
    }


def writer_cost(home: Path, records: int) -> dict[str, float]:
    plog = PredictionLog(home / "writer")
    names = get_service("uhi").feature_names
    row = [0.5, 0.7, 1000.0] + [float("nan")] * (len(names) - 3)
    start = time.perf_counter()
    for i in range(records):
        plog.record(f"id-{i}", "uhi", 1, names, [row], [31.5], 0.1)
    queued = time.perf_counter() - start
    start = time.perf_counter()
    plog.flush()
    written = time.perf_counter() - start
    return {
        "record_call_us": round(queued / records * 1e6, 3),
        "writer_thread_us_per_record": round(written / records * 1e6, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="terraops-bench-monitoring-") as tmp:
        home = Path(tmp)
        figures = {
            "prometheus_multiprocess": True,
            **asyncio.run(app_with_and_without_log(home, args.requests)),
            **asyncio.run(middleware_overhead(args.requests * 2)),
            **writer_cost(home, args.requests),
        }
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
