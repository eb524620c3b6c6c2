"""The heat case study's text, filled from its facts.

Problem → data → approach → measured result → what it means → limits.

Pure string building: every number printed is read from the facts the run
wrote (``facts.json`` beside the text), formatted by :mod:`terraops.pipelines.reports.text`,
so the text can be checked against the JSON number by number.
"""

from __future__ import annotations

from typing import Any

from terraops.domain.explain import service_drivers
from terraops.pipelines.reports.text import (
    FIGURE_FILES,
    bullet_list,
    command_line,
    figure,
    interval_text,
    key_figures,
    num,
    pct,
    place,
    table,
)

STREET = "tree_planting"
DRIVERS = service_drivers("uhi")


def _driver_words(key: str) -> str:
    """``Vegetation (little greenery)``: the driver and what pushes the temperature up."""
    if key not in DRIVERS.keys:
        return "none"
    driver = DRIVERS.driver(key)
    return f"{driver.label} ({driver.up})"


def _where(facts: dict[str, Any]) -> list[str]:
    t = facts["temperature"]
    spots = facts["hot_spots"]
    rows = [
        [
            str(s["rank"]),
            place(s["lon_lat"]),
            num(s["area_ha"]),
            num(s["mean_c"]),
            num(s["max_c"]),
            num(s["intensity_k"]),
            _driver_words(s["dominant_driver"]),
        ]
        for s in spots
    ]
    return [
        "### Where it is hot",
        "",
        f"The model puts the city's mean land-surface temperature at {num(t['mean_c'])} °C "
        f"(10th–90th percentile {num(t['p10_c'])}–{num(t['p90_c'])} °C). The hot spots are the "
        f"connected areas at or above the 90th percentile, {num(t['hot_spot_threshold_c'])} °C: "
        f"there are {facts['hot_spot_count']} of them. Against the city's rural reference of "
        f"{num(t['rural_reference_c'])} °C the surface heat island reaches "
        f"{num(t['max_intensity_k'])} K.",
        "",
        table(
            [
                "hot spot",
                "where (lon, lat)",
                "area (ha)",
                "mean (°C)",
                "max (°C)",
                "heat island (K)",
                "main driver",
            ],
            rows,
        ),
        "",
        figure(
            "hotspots",
            "Predicted land-surface temperature with the hot spots numbered "
            "(left) and the surface heat-island intensity (right)",
        ),
    ]


def _why(facts: dict[str, Any]) -> list[str]:
    shares = sorted(facts["dominant_driver_share"].items(), key=lambda kv: -kv[1])
    lead, share = next(((k, v) for k, v in shares if k in DRIVERS.keys), shares[0])
    lines = [
        "### Why it is hot there",
        "",
        "Each cell's prediction is split into drivers (TreeSHAP contributions summed by "
        "driver). The driver that pushes a cell's temperature up the most is "
        f"{_driver_words(lead).lower()} in {pct(share)} of the city's cells.",
    ]
    if facts["hot_spots"]:
        ranked = {d.key for d in DRIVERS.drivers if d.ranked}
        first = facts["hot_spots"][0]
        pushes = ", ".join(
            f"{DRIVERS.driver(key).label.lower()} {num(value, signed=True)} K"
            for key, value in sorted(first["drivers_k"].items(), key=lambda kv: -abs(kv[1] or 0.0))
            if value is not None and key in ranked
        )
        lines += [
            "",
            "In the largest hot spot the drivers move the temperature, relative to the "
            f"model's average cell, by: {pushes}. (The day's reference temperature, the same "
            "for every cell, is left out.)",
        ]
    lines += [
        "",
        figure(
            "why",
            "The dominant driver of each cell (left) and the contributions of "
            "built form and of vegetation (K; red warms, blue cools)",
        ),
    ]
    return lines


