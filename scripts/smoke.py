#!/usr/bin/env python3
"""Smoke check of a running terraops server: health, readiness, one prediction
per service with the documented example request. Exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import json
import sys

import httpx

LEGACY_UHI_REQUEST = {"ndvi": 0.5, "building_density": 0.7, "water_distance": 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    args = parser.parse_args()
    failures = 0
    with httpx.Client(base_url=args.url, timeout=10) as client:
        for path in ("/healthz", "/readyz"):
            r = client.get(path)
            print(f"GET {path} -> {r.status_code} {r.text[:200]}")
            failures += r.status_code != 200
        r = client.post("/v1/uhi/predict", json=LEGACY_UHI_REQUEST)
        print(f"POST /v1/uhi/predict {json.dumps(LEGACY_UHI_REQUEST)} -> {r.status_code} {r.text}")
        failures += r.status_code != 200
        if r.status_code == 200 and "version" not in r.json().get("model", {}):
            print("response lacks the model version")
            failures += 1
    print("smoke: OK" if not failures else f"smoke: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
