"""How fast the command line answers: listing commands, and where a heavy command's time goes.

Each command runs in its own process, as a user types it, ``--runs`` times; the
median wall time is reported. The listing commands run on the benchmark home
(a trained and promoted UHI model, the layers of one predicted scene):
``terraops --help``, ``terraops models list uhi``, ``terraops layers list``
piped (tab-separated) and on a terminal (a rich table, through ``script`` for a
pseudo-terminal). The heavy commands (``predict-raster``, ``whatif``) run with
``--verbose``, which prints the split of their time: interpreter start-up and
CLI imports, the imports made by the command, fetching and loading the model,
and the work.

``python bench/cli_speed.py --home H --out BENCHMARKS.md`` runs it alone;
``make bench`` runs it too.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.harness import machine_description, replace_section  # noqa: E402
from bench.run import TERRAOPS, prepare_home  # noqa: E402
from bench.whatif_speed import _scenario  # noqa: E402

GOALS_S = {"--help": 0.5, "models list uhi": 1.5, "layers list": 1.5}
SPLIT = re.compile(r"time: (?P<parts>.*) · total (?P<total>[\d.]+) s")


def _timed(argv: list[str], env: dict[str, str], *, terminal: bool = False) -> tuple[float, str]:
    """Wall seconds of one process, and its stderr."""
    command = ["script", "-qec", shlex.join(argv), "/dev/null"] if terminal else argv
    started = time.perf_counter()
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed:\n{done.stderr[-2000:]}")
    return wall, done.stderr


def _split(stderr: str) -> dict[str, float]:
    match = SPLIT.search(re.sub(r"\x1b\[[0-9;]*m", "", stderr))
    if match is None:
        raise RuntimeError(f"no time split in the output:\n{stderr[-1000:]}")
    parts = {}
    for part in match["parts"].split(" · "):
        name, seconds, _ = part.rsplit(" ", 2)
        parts[name] = float(seconds)
    return parts


def measure(home: Path, runs: int) -> dict[str, Any]:
    env = prepare_home(home, 512)
    scene = home / "scenes" / "cli-512"
    if not (scene / "scene.json").exists():
        subprocess.run(
            [TERRAOPS, "scene", "generate", "--seed", "11", "--size", "512", "--out", str(scene)],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
    from terraops.adapters.raster_io import read_scene

    scenario = home / "cli-scenario.geojson"
    scenario.write_bytes(_scenario(read_scene(scene), 0.0))
    heavy = {
        "predict-raster": [TERRAOPS, "--verbose", "predict-raster", "uhi", "--scene", str(scene)],
        "whatif": [
            TERRAOPS, "--verbose", "whatif", "uhi", "--scene", str(scene),
            "--scenario", str(scenario), "--json",
        ],
    }  # fmt: skip
    _timed(heavy["predict-raster"], env)  # builds the scene's cell table and layers once
    listing = {
        "--help": ([TERRAOPS, "--help"], False),
        "models list uhi": ([TERRAOPS, "models", "list", "uhi"], False),
        "layers list": ([TERRAOPS, "layers", "list"], False),
        "layers list (terminal)": ([TERRAOPS, "layers", "list"], True),
    }
    walls: dict[str, list[float]] = {name: [] for name in [*listing, *heavy]}
    splits: dict[str, list[dict[str, float]]] = {name: [] for name in heavy}
    for _ in range(runs):  # interleaved, so noise hits every command alike
        for name, (argv, terminal) in listing.items():
            walls[name].append(_timed(argv, env, terminal=terminal)[0])
        for name, argv in heavy.items():
            wall, stderr = _timed(argv, env)
            walls[name].append(wall)
            splits[name].append(_split(stderr))
    layers = (
        subprocess.run(
            [TERRAOPS, "layers", "list"], env={**os.environ, **env}, capture_output=True, text=True
        ).stdout.count("\n")
        - 1
    )
    return {
        "runs": runs,
        "layers": layers,
        "median_s": {name: statistics.median(values) for name, values in walls.items()},
        "split_s": {
            name: {part: statistics.median(s[part] for s in runs_) for part in runs_[0]}
            for name, runs_ in splits.items()
        },
    }


def render(result: dict[str, Any], command: str) -> str:
    lines = [
        "## Command line: answer times and where a heavy command's time goes",
        "",
        f"Machine: {machine_description()}. Command: `{command}`. Each command is its own "
        f"process, median of {result['runs']} interleaved runs; the catalogue holds "
        f"{result['layers']} layers.",
        "",
        "| command | median s | goal s |",
        "|---|---|---|",
    ]
    for name, seconds in result["median_s"].items():
        goal = GOALS_S.get(name.replace(" (terminal)", ""))
        verdict = f"≤ {goal:g} ({'met' if seconds <= goal else 'not met'})" if goal else "–"
        lines.append(f"| `terraops {name}` | {seconds:.2f} | {verdict} |")
    lines += [
        "",
        "Heavy commands with `--verbose` (median seconds of each part; start-up = the "
        "interpreter and the CLI's own imports, imports = those the command made):",
        "",
    ]
    parts = list(next(iter(result["split_s"].values())))
    lines.append("| command | " + " | ".join(parts) + " |")
    lines.append("|---|" + "---|" * len(parts))
    for name, split in result["split_s"].items():
        lines.append(
            f"| `{name}` | " + " | ".join(f"{split.get(p, 0.0):.2f}" for p in parts) + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=None, help="Benchmark home (kept).")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="BENCHMARKS.md to update.")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="terraops-cli-bench-"))
    result = measure(home, args.runs)
    body = render(result, f"python bench/cli_speed.py --runs {args.runs}")
    print(body)
    if args.out is not None:
        replace_section(args.out, "cli", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