def _plan(facts: dict[str, Any]) -> list[str]:
    rows = []
    for row in facts["whatif"]["interventions"]:
        drivers = [d for d in row["drivers"] if d["delta"]][:1]
        rows.append(
            [
                row["id"],
                "street trees" if row["intervention"] == STREET else row["intervention"],
                num(row["area_ha"]),
                num(row["mean_delta"], signed=True),
                interval_text(row["mean_delta_interval"]),
                num(row["ring_100m_mean_delta"], signed=True),
                num(row["ring_250m_mean_delta"], signed=True),
                drivers[0]["driver"] if drivers else "—",
            ]
        )
    c = facts["cooling"]
    streets = sum(1 for p in facts["plan"] if p["intervention"] == STREET)
    park = [p for p in facts["plan"] if p["intervention"] == "park"]
    return [
        "### A greening plan and its cooling",
        "",
        f"The plan is chosen from the scene by a fixed rule: trees (canopy "
        f"{num(_param(facts, STREET, 'canopy'))} of the plantable ground) on the road surface of "
        f"the {streets} hottest street stretches of about 100 m"
        + (", and the hottest mostly paved lot of about 80 m made a park." if park else "."),
        "It is run as a what-if: the interventions edit the imagery and land cover inside "
        "their polygons, every feature is recomputed (neighbourhoods included), and the same "
        "model predicts before and after.",
        "",
        table(
            [
                "id",
                "what",
                "area (ha)",
                "mean Δ (K)",
                "90 % interval (K)",
                "0–100 m (K)",
                "100–250 m (K)",
                "moved most by",
            ],
            rows,
        ),
        "",
        f"Altogether {num(c['planted_ha'])} ha planted cool the city's surface by "
        f"{num(c['cooling_k_ha'])} K·ha (the sum of every cell's cooling times its area): "
        f"{num(c['cooling_per_planted_ha'])} K·ha per hectare planted. "
        f"{num(c['area_cooled_ha'])} ha cool by more than {num(c['cooled_threshold_k'])} K; "
        f"the strongest cell cools by {num(c['max_cooling_k'])} K.",
        "",
        figure(
            "plan",
            "The plan on the imagery (left) and the change of predicted "
            "temperature, after − before (right)",
        ),
        "",
        figure(
            "cooling",
            "Mean Δ inside each intervention with its 90 % interval, and in "
            "the rings around it (spillover)",
        ),
    ]


def _param(facts: dict[str, Any], kind: str, name: str) -> float | None:
    values = [p["params"].get(name) for p in facts["plan"] if p["intervention"] == kind]
    return values[0] if values else None


def _meaning(facts: dict[str, Any]) -> list[str]:
    lines = ["## What it means for the city", ""]
    for group in facts["by_kind"]:
        if group["mean_delta"] is None:
            continue
        street = group["intervention"] == STREET
        name = "Street trees" if street else "The park"
        verb = "change" if street else "changes"
        ground = "the ground they cover" if street else "the ground it covers"
        lines.append(
            f"- {name} ({num(group['area_ha'])} ha) {verb} the surface temperature of {ground} "
            f"by {num(group['mean_delta'], signed=True)} K on average (area-weighted): "
            f"{num(group['cooling_per_ha'])} K·ha of cooling inside per hectare, before any "
            "spillover."
        )
    spill = facts["spillover_100m_k"]
    if spill:
        lines.append(
            f"- The cooling spills over: within 100 m of the interventions the surface changes "
            f"by {num(spill[0], signed=True)} to {num(spill[1], signed=True)} K."
        )
    drivers = [s["dominant_driver"] for s in facts["hot_spots"]]
    if drivers:
        lead = max(set(drivers), key=drivers.count)
        lines.append(
            f"- In {drivers.count(lead)} of the {len(drivers)} largest hot spots the main "
            f"reason for the heat is {_driver_words(lead).lower()}: that is what a plan for "
            "them has to change."
        )
    lines.append(
        "- These are screening numbers for land-surface (skin) temperature, to rank places "
        "and options — not air temperature, and not a design for one plot."
    )
    return lines


