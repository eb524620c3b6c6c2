"""What the header limits of ``terraops serve`` cost on the point-prediction path.

The same app (``create_app_from_env``, one uvicorn worker each, same home and
environment) behind three HTTP protocols, all up at once and measured in
interleaved rounds with wrk (2-core machine: noise hits each alike):

1. ``httptools`` — uvicorn's parser as it was, no limit on header size or time;
2. ``terraops serve`` — httptools plus the size and time guards
   (``terraops.api.header_limits``, what ``terraops serve`` runs);
3. ``h11`` — uvicorn's pure-Python parser, which has a size limit of its own
   (``h11_max_incomplete_event_size``) but no header-time limit.

``python bench/header_limits.py --home HOME`` (a home prepared by ``bench/run.py``
or trained here); prints a Markdown section, written to BENCHMARKS.md with ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.harness import (  # noqa: E402
    free_port,
    machine_description,
    replace_section,
    running_server,
    wrk,
)

PROTOCOLS = {
    "httptools (no header limits)": "httptools",
    "terraops serve (httptools + header limits)": "guarded",
    "h11 (size limit only)": "h11",
}


def serve(protocol: str, port: int) -> None:
    """One worker of the app behind ``protocol`` (run in the server's own process)."""
    import uvicorn

    from terraops.cli.serving import header_limited_protocol
    from terraops.settings import Settings

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bench-metrics-")
    settings = Settings()
    http = header_limited_protocol(settings) if protocol == "guarded" else protocol
    uvicorn.run(
        "terraops.api.app:create_app_from_env",
        factory=True,
        host="127.0.0.1",
        port=port,
        workers=1,
        log_level="warning",
        access_log=False,
        http=http,
        h11_max_incomplete_event_size=int(settings.max_header_kb * 1024),
    )


def measure(home: Path, rounds: int, seconds: float) -> dict[str, dict[str, list[float]]]:
    from bench.run import full_instance

    body = json.dumps(full_instance(home))
    env = {"TERRAOPS_HOME": str(home), "TERRAOPS_SERVICES": '["uhi"]', "OMP_NUM_THREADS": "1"}
    ports = {name: free_port() for name in PROTOCOLS}
    runs: dict[str, dict[str, list[float]]] = {
        name: {"c1_p50": [], "c1_p99": [], "c1_rps": [], "c16_rps": []} for name in PROTOCOLS
    }
    with ExitStack() as stack:
        for name, protocol in PROTOCOLS.items():
            cmd = [sys.executable, __file__, "--serve", protocol, "--port", str(ports[name])]
            ready = f"http://127.0.0.1:{ports[name]}/readyz"
            stack.enter_context(running_server(cmd, ready_url=ready, env=env, timeout_s=180))
        urls = {name: f"http://127.0.0.1:{ports[name]}/v1/uhi/predict" for name in PROTOCOLS}
        for url in urls.values():  # warm-up
            wrk(url, body, connections=4, threads=1, seconds=1)
        for round_no in range(rounds):
            for name, url in urls.items():
                print(f"round {round_no + 1}/{rounds}: {name}", file=sys.stderr)
                c1 = wrk(url, body, connections=1, threads=1, seconds=seconds)
                c16 = wrk(url, body, connections=16, threads=2, seconds=seconds)
                runs[name]["c1_p50"].append(c1["p50_ms"])
                runs[name]["c1_p99"].append(c1["p99_ms"])
                runs[name]["c1_rps"].append(c1["rps"])
                runs[name]["c16_rps"].append(c16["rps"])
    return runs


def render(runs: dict[str, dict[str, list[float]]], command: str, load: float) -> str:
    med = {name: {k: statistics.median(v) for k, v in r.items()} for name, r in runs.items()}
    base = med["httptools (no header limits)"]
    lines = [
        "## Header limits: cost on `POST /v1/uhi/predict`",
        "",
        f"Machine: {machine_description()}.  ",
        f"Command: `{command}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"1-minute load average {load:.1f} before the run (other work on the same 2 cores).  ",
        "The same app, one uvicorn worker each, all up at once, interleaved rounds of wrk "
        "(c1 = 1 connection, c16 = 16); medians over rounds; ratio = c16 req/s ÷ plain httptools.",
        "",
        "| protocol | c1 p50 ms | c1 p99 ms | c1 req/s | c16 req/s | c16 ratio |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in med.items():
        lines.append(
            f"| {name} | {m['c1_p50']:.3f} | {m['c1_p99']:.3f} | {m['c1_rps']:.0f} | "
            f"{m['c16_rps']:.0f} | {m['c16_rps'] / base['c16_rps']:.2f}× |"
        )
    base_runs = runs["httptools (no header limits)"]
    lines.append("")
    for name, r in runs.items():
        if r is base_runs:
            continue
        paired = [
            statistics.median(
                mine / theirs for mine, theirs in zip(r[k], base_runs[k], strict=True)
            )
            for k in ("c1_p50", "c16_rps")
        ]
        lines.append(
            f"- {name}: median of per-round ratios to httptools (same round, same load): "
            f"c1 p50 latency {paired[0]:.2f}×, c16 req/s {paired[1]:.2f}×."
        )
    lines.append("")
    lines.append(
        "Per-round c16 req/s: "
        + "; ".join(
            f"{name.split(' ')[0] if 'terraops' not in name else 'terraops serve'}: "
            + ", ".join(f"{v:.0f}" for v in r["c16_rps"])
            for name, r in runs.items()
        )
        + "."
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", choices=sorted(set(PROTOCOLS.values())))
    parser.add_argument("--port", type=int)
    parser.add_argument("--home", type=Path)
    parser.add_argument("--size", type=int, default=512, help="scene size when training here")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--out", type=Path, help="write the section into this Markdown file")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return 0
    load = os.getloadavg()[0]
    home = (args.home or Path(tempfile.mkdtemp(prefix="terraops-bench-"))).resolve()
    from bench.run import prepare_home

    prepare_home(home, args.size)
    runs = measure(home, args.rounds, args.seconds)
    where = "--home HOME" if args.home else f"--size {args.size}"
    command = (
        f"python bench/header_limits.py {where} --rounds {args.rounds} --seconds {args.seconds:g}"
    )
    text = render(runs, command, load)
    if args.out:
        replace_section(args.out, "header-limits", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
