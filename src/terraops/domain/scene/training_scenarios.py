"""Random interventions for training cities: cities that carry their own what-ifs.

A model trained on drawn cities alone learns the city as drawn, where inputs
travel together: bright roofs are rare and scattered, a block's sealed
surroundings come with its own sealing, a roof's albedo with its shadow and
built-up index. Asked what a cool-roof block or a new district does — one
input moved alone, often past the brightest or densest cells it has seen —
a tree ensemble answers with a share of the effect (it split the effect among
the correlated inputs) or flat (past its training range).

A training city can carry interventions of its own: squares of every kind
(trees, a park, depaving, cool and green roofs, a development), placed where
each makes sense, with drawn parameters. The generator renders them with the
same physics as the rest of the city (:mod:`terraops.domain.scene.counterfactual`),
so the model sees cool-roof blocks, green roofs and new districts next to
untouched ones: the inputs decorrelate, and the response to each is learned
over the range a scenario asks for. The scenario is drawn from the city's seed
only (:data:`SCENARIO_STREAM`), so a city is reproducible, and is recorded in
the city's manifest.

The catch, measured (BENCHMARKS.md, what-if section): new parks, depaved
streets and green roofs join the least-sealed vegetated cells the rural
reference temperature is read off (:mod:`terraops.domain.rural_reference`)
and cool it by up to 2 K, so a model trained on such cities learns LST
relative to a lower background and runs hot on cities as drawn. The demo's
training cities are therefore drawn without interventions.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from scipy import ndimage

from terraops.domain.landcover import LandCover

SCENARIO_STREAM = 0x5CE7A
"""Mixed with the city's seed: the draw of its interventions (independent of its layout)."""
AREA_RANGE_M2 = (10_000.0, 250_000.0)
"""Squares from a block (1 ha) to a district (25 ha), log-uniform."""
PLACEMENT_SHARPNESS = 4.0
"""Where a square goes: chance ∝ (share of the classes it acts on)^this — mostly where it
makes sense, sometimes in a mixed neighbourhood."""
PLACED_ON: dict[str, tuple[LandCover, ...]] = {
    "tree_planting": (LandCover.ROAD, LandCover.GRASS),
    "park": (LandCover.ROAD, LandCover.BARE),
    "depave": (LandCover.ROAD,),
    "cool_roof": (LandCover.BUILDING,),
    "green_roof": (LandCover.BUILDING,),
    "develop": (LandCover.GRASS, LandCover.TREE, LandCover.BARE),
}
KINDS: tuple[str, ...] = tuple(PLACED_ON)


def draw_parameters(kind: str, rng: np.random.Generator) -> dict[str, float]:
    """One intervention's parameters, drawn over the ranges a planner asks for."""
    if kind == "tree_planting":
        return {"canopy": round(float(rng.uniform(0.2, 0.8)), 3)}
    if kind == "park":
        return {"canopy": round(float(rng.uniform(0.0, 0.6)), 3)}
    if kind in ("depave", "green_roof"):
        return {"share": round(float(rng.uniform(0.3, 1.0)), 3)}
    if kind == "cool_roof":
        return {"albedo": round(float(rng.uniform(0.4, 0.85)), 3)}
    if kind == "develop":
        built = float(rng.uniform(0.15, 0.5))
        sealed = float(rng.uniform(0.1, min(0.45, 0.95 - built)))
        return {"building_share": round(built, 3), "sealed_share": round(sealed, 3)}
    raise ValueError(f"unknown intervention {kind!r}")


def place(
    landcover: np.ndarray,
    classes: tuple[LandCover, ...],
    side_px: int,
    rng: np.random.Generator,
) -> tuple[int, int]:
    """Top-left (row, col) of a ``side_px`` square inside the scene, drawn where
    ``classes`` are common (see :data:`PLACEMENT_SHARPNESS`)."""
    h, w = landcover.shape
    side_px = min(side_px, h, w)
    wanted = np.isin(landcover, [int(c) for c in classes]).astype(np.float64)
    share = ndimage.uniform_filter(wanted, side_px, mode="constant")
    half = side_px // 2
    weight = np.zeros_like(share)
    inner = (slice(half, h - (side_px - half) + 1), slice(half, w - (side_px - half) + 1))
    weight[inner] = share[inner] ** PLACEMENT_SHARPNESS
    if weight.sum() <= 0:
        weight[inner] = 1.0
    flat = weight.ravel() / weight.sum()
    row, col = divmod(int(rng.choice(flat.size, p=flat)), w)
    return row - half, col - half


def random_scenario(
    landcover: np.ndarray,
    *,
    seed: int,
    count: int,
    origin: tuple[float, float],
    resolution: float,
    epsg: int,
) -> bytes:
    """A GeoJSON FeatureCollection of ``count`` square interventions for one city.

    ``landcover`` is the city's true land cover (where each kind makes sense);
    the first six squares take one kind each, the rest are drawn.
    """
    if count < 0:
        raise ValueError("the number of interventions must be 0 or more")
    rng = np.random.default_rng([int(seed), SCENARIO_STREAM])
    x0, y0 = origin
    features: list[dict[str, Any]] = []
    for index in range(count):
        kind = KINDS[index] if index < len(KINDS) else str(rng.choice(KINDS))
        area = float(np.exp(rng.uniform(*np.log(AREA_RANGE_M2))))
        side = max(3, round(np.sqrt(area) / resolution))
        row, col = place(landcover, PLACED_ON[kind], side, rng)
        left, top = x0 + col * resolution, y0 - row * resolution
        right, bottom = left + side * resolution, top - side * resolution
        ring = [[left, top], [right, top], [right, bottom], [left, bottom], [left, top]]
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "id": f"{kind}-{index}",
                    "intervention": kind,
                    **draw_parameters(kind, rng),
                },
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        )
    crs = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{epsg}"}}
    return json.dumps({"type": "FeatureCollection", "crs": crs, "features": features}).encode()


__all__ = [
    "KINDS",
    "PLACED_ON",
    "SCENARIO_STREAM",
    "draw_parameters",
    "place",
    "random_scenario",
]
