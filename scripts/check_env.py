#!/usr/bin/env python3
"""Report what terraops needs, what is installed and what is missing.

Standard library only, so it runs before anything is installed. Exits 1 when
something required is missing, so `make check-env` is an honest gate.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / ".venv" / "bin" / "python"

# distribution name -> why terraops needs it
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
    "torch": "U-Net",
    "onnxruntime": "fast CPU inference",
    "dask": "scale-out",
    "pytest": "tests",
    "playwright": "browser tests",
    "pystac": "STAC catalogue",
    "prometheus-client": "/metrics",
}
PROGRAMS = {
    "chromium": "/usr/bin/chromium (browser tests; Debian package chromium)",
    "prometheus": "/usr/bin/prometheus (metrics tests; Debian package prometheus)",
    "promtool": "/usr/bin/promtool (SLO rule tests; Debian package prometheus)",
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


def installed_versions() -> dict[str, str | None]:
    if not VENV_PY.exists():
        return dict.fromkeys(PACKAGES)
    res = subprocess.run(
        [str(VENV_PY), "-c", _PROBE, json.dumps(list(PACKAGES))],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(res.stdout)


def main() -> int:
    missing: list[str] = []
    print(f"python   {sys.version.split()[0]} ({sys.executable})")
    if VENV_PY.exists():
        print(f"venv     {VENV_PY.parent.parent}")
    else:
        print("venv     MISSING (.venv) — run `make install`")
        missing.append(".venv")
    for name, version in installed_versions().items():
        status = version or "MISSING"
        print(f"  {name:<20} {status:<12} {PACKAGES[name]}")
        if version is None:
            missing.append(name)
    for prog, why in PROGRAMS.items():
        path = shutil.which(prog)
        print(f"  {prog:<20} {'found' if path else 'MISSING':<12} {why}")
        if not path:
            missing.append(prog)
    home = Path(os.environ.get("TERRAOPS_HOME", ".terraops")).resolve()
    parent = home if home.exists() else home.parent
    writable = os.access(parent, os.W_OK)
    print(f"home     {home} ({'writable' if writable else 'NOT WRITABLE'})")
    if not writable:
        missing.append("TERRAOPS_HOME writable")
    tracking = os.environ.get("TERRAOPS_MLFLOW_TRACKING_URI") or f"sqlite:///{home}/mlflow.db"
    print(f"mlflow   {tracking}")
    if missing:
        print(f"\nmissing: {', '.join(missing)}  →  run `make install`")
        return 1
    print("\nall good")
    return 0


if __name__ == "__main__":
    sys.exit(main())
