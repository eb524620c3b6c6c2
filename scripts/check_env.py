#!/usr/bin/env python3
"""Report what terraops needs, what is installed and what is missing.

Standard library only, so it runs before anything is installed. Exits 1 when
something `make test` needs is missing, so `make check-env` is an honest gate;
each missing piece says what it costs (which commands or tests) and how to get
it. The ``segment`` extra's packages are read from pyproject.toml, so this list
cannot drift from what ``pip install -e '.[segment]'`` installs.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / ".venv" / "bin" / "python"

# distribution name -> why terraops needs it (core install)
PACKAGES = {
    "terraops": "this project (editable install)",
    "fastapi": "prediction API",
    "uvicorn": "API server",
    "fastapi-offline": "offline /docs",
    "pydantic-settings": "TERRAOPS_ settings",
    "typer": "CLI",
    "lightgbm": "tabular models",
    "scikit-learn": "metrics and CV",
    "mlflow": "tracking and registry",
    "rasterio": "GeoTIFF I/O",
    "rio-cogeo": "Cloud Optimized GeoTIFFs",
    "titiler.core": "map tiles",
    "evidently": "drift reports",
    "great-expectations": "data quality",
    "dask": "scale-out",
    "psycopg": "PostgreSQL state DB (scale-out)",
    "psycopg-binary": "psycopg's bundled libpq",
    "pystac": "STAC catalogue",
    "prometheus-client": "/metrics",
    "pytest": "tests (dev extra)",
    "playwright": "browser tests (dev extra)",
}
SEGMENT_EXTRA = "segment"

# Debian programs the tests use: name -> (where it may be, Debian package, what lacking it
# costs). Same packages and wording as scripts/install-system-deps.sh.
PROGRAMS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "chromium": (("/usr/bin/chromium",), "chromium", "browser tests (tests/e2e) fail"),
    "prometheus": (
        ("/usr/bin/prometheus",),
        "prometheus",
        "metrics tests (tests/integration/test_prometheus.py) fail",
    ),
    "promtool": (("/usr/bin/promtool",), "prometheus", "promtool SLO rule tests are skipped"),
    "alertmanager": (
        ("/usr/bin/prometheus-alertmanager",),
        "prometheus-alertmanager",
        "alert delivery test (tests/integration/test_alerting.py) is skipped",
    ),
    "postgres": (
        ("/usr/lib/postgresql/*/bin/postgres",),
        "postgresql",
        "scale-out tests (tests/integration/test_shared_registry.py) are skipped",
    ),
}

_PROBE = """
import json, importlib.metadata as md, sys
out = {}
for name in json.loads(sys.argv[1]):
    try:
        out[name] = md.version(name)
    except md.PackageNotFoundError:
        out[name] = None
print(json.dumps(out))
"""


def extra_packages(extra: str) -> list[str]:
    """Distribution names of ``extra`` in pyproject.toml (versions and markers dropped)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [
        re.split(r"[\[<>=!~;\s]", req, maxsplit=1)[0]
        for req in project.get("optional-dependencies", {}).get(extra, [])
    ]
    return [n for n in names if n]


def installed_versions(names: list[str]) -> dict[str, str | None]:
    """Version of each distribution in the project's .venv (None: not installed)."""
    if not VENV_PY.exists():
        return dict.fromkeys(names)
    res = subprocess.run(
        [str(VENV_PY), "-c", _PROBE, json.dumps(names)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(res.stdout)


def find_program(name: str, places: tuple[str, ...]) -> str | None:
    """The program's path: a known place (globs allowed), else on PATH."""
    for place in places:
        found = sorted(glob.glob(place))
        if found:
            return found[-1]
    return shutil.which(name)


def report_packages(missing: list[str]) -> None:
    segment = extra_packages(SEGMENT_EXTRA)
    versions = installed_versions([*PACKAGES, *segment])
    print("packages (core install)")
    for name, why in PACKAGES.items():
        version = versions[name]
        print(f"  {name:<20} {version or 'MISSING':<12} {why}")
        if version is None:
            missing.append(name)
    absent = [n for n in segment if versions[n] is None]
    state = "installed" if not absent else "NOT INSTALLED"
    print(f"extra    {SEGMENT_EXTRA} (U-Net segmentation): {state}")
    for name in segment:
        print(f"  {name:<20} {versions[name] or 'MISSING'}")
    if absent:
        print(
            "  without it: `terraops segment ...` and POST /v1/segment answer 'install the "
            "segment extra'; `make test` needs it.\n"
            "  install: .venv/bin/pip install -c constraints.txt -e '.[segment]' (or make install)"
        )
        missing.append(f"extra {SEGMENT_EXTRA}")


def report_programs(missing: list[str]) -> None:
    print("Debian packages (scripts/install-system-deps.sh, as root):")
    lacking: set[str] = set()
    for name, (places, package, cost) in PROGRAMS.items():
        path = find_program(name, places)
        print(f"  {name:<20} {'found' if path else 'MISSING':<12} {path or package}")
        if not path:
            print(f"  {'':<20} {'':<12} without it: {cost}")
            missing.append(name)
            lacking.add(package)
    if lacking:
        print(f"  install as root: apt-get install -y {' '.join(sorted(lacking))}")


def main() -> int:
    missing: list[str] = []
    print(f"python   {sys.version.split()[0]} ({sys.executable})")
    if VENV_PY.exists():
        print(f"venv     {VENV_PY.parent.parent}")
    else:
        print("venv     MISSING (.venv) — run `make install`")
        missing.append(".venv")
    report_packages(missing)
    report_programs(missing)
    home = Path(os.environ.get("TERRAOPS_HOME", ".terraops")).resolve()
    parent = home if home.exists() else home.parent
    writable = os.access(parent, os.W_OK)
    print(f"home     {home} ({'writable' if writable else 'NOT WRITABLE'})")
    if not writable:
        missing.append("TERRAOPS_HOME writable")
    tracking = os.environ.get("TERRAOPS_MLFLOW_TRACKING_URI") or f"sqlite:///{home}/mlflow.db"
    print(f"mlflow   {tracking}")
    if missing:
        print(f"\nmissing: {', '.join(missing)}  →  run `make install` (Debian packages: as root)")
        return 1
    print("\nall good")
    return 0


if __name__ == "__main__":
    sys.exit(main())
