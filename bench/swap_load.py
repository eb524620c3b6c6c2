"""Hot swap under load between two *different* models.

Why different models: a swap between two copies of one model cannot show that
a response came from the version it names. Here each service has two versions
trained with different hyper-parameters, so every probe request has two
clearly different answers (checked before the load starts). While threads send
point predictions to a real ``terraops serve --workers N`` on loopback, a
**separate process** (this file's ``swap`` mode) promotes and rolls back
through the admin API every ``--every`` seconds. Every response must be 200,
name a version that was champion around the time it was served, and carry the
value that version computes offline (same predictor loader as the server) —
one mismatch means a response mixed two versions or lied about its lineage.
Each client connection is pinned to one worker (half on each, checked via
``/readyz``'s pid), so the responses themselves show when every worker has
switched: the promotion → all-workers latency. The checks and figures live in
``bench/swap_checks.py`` (pure functions, tested without a server).

Three uses:

- ``tests/integration/test_hot_swap.py`` imports the pieces (short run, c8);
- ``python bench/swap_load.py --out BENCHMARKS.md`` prepares a home, runs a
  longer load (c16, 2 workers) and writes the ``<!-- bench:swap -->`` section;
- ``python bench/swap_load.py swap --url URL --pair uhi:1,3 ...`` is the
  swapper process both start (admin token from ``TERRAOPS_ADMIN_TOKEN``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.harness import free_port, machine_description, replace_section, running_server  # noqa: E402
from bench.swap_checks import (  # noqa: E402
    Change,
    Expected,
    Sample,
    smallest_gap,
    summarise,
)

#: The second version of each service: small, shallow and fast-learning, so its
#: answers differ clearly from the first version's (more, slower-learning trees).
VARIANT_PARAMS: dict[str, Any] = {
    "n_estimators": 12,
    "num_leaves": 7,
    "learning_rate": 0.3,
    "random_state": 7,
    "cv_folds": 2,
}
BASE_PARAMS: dict[str, Any] = {"n_estimators": 40, "cv_folds": 2}

#: Probe requests per service: overrides of the service's documented example
#: values (a full request), plus the required fields only (the rest becomes NaN).
PROBE_OVERRIDES: dict[str, tuple[dict[str, float], ...]] = {
    "uhi": (
        {},
        {"ndvi": -0.1, "building_density": 0.95, "tree_cover": 0.0, "imperviousness": 0.95},
        {"ndvi": 0.8, "building_density": 0.05, "tree_cover": 0.7, "water_distance": 100.0},
    ),
    "flood": (
        {},
        {"rainfall_mm": 150.0, "hand": 0.2, "imperviousness": 0.9, "depression_depth": 1.0},
        {"rainfall_mm": 10.0, "hand": 15.0, "imperviousness": 0.1, "elevation": 80.0},
    ),
}


def probe_bodies(service: str) -> list[dict[str, float]]:
    """The request bodies sent to ``service`` (full examples, then required-only)."""
    from terraops.services import get_service

    definition = get_service(service)
    example = {f.name: float(f.example) for f in definition.features}
    bodies = [{**example, **over} for over in PROBE_OVERRIDES[service]]
    bodies.append({f.name: float(f.example) for f in definition.features if f.required})
    return bodies


def offline_predictions(home: Path, service: str, version: int) -> list[float]:
    """What ``version`` answers to each probe, loaded as the server loads it."""
    import numpy as np

    from terraops.adapters.registry import ModelRegistry
    from terraops.pipelines.lifecycle.aliases import load_and_verify
    from terraops.services import get_service
    from terraops.settings import Settings

    registry = ModelRegistry(Settings(home=home))
    predictor = load_and_verify(registry.fetch_model(service, version), get_service(service))
    values = []
    for body in probe_bodies(service):
        row = [body.get(name, math.nan) for name in predictor.feature_names]
        values.append(float(predictor.predict(np.array([row], dtype=np.float64))[0]))
    return values


# ----- the swapper (a separate process) -----------------------------------------------
def swap_main(argv: Sequence[str]) -> int:
    """Flip each ``--pair SERVICE:A,B`` champion A ⇄ B (promote B, roll back) until time is up.

    No swap starts after ``--seconds``; ``--swaps`` stops earlier after that
    many admin calls. A slow admin call delays the next one (never overlaps).
    """
    parser = argparse.ArgumentParser(prog="swap_load.py swap", description=swap_main.__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--pair", action="append", required=True, help="SERVICE:A,B (A serves now)")
    parser.add_argument(
        "--every", type=float, default=1.5, help="seconds between swaps per service"
    )
    parser.add_argument("--seconds", type=float, required=True, help="start no swap after this")
    parser.add_argument("--swaps", type=int, default=None, help="stop after this many swaps")
    parser.add_argument("--log", type=Path, required=True, help="JSON lines, one per change")
    args = parser.parse_args(argv)
    token = os.environ.get("TERRAOPS_ADMIN_TOKEN")
    if not token:
        parser.error("set TERRAOPS_ADMIN_TOKEN to the server's admin token")
    pairs: list[tuple[str, int, int]] = []
    for raw in args.pair:
        service, _, versions = raw.partition(":")
        first, second = (int(v) for v in versions.split(","))
        pairs.append((service, first, second))
    current = {service: first for service, first, _ in pairs}
    failures = 0
    step = args.every / len(pairs)  # services take turns, evenly spread
    start = time.monotonic()
    with (
        httpx.Client(
            base_url=args.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as admin,
        args.log.open("w") as log,
    ):
        for turn in range(args.swaps if args.swaps is not None else 10**6):
            due = start + turn * step
            if max(due, time.monotonic()) > start + args.seconds:
                break
            time.sleep(max(0.0, due - time.monotonic()))
            service, first, second = pairs[turn % len(pairs)]
            reason = f"swap_load turn {turn}"
            change = _flip(admin, service, first, second, current[service], reason)
            if change.status == 200:
                current[service] = change.new
            failures += change.status != 200
            log.write(json.dumps(vars(change)) + "\n")
            log.flush()
    return 1 if failures else 0


def _flip(admin: httpx.Client, service: str, a: int, b: int, current: int, reason: str) -> Change:
    """Promote B over A (forced: the variant may score worse) or roll back to A."""
    if current == a:
        action, new, body = "promote", b, {"version": b, "reason": reason, "force": True}
    else:
        action, new, body = "rollback", a, {"reason": reason}
    started = time.monotonic()
    try:
        response = admin.post(f"/v1/admin/{service}/{action}", json=body)
        status = response.status_code
        serving = (response.json().get("serving") or {}).get("version") if status == 200 else None
        if status != 200:
            print(f"{service} {action}: {status} {response.text}", file=sys.stderr)
    except httpx.HTTPError as exc:
        status, serving = 599, None
        print(f"{service} {action}: {exc!r}", file=sys.stderr)
    return Change(service, action, current, new, started, time.monotonic(), status, serving)


def read_changes(path: Path) -> list[Change]:
    return [Change(**json.loads(line)) for line in path.read_text().splitlines() if line]


# ----- load and observation (threads in this process) ----------------------------------
def worker_pid(client: httpx.Client) -> int:
    """The pid of the worker that owns ``client``'s keep-alive connection."""
    return int(client.get("/readyz").json()["pid"])


