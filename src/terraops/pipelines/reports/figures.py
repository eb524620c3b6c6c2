"""Which figures a case study has and what each shows.

Drawn by :mod:`terraops.adapters.case_study_figures`.

The panels are built from the study's own grids and shapes (nothing is
recomputed for a figure), in km from the scene's bottom-left corner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from shapely.ops import unary_union

from terraops.adapters.case_study_figures import (
    BarGroup,
    MapPanel,
    Outline,
    grouped_bars,
    map_panels,
)
from terraops.domain.explain import driver_legend
from terraops.pipelines.reports.grids import Study, extent_km, to_km
from terraops.pipelines.reports.text import FIGURE_FILES

ZOOM_MARGIN_KM = 0.3


def _zoom(outlines: list[Outline], extent: tuple[float, float, float, float]) -> Any:
    """A square view around the outlines (plus a margin), inside the extent."""
    if not outlines:
        return None
    x0, y0, x1, y1 = unary_union([o.geometry for o in outlines]).bounds
    half = max(x1 - x0, y1 - y0) / 2 + ZOOM_MARGIN_KM
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return (
        max(cx - half, extent[0]),
        min(cx + half, extent[1]),
        max(cy - half, extent[2]),
        min(cy + half, extent[3]),
    )


def _symmetric(values: np.ndarray) -> tuple[float, float]:
    """±the 99th percentile of the non-zero |values| (a Δ is exactly 0 almost everywhere)."""
    finite = np.abs(values[np.isfinite(values)])
    finite = finite[finite > 1e-9]
    bound = float(np.percentile(finite, 99)) if finite.size else 1.0
    bound = max(bound, 1e-3)
    return (-bound, bound)


def _spread(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if not finite.size:
        return (0.0, 1.0)
    lo, hi = np.percentile(finite, [2, 98])
    return (float(lo), float(max(hi, lo + 1e-3)))


def _outlines(study: Study, key: str, colour: str, labels: bool = True) -> list[Outline]:
    assert study.frame is not None
    return [
        Outline(to_km(study.frame, shape), str(i) if labels else "", colour)
        for i, shape in enumerate(study.shapes.get(key, []), start=1)
    ]


def heat_figures(study: Study, out: Path) -> list[Path]:
    """hotspots.png, why.png, plan.png, cooling.png."""
    assert study.frame is not None
    g, extent = study.grids, extent_km(study.frame)
    spots = _outlines(study, "hot_spots", "black")
    plan = _outlines(study, "plan", "magenta", labels=False)
    zoom = _zoom(plan, extent)
    classes = [(c["code"], c["label"], c["colour"]) for c in driver_legend("uhi")]
    paths = [
        map_panels(
            out / FIGURE_FILES["hotspots"],
            [
                MapPanel(
                    "Land-surface temperature",
                    g["temperature"],
                    extent,
                    "RdYlBu_r",
                    _spread(g["temperature"]),
                    "°C",
                    outlines=spots,
                ),
                MapPanel(
                    "Surface heat-island intensity",
                    g["intensity"],
                    extent,
                    "YlOrRd",
                    _spread(g["intensity"]),
                    "K",
                    outlines=spots,
                ),
            ],
        ),
        map_panels(
            out / FIGURE_FILES["why"],
            [
                MapPanel(
                    "Dominant driver (pushes it up most)",
                    g["dominant"],
                    extent,
                    classes=classes,
                    outlines=spots,
                ),
                MapPanel(
                    "Built form and albedo",
                    g["why-built"],
                    extent,
                    "RdBu_r",
                    _symmetric(g["why-built"]),
                    "K",
                ),
                MapPanel(
                    "Vegetation",
                    g["why-vegetation"],
                    extent,
                    "RdBu_r",
                    _symmetric(g["why-vegetation"]),
                    "K",
                ),
            ],
            panel_size=4.0,
        ),
        map_panels(
            out / FIGURE_FILES["plan"],
            [
                MapPanel("The greening plan", g["rgb"], extent, outlines=plan, view=zoom),
                MapPanel(
                    "Δ temperature, after − before",
                    g["delta"],
                    extent,
                    "RdBu_r",
                    _symmetric(g["delta"]),
                    "K",
                    outlines=plan,
                    view=zoom,
                ),
            ],
        ),
    ]
    rows = study.facts["whatif"]["interventions"]
    groups = [
        BarGroup(
            r["id"],
            [
                r["mean_delta"] or 0.0,
                r["ring_100m_mean_delta"] or 0.0,
                r["ring_250m_mean_delta"] or 0.0,
            ],
            [tuple(r["mean_delta_interval"]) if r["mean_delta_interval"] else None],
        )
        for r in rows
    ]
    paths.append(
        grouped_bars(
            out / FIGURE_FILES["cooling"],
            groups,
            series=["inside", "0–100 m", "100–250 m"],
            ylabel="mean Δ temperature (K)",
            title="Cooling inside and around each intervention",
        )
    )
    return paths


def flood_figures(study: Study, out: Path) -> list[Path]:
    """exposure.png, plan.png, effect.png (none when the flood model does not apply)."""
    if not study.facts.get("applies"):
        return []
    assert study.frame is not None
    g, extent = study.grids, extent_km(study.frame)
    plan = _outlines(study, "plan", "magenta")
    zoom = _zoom(plan, extent)
    paths = [
        map_panels(
            out / FIGURE_FILES["exposure"],
            [
                MapPanel(
                    f"Flood probability, {key[1:]} mm",
                    g[key],
                    extent,
                    "Blues",
                    (0.0, 1.0),
                    "probability",
                    outlines=plan,
                )
                for key in ("p30", "p100")
            ],
        ),
        map_panels(
            out / FIGURE_FILES["plan"],
            [
                MapPanel("The depaving plan", g["rgb"], extent, outlines=plan, view=zoom),
                MapPanel(
                    "Δ flood probability, 100 mm",
                    g["delta"],
                    extent,
                    "RdBu_r",
                    _symmetric(g["delta"]),
                    "probability",
                    outlines=plan,
                    view=zoom,
                ),
            ],
        ),
    ]
    storms = study.facts["whatif"].get("storms", [])
    groups = [BarGroup(f"{s['rainfall_mm']:g} mm", [s["flooded_area_delta_ha"]]) for s in storms]
    paths.append(
        grouped_bars(
            out / FIGURE_FILES["effect"],
            groups,
            series=["Δ flooded area"],
            ylabel="Δ flooded area (ha)",
            title="Effect of the depaving plan per design storm",
        )
    )
    return paths
