"""Point prediction with a 90 % interval and the explanation, against another source tree.

``bench/run.py``'s API section measures ``POST /v1/uhi/predict?interval=0.9&explain=true``
once, beside the plain call. This script measures the same request the same way
(wrk, one connection, one thread, the UHI champion of a prepared benchmark home,
2 uvicorn workers, ``OMP_NUM_THREADS=1``) on two servers up at once — this
checkout and, with ``--before DIR``, the ``src`` tree of another checkout — in
interleaved rounds, so that a change is judged side by side under the same load.

    python bench/extras_latency.py --home HOME [--before OTHER_CHECKOUT] [--rounds 5]

``HOME`` is a home ``bench/run.py`` prepared (``--home`` there), or a new folder:
it is then prepared the same way (two scenes, a trained and promoted UHI model).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import free_port, median_of, running_server, wrk  # noqa: E402
from bench.run import EXTRAS_QUERY, TERRAOPS, full_instance, prepare_home  # noqa: E402


def _server(port: int) -> list[str]:
    return [TERRAOPS, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]


def measure(home: Path, before: Path | None, rounds: int, seconds: float) -> dict[str, Any]:
    """Median over rounds of wrk c1 on each server, with and without the extras."""
    env = prepare_home(home, 512)
    body = json.dumps(full_instance(home))
    trees = {"this checkout": None} | ({"before": before / "src"} if before else {})
    ports = {name: free_port() for name in trees}
    runs: dict[str, dict[str, list[dict[str, float]]]] = {
        name: {"plain": [], "extras": []} for name in trees
    }
    with ExitStack() as stack:
        for name, src in trees.items():
            extra = {"PYTHONPATH": str(src)} if src else {}
            stack.enter_context(
                running_server(
                    _server(ports[name]),
                    ready_url=f"http://127.0.0.1:{ports[name]}/readyz",
                    env={**env, "OMP_NUM_THREADS": "1", **extra},
                    timeout_s=180,
                )
            )
        urls = {name: f"http://127.0.0.1:{port}/v1/uhi/predict" for name, port in ports.items()}
        for url in urls.values():  # warm-up: first requests, lazy imports
            wrk(f"{url}?{EXTRAS_QUERY}", body, connections=4, threads=1, seconds=1)
        for round_no in range(rounds):
            for name, url in urls.items():
                print(f"round {round_no + 1}/{rounds}: {name}", file=sys.stderr, flush=True)
                for kind, target in (("plain", url), ("extras", f"{url}?{EXTRAS_QUERY}")):
                    runs[name][kind].append(
                        wrk(target, body, connections=1, threads=1, seconds=seconds)
                    )
    return {name: {kind: median_of(r) for kind, r in by.items()} for name, by in runs.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, default=None, help="a prepared benchmark home")
    parser.add_argument("--before", type=Path, default=None, help="another checkout to compare")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    home = (args.home or Path(tempfile.mkdtemp(prefix="terraops-bench-"))).resolve()
    load_before, started = os.getloadavg()[0], time.perf_counter()
    result = measure(home, args.before, args.rounds, args.seconds)
    summary = {
        "servers": result,
        "rounds": args.rounds,
        "seconds": args.seconds,
        "took_s": round(time.perf_counter() - started),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