def spread_connections(url: str, workers: int, count: int) -> list[tuple[httpx.Client, int]]:
    """``count`` keep-alive connections, an equal share on each worker: (client, worker pid).

    A keep-alive connection stays with the worker that accepted it, and which
    one accepts is up to the kernel; without spreading, every connection may
    land on one worker and the other worker's swaps would go unobserved.
    """
    quota = -(-count // workers)
    per_worker: dict[int, int] = {}
    connections: list[tuple[httpx.Client, int]] = []
    headers = {"Content-Type": "application/json"}
    for _ in range(50 * count):
        if len(connections) == count:
            return connections
        client = httpx.Client(base_url=url, timeout=10, headers=headers)
        pid = worker_pid(client)
        if per_worker.get(pid, 0) < quota:
            per_worker[pid] = per_worker.get(pid, 0) + 1
            connections.append((client, pid))
        else:
            client.close()
    for client, _ in connections:
        client.close()
    raise RuntimeError(f"could not spread {count} connections over {workers} workers: {per_worker}")


class LoadThread(threading.Thread):
    """Sends point predictions back to back on one keep-alive connection (loopback).

    Every ``RECHECK`` requests it asks ``/readyz`` on the same connection which
    worker owns it, so a silently re-opened connection is attributed correctly.
    """

    RECHECK = 200

    def __init__(
        self, client: httpx.Client, jobs: list[tuple[str, int, bytes]], offset: int
    ) -> None:
        super().__init__(daemon=True)
        self.client, self.jobs, self.offset = client, jobs, offset
        self.samples: list[Sample] = []
        self.failure: Exception | None = None
        self.stop_event = threading.Event()

    def run(self) -> None:
        client, turn = self.client, self.offset
        try:
            pid = worker_pid(client)  # the connection may have idled out and been re-opened
            while not self.stop_event.is_set():
                if turn > self.offset and turn % self.RECHECK == 0:
                    pid = worker_pid(client)
                service, probe, body = self.jobs[turn % len(self.jobs)]
                turn += 1
                self.samples.append(self._one(client, pid, service, probe, body))
        except Exception as exc:  # reported by run_swap_load: a dead client must not pass
            self.failure = exc
        finally:
            client.close()

    @staticmethod
    def _one(client: httpx.Client, pid: int, service: str, probe: int, body: bytes) -> Sample:
        sent = time.monotonic()
        version = header = value = None
        try:
            response = client.post(f"/v1/{service}/predict", content=body)
            status = response.status_code
            if status == 200:
                payload = response.json()
                version, value = payload["model"]["version"], payload["prediction"]
                header = int(response.headers["X-Model-Version"])
        except (httpx.HTTPError, ValueError, KeyError):
            status = 599  # transport failure or a malformed 200: an error either way
        received = time.monotonic()
        return Sample(service, probe, pid, sent, received, status, version, header, value)


# ----- one measured run ------------------------------------------------------------------
@dataclass
class SwapRun:
    """What one run produced: every response, every admin call, and the figures."""

    samples: list[Sample]
    changes: list[Change]
    seconds: float
    swapper_rc: int
    swapper_log: str
    figures: dict[str, Any] = field(default_factory=dict)


def run_swap_load(
    url: str,
    expected: Expected,
    swapping: Sequence[str],
    *,
    token: str,
    workers: int,
    concurrency: int,
    seconds: float,
    every_s: float,
    workdir: Path,
    swaps: int | None = None,
) -> SwapRun:
    """Load every service in ``expected`` while a separate process flips ``swapping``'s champions.

    ``expected[service]`` lists the serving version first. The load starts a
    second before the swapper and stops a second after it, so both edges of
    the swap period are under load. The swapper stops after ``seconds`` or
    ``swaps`` admin calls, whichever comes first.
    """
    jobs = [
        (service, probe, json.dumps(body).encode())
        for service in expected
        for probe, body in enumerate(probe_bodies(service))
    ]
    pairs: list[str] = []
    for service in swapping:
        first, second = expected[service]
        pairs += ["--pair", f"{service}:{first},{second}"]
    connections = spread_connections(url, workers, concurrency)
    clients = [LoadThread(client, jobs, offset=i) for i, (client, _) in enumerate(connections)]
    log, err = workdir / "swaps.jsonl", workdir / "swapper.err"
    began = time.monotonic()
    for thread in clients:
        thread.start()
    try:
        time.sleep(1.0)
        swapper_rc = _run_swapper(url, pairs, token, every_s, seconds, swaps, log, err)
        time.sleep(1.0)
    finally:
        for thread in clients:
            thread.stop_event.set()
        for thread in clients:
            thread.join(timeout=30)
    took = time.monotonic() - began
    failures = [repr(t.failure) for t in clients if t.failure is not None]
    if failures:
        raise RuntimeError(f"{len(failures)} load clients died: {failures[:3]}")
    samples = [s for c in clients for s in c.samples]
    changes = read_changes(log) if log.exists() else []
    run = SwapRun(samples, changes, took, swapper_rc, err.read_text())
    run.figures = summarise(samples, changes, took, expected)
    return run


def _run_swapper(
    url: str,
    pairs: list[str],
    token: str,
    every_s: float,
    seconds: float,
    swaps: int | None,
    log: Path,
    err: Path,
) -> int:
    """Run this file's ``swap`` mode as a separate process; its exit status."""
    command = [sys.executable, str(Path(__file__).resolve()), "swap", "--url", url, *pairs]
    command += ["--every", str(every_s), "--seconds", str(seconds), "--log", str(log)]
    command += ["--swaps", str(swaps)] if swaps is not None else []
    with err.open("wb") as sink:
        return subprocess.run(
            command,
            env={**os.environ, "TERRAOPS_ADMIN_TOKEN": token},
            stdout=subprocess.DEVNULL,
            stderr=sink,
            timeout=seconds + 120,
            check=False,
        ).returncode


# ----- the benchmark ---------------------------------------------------------------------
SERVICES = ("uhi", "flood")


def prepare_home(home: Path, size: int) -> dict[str, tuple[int, int]]:
    """Two scenes → two different versions per service; the first promoted (reused if there)."""
    from terraops.adapters.registry import ModelRegistry
    from terraops.pipelines.lifecycle import aliases as lifecycle
    from terraops.pipelines.scenes.generate import generate_scene
    from terraops.pipelines.training.train import train_service
    from terraops.services import get_service
    from terraops.settings import Settings

    scenes = []
    for seed, morphology in ((1, "dense"), (2, "sprawl")):
        out = home / "scenes" / f"city{seed}"
        if not (out / "scene.json").exists():
            generate_scene(out, seed=seed, size=size, resolution=4.0, morphology=morphology)
        scenes.append(out)
    settings = Settings(home=home, user="swap-bench")
    registry = ModelRegistry(settings)
    marker = home / "swap-bench.json"
    if marker.exists():
        versions = {k: (v[0], v[1]) for k, v in json.loads(marker.read_text()).items()}
    else:
        versions = {}
        for service in SERVICES:
            first, second = (
                train_service(settings, get_service(service), scenes, params, progress=False)
                for params in (BASE_PARAMS, VARIANT_PARAMS)
            )
            versions[service] = (first.version, second.version)
        marker.write_text(json.dumps(versions))
    for service, (first, _) in versions.items():  # a reused home may end on the variant
        if registry.get_alias(service, "champion") != first:
            lifecycle.promote(settings, registry, service, first, reason="swap bench", force=True)
    return versions


def render(figures: dict[str, Any], gaps: dict[str, float], args: argparse.Namespace) -> str:
    f = figures
    late_key = next(k for k in f if k.startswith("late_over_"))
    return "\n".join(
        [
            "## Hot swap under load between different models",
            "",
            f"Machine: {machine_description()}; **shared right now by 8 engineers running their "
            f"own work on the same 2 cores** (1-minute load average {args.load_before:.1f} "
            "before the run), so latencies and throughput are pessimistic.  ",
            f"Command: `.venv/bin/python bench/swap_load.py --out BENCHMARKS.md "
            f"--seconds {args.seconds:g} --concurrency {args.concurrency} "
            f"--workers {args.workers} --every {args.every:g} --poll {args.poll:g}`, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.  ",
            f"Setup: `terraops serve --workers {args.workers}` on loopback, registry poll "
            f"{args.poll:g} s; uhi and flood each have two versions trained with different "
            "hyper-parameters (smallest difference between the two on the probe requests: "
            + ", ".join(f"{s} {g:.3g}" for s, g in gaps.items())
            + f"). {args.concurrency} Python client threads (httpx, keep-alive) send point "
            "predictions to both services in turn, so the client shares the cores and bounds "
            "throughput; a separate process promotes (forced) and rolls back both services "
            f"through the admin API, each due every {args.every:g} s, staggered, for "
            f"{args.seconds:g} s (see the admin-call line below for the rate reached).",
            "",
            "| requests | seconds | req/s | p50 ms | p95 ms | p99 ms | max ms | errors "
            "| mismatches | swaps (uhi/flood) | failed swaps | promotion → all workers "
            "p50 / max s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
            f"| {f['requests']} | {f['seconds']} | {f['throughput_rps']} | {f['p50_ms']} "
            f"| {f['p95_ms']} | {f['p99_ms']} | {f['max_ms']} | {f['errors']} "
            f"| {f['mismatches']} | {f['swaps']} ({f['swaps_by_service']['uhi']}/"
            f"{f['swaps_by_service']['flood']}) | {f['failed_swaps']} "
            f"| {f['propagation_p50_s']} / {f['propagation_max_s']} |",
            "",
            "- errors: responses other than 200 (transport failures included); mismatches: 200s "
            "whose value differs (> 1e-9) from the offline prediction of the version named in "
            "the body, or whose `X-Model-Version` header disagrees with the body. Both must be 0.",
            f"- {f[late_key]} responses named a version more than "
            f"{late_key.removeprefix('late_over_')} after it stopped being champion; versions "
            f"seen: {f['versions_seen']}; responses per worker: {f['responses_per_worker']}.",
            "- promotion → all workers: from the end of the admin call until every worker has "
            "answered a prediction with the new version (each client connection is pinned to "
            "one worker, half of them on each; the worker that handled the call switches inside "
            f"it, the others at their next registry poll plus loading). "
            f"{f['propagation_unobserved']} of {f['swaps']} changes give no figure: a worker "
            "answered no request of that service with the new version before the next change.",
            f"- admin calls (gates: load and verify both versions) took {f['admin_call_p50_s']} s "
            f"median, {f['admin_call_max_s']} s max, so one swap came every "
            f"{f['swap_period_s']} s on average (both services together).",
        ]
    )


def bench_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--home", type=Path, default=None, help="reuse a prepared home")
    parser.add_argument("--size", type=int, default=256, help="scene size for the models")
    parser.add_argument("--seconds", type=float, default=25, help="how long the swapper runs")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--every", type=float, default=2.0, help="seconds between swaps")
    parser.add_argument("--poll", type=float, default=0.5, help="server registry poll (s)")
    args = parser.parse_args(argv)
    args.load_before = os.getloadavg()[0]
    home = (args.home or Path(tempfile.mkdtemp(prefix="terraops-swap-"))).resolve()
    print(f"swap benchmark home: {home}", file=sys.stderr)
    versions = prepare_home(home, args.size)
    expected = {s: {v: offline_predictions(home, s, v) for v in versions[s]} for s in SERVICES}
    gaps = smallest_gap(expected)
    if min(gaps.values()) < 1e-3:
        raise SystemExit(f"the two versions barely differ on the probes: {gaps}")
    token = os.urandom(16).hex()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).parent / "terraops"), "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(args.workers)]
    env = {
        "TERRAOPS_HOME": str(home),
        "TERRAOPS_SERVICES": json.dumps(list(SERVICES)),
        "TERRAOPS_ADMIN_TOKEN": token,
        "TERRAOPS_POLL_INTERVAL_S": str(args.poll),
        "TERRAOPS_USER": "swap-bench",
    }
    with running_server(command, ready_url=f"{url}/readyz", env=env):
        run = run_swap_load(
            url,
            expected,
            SERVICES,
            token=token,
            workers=args.workers,
            concurrency=args.concurrency,
            seconds=args.seconds,
            every_s=args.every,
            workdir=home,
        )
    print(json.dumps(run.figures, indent=2), file=sys.stderr)
    if run.swapper_rc != 0:
        print(run.swapper_log[-3000:], file=sys.stderr)
    text = render(run.figures, gaps, args)
    replace_section(args.out, "swap", text)
    print(text)
    bad = run.figures["errors"] or run.figures["mismatches"] or run.figures["failed_swaps"]
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "swap":
        sys.exit(swap_main(sys.argv[2:]))
    sys.exit(bench_main(sys.argv[1:]))