def _limits(facts: dict[str, Any]) -> list[str]:
    interval = facts.get("interval")
    lines = ["## Limits", ""]
    if interval:
        lines.append(
            f"- {pct(interval['share_inside_domain'])} of the city's cells are inside the "
            "model's area of applicability (inputs like those it was trained on); the "
            f"{pct(interval['level'], 0)} prediction interval is {num(interval['mean_width'])} K "
            "wide on average there."
        )
    else:
        lines.append("- This model version keeps no calibrated intervals: train a new one.")
    if not facts["scene"]["synthetic"]:
        lines.append(
            "- This is a real city, and the model learned from synthetic cities: read the "
            "ranking of places more than the absolute temperatures."
        )
    lines += ["", "From the model card:", "", bullet_list(facts["limitations"])]
    return lines


def _data(facts: dict[str, Any]) -> list[str]:
    s, m = facts["scene"], facts["model"]
    kind = "a synthetic city" if s["synthetic"] else "a real city (satellite imagery)"
    title = s.get("title", s["name"])
    # "a synthetic city (scene …), a synthetic city" says nothing twice.
    kind_text = "" if title == kind else f", {kind}"
    lines = [
        "## The data",
        "",
        f"- **City**: {title} (scene `{s['name']}`){kind_text}: "
        f"{s['size_px'][0]}×{s['size_px'][1]} pixels of "
        f"{num(s['resolution_m'], digits=0)} m ({num(s['area_km2'])} km², {s['crs']}), "
        f"around {place(s['lon_lat'])}.",
        f"- **Model**: `{m['name']}` v{m['version']} from the model registry, predicting "
        f"{facts['cells']} cells of {num(facts['cell_size_m'], digits=0)} m.",
    ]
    evaluation = facts.get("evaluation")
    if evaluation and "mae" in evaluation:
        lines.append(
            f"- **Check against the city's own land-surface temperature**: mean absolute "
            f"error {num(evaluation['mae'])} K over {evaluation['n']} cells."
        )
    return lines


def heat_markdown(facts: dict[str, Any], command: str) -> str:
    """The whole case study as markdown."""
    parts = [
        f"# Heat case study: {facts['scene'].get('title', facts['scene']['name'])}",
        "",
        command_line(command),
        "",
        "## The problem",
        "",
        "On a hot day, which streets heat up the most, why, and how much cooler would "
        "they be with trees or a park? A city deciding where to plant needs the places, "
        "the reasons and the expected effect with its uncertainty.",
        "",
        *_data(facts),
        "",
        "## The approach",
        "",
        "1. Predict the land-surface temperature of every cell with the registered model, "
        "with its explanations and calibrated intervals (`terraops predict-raster uhi "
        "--explain --interval 0.9`).",
        "2. Find the hot spots by the map's rule and describe each: where, how hot, why.",
        "3. Draw a greening plan from the scene by a fixed rule and run it as a what-if "
        "(`terraops whatif uhi`).",
        "",
        "## Measured result",
        "",
        *_where(facts),
        "",
        *_why(facts),
        "",
        *_plan(facts),
        "",
        *_meaning(facts),
        "",
        *_limits(facts),
        "",
        key_figures(HEAT_KEY_FIGURES, facts),
        "",
    ]
    return "\n".join(parts)


HEAT_KEY_FIGURES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("mean temperature", ("temperature", "mean_c"), "°C"),
    ("hot-spot threshold", ("temperature", "hot_spot_threshold_c"), "°C"),
    ("largest heat-island intensity", ("temperature", "max_intensity_k"), "K"),
    ("area planted", ("cooling", "planted_ha"), "ha"),
    ("cooling", ("cooling", "cooling_k_ha"), "K·ha"),
    ("cooling per hectare planted", ("cooling", "cooling_per_planted_ha"), "K·ha/ha"),
    ("strongest cell cooling", ("cooling", "max_cooling_k"), "K"),
)
"""(label, path in the facts, unit) of the key-figures table at the end of the text."""

__all__ = ["FIGURE_FILES", "HEAT_KEY_FIGURES", "heat_markdown"]
