#!/usr/bin/env python3
"""Helpers of ``make demo``: a step banner, "is there a champion already?", and the closing summary.

The demo is a chain of make targets; these three small jobs need the registry or
a clock, which a Makefile line does badly. The home is the one ``make`` exports
(``TERRAOPS_HOME``), read through the same settings as every command.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from terraops.settings import Settings

SERVICES = ("uhi", "flood", "segmentation")
BOLD, DIM, RESET = "\033[1m", "\033[2m", "\033[0m"


def _elapsed(start_file: Path) -> str:
    """Time since the demo began (the start file holds its epoch seconds), as 1 min 05 s."""
    try:
        seconds = int(time.time() - float(start_file.read_text().strip()))
    except (OSError, ValueError):
        return ""
    return f"{seconds // 60} min {seconds % 60:02d} s"


def step(number: str, title: str, start_file: Path) -> int:
    """One progress line per stage of the demo, with the time since it began."""
    since = _elapsed(start_file)
    print(f"\n{BOLD}==> [{number}] {title}{RESET}" + (f"  {DIM}({since}){RESET}" if since else ""))
    return 0


def champion_version(settings: Settings, service: str) -> int | None:
    """The service's champion version, or None (no registry yet counts as none)."""
    from terraops.adapters.registry import ModelRegistry  # the registry opens MLflow

    if not Path(settings.home_dir / "mlflow.db").exists() and not settings.mlflow_tracking_uri:
        return None
    return ModelRegistry(settings).get_alias(service, "champion")


def has_champion(service: str) -> int:
    """Exit status 0 when ``service`` has a champion (make skips training it), else 1."""
    version = champion_version(Settings(), service)
    if version is None:
        return 1
    print(f"{service}: reusing champion v{version} (delete TERRAOPS_HOME to start afresh)")
    return 0


def _cities(home: Path) -> str:
    """What the scene picker holds; Liverpool only when its sample could be fetched."""
    others = (
        "Olinda/Recife (real Landsat 7, dense, no thermal band: heat predicted, not compared), "
        "the Gulf coast and the held-out synthetic city"
    )
    if (home / "real" / "liverpool" / "scene.json").exists():
        return (
            "the map opens on Liverpool (real Landsat 8, observed surface temperature); "
            f"the scene picker has {others}"
        )
    return f"the scene picker has {others} (Liverpool: its sample could not be fetched)"


def summary(url: str, token_file: Path, cards: Path, start_file: Path) -> int:
    """Where everything is: the pages, the admin token, MLflow, the files the demo wrote."""
    settings = Settings()
    home = settings.home_dir
    champions = ", ".join(
        f"{service} v{version}"
        if (version := champion_version(settings, service))
        else f"{service} (none)"
        for service in SERVICES
    )
    mlflow = Path(sys.executable).with_name("mlflow")
    rows = [
        ("map", f"{url}/map   (heat; flood: {url}/map?view=flood; footprints in the layer list)"),
        ("cities", _cities(home)),
        ("what-if", "on the map: draw a polygon, pick an intervention, run it; a greening "
         "plan's cooling is already in the layer list"),
        ("case study", f"{home / 'case-studies' / 'heat' / 'index.md'}"),
        ("dashboard", f"{url}/   (promote, roll back, SLOs, drift)"),
        ("API docs", f"{url}/docs"),
        ("admin token", f"{token_file}   (cat it; the dashboard and admin API ask for it)"),
        ("MLflow UI", f"{shlex.quote(str(mlflow))} ui --backend-store-uri "
         f"{shlex.quote(settings.tracking_uri)} --port 5000"),
        ("champions", champions),
        ("model cards", str(cards)),
        ("map layers", str(settings.layers_dir)),
        ("reports", str(settings.reports_dir)),
        ("home", f"{home}   (everything the demo wrote; delete it to start afresh)"),
    ]  # fmt: skip
    since = _elapsed(start_file)
    print(f"\n{BOLD}terraops demo ready{RESET}" + (f" in {since}" if since else ""))
    for name, value in rows:
        print(f"  {name:<12} {value}")
    print(f"{DIM}  stop the server with Ctrl-C; `make serve` starts it again{RESET}\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    stage = commands.add_parser("step", help="print a progress line")
    stage.add_argument("number")
    stage.add_argument("title")
    champion = commands.add_parser("has-champion", help="exit 0 when SERVICE has a champion")
    champion.add_argument("service")
    done = commands.add_parser("summary", help="where everything is")
    done.add_argument("--url", required=True)
    done.add_argument("--token-file", type=Path, required=True)
    done.add_argument("--cards", type=Path, required=True)
    for sub in (stage, done):
        sub.add_argument("--start-file", type=Path, default=Path(os.devnull))
    args = parser.parse_args()
    if args.command == "step":
        return step(args.number, args.title, args.start_file)
    if args.command == "has-champion":
        return has_champion(args.service)
    return summary(args.url, args.token_file, args.cards, args.start_file)


if __name__ == "__main__":
    sys.exit(main())
