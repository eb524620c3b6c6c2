"""The flood case study's text, filled from its facts.

Problem → data → approach → measured result → what it means → limits.

Pure string building, like :mod:`terraops.pipelines.reports.heat_text`.
A city the flood model cannot run on (no elevation) gets the same sections,
with the reason in place of the numbers.
"""

from __future__ import annotations

from typing import Any

from terraops.pipelines.reports.plans import WATER_BUFFER_M
from terraops.pipelines.reports.text import (
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

PROBLEM = (
    "When a heavy storm breaks, which streets and buildings end up under water, and "
    "how much would unsealing the worst-placed paved ground help? A city needs the "
    "exposure for an ordinary heavy shower and for a rare cloudburst, and the effect of "
    "a depaving plan on both."
)


def _data(facts: dict[str, Any]) -> list[str]:
    s = facts["scene"]
    lines = [
        "## The data",
        "",
        f"- **City**: {s.get('title', s['name'])} (scene `{s['name']}`): "
        f"{s['size_px'][0]}×{s['size_px'][1]} pixels of "
        f"{num(s['resolution_m'], digits=0)} m ({num(s['area_km2'])} km², {s['crs']}), "
        + ("with an elevation model." if s["has_elevation"] else "without an elevation model."),
    ]
    if facts["applies"]:
        m, fp = facts["model"], facts["footprints"]
        source = (
            f"the registered building segmentation model ({fp['model']}, a U-Net)"
            if fp["kind"] == "segmentation"
            else f"the land cover classified from the imagery ({fp['reason']})"
        )
        lines += [
            f"- **Model**: `{m['name']}` v{m['version']} from the model registry, on cells of "
            f"{num(facts['cell_size_m'], digits=0)} m; a cell counts as flooded at a "
            f"probability of {num(facts['threshold'])} or more.",
            f"- **Building footprints**: from {source}.",
        ]
    return lines


def _exposure(facts: dict[str, Any]) -> list[str]:
    rows = []
    for storm, e in facts["exposure"].items():
        rows.append(
            [
                f"{storm} mm",
                num(e["flooded_area_ha"]),
                pct(e["flooded_share"]),
                f"{e['buildings_exposed']} of {e['buildings']}",
                num(e["building_area_exposed_ha"]),
                num(e["street_area_exposed_ha"]),
                pct(e["street_share_exposed"]),
            ]
        )
    return [
        "### Exposed streets and buildings",
        "",
        table(
            [
                "storm",
                "flooded (ha)",
                "of the city",
                "buildings exposed",
                "their footprint (ha)",
                "streets under water (ha)",
                "of the streets",
            ],
            rows,
        ),
        "",
        figure(
            "exposure",
            "Flood probability for the 30 mm and the 100 mm storm, with the "
            "depaving sites outlined",
        ),
    ]


def _plan(facts: dict[str, Any]) -> list[str]:
    rows = {r["id"]: r for r in facts["whatif"]["interventions"]}
    sites = []
    for p in facts["plan"]:
        row = rows[p["id"]]
        heavy = [s for s in row.get("storms", []) if s["rainfall_mm"] == 100.0]
        sites.append(
            [
                p["id"],
                place(p["lon_lat"]),
                num(p["score"], digits=3),
                num(row["area_ha"]),
                num(row["mean_delta"], digits=3, signed=True),
                interval_text(row["mean_delta_interval"], digits=3),
                num(heavy[0]["mean_delta"] if heavy else None, digits=3, signed=True),
            ]
        )
    primary = next((r.get("rainfall_mm") for r in rows.values()), None)
    effect = [
        [
            f"{num(e['rainfall_mm'], digits=0)} mm",
            num(e["flooded_area_delta_ha"], signed=True),
            f"{e['buildings_exposed_delta']:+d}",
            num(e["building_footprint_delta_m2"], digits=0, signed=True),
        ]
        for e in facts["effect"]
    ]
    return [
        "### A depaving plan and its effect",
        "",
        "The plan is chosen from the scene by a fixed rule: the stretches of about 100 m "
        "whose mean flood probability in the 100 mm storm times their paved share is highest, "
        f"at least {WATER_BUFFER_M:g} m from open water (where the flooding is the rain's, "
        "not a river's), "
        "have their paved ground turned to grass (`depave`, the whole of it). It is run as a "
        "what-if for every design storm: the same model predicts before and after.",
        "",
        f"Inside each site, the mean change of flood probability in the {num(primary, digits=0)} "
        "mm storm (with its 90 % interval across the models trained without one city each) "
        "and in the 100 mm storm:",
        "",
        table(
            [
                "site",
                "where (lon, lat)",
                "exposure score",
                "depaved (ha)",
                f"mean Δ, {num(primary, digits=0)} mm",
                "90 % interval",
                "mean Δ, 100 mm",
            ],
            sites,
        ),
        "",
        table(
            [
                "storm",
                "Δ flooded area (ha)",
                "Δ building pixels exposed",
                "Δ footprint exposed (m²)",
            ],
            effect,
        ),
        "",
        figure(
            "plan",
            "The depaving sites on the imagery (left) and the change of flood "
            "probability in the 100 mm storm, after − before (right)",
        ),
        "",
        figure("effect", "Change of flooded area per design storm"),
    ]


def _meaning(facts: dict[str, Any]) -> list[str]:
    light, heavy = (facts["exposure"][k] for k in list(facts["exposure"])[:2])
    lines = [
        "## What it means for the city",
        "",
        f"- From the 30 mm to the 100 mm storm, exposed buildings go from "
        f"{light['buildings_exposed']} to {heavy['buildings_exposed']} and streets under "
        f"water from {num(light['street_area_exposed_ha'])} to "
        f"{num(heavy['street_area_exposed_ha'])} ha.",
    ]
    for e in facts["effect"]:
        storm = f"{num(e['rainfall_mm'], digits=0)} mm"
        if e["flooded_area_delta_ha"]:
            lines.append(
                f"- Depaving {num(facts['depaved_ha'])} ha changes the flooded area by "
                f"{num(e['flooded_area_delta_ha'], signed=True)} ha in the {storm} storm."
            )
        else:
            lines.append(
                f"- In the {storm} storm, depaving {num(facts['depaved_ha'])} ha lowers the "
                "flood probability of the cells it touches but moves none of them across the "
                "flood threshold: the flooded area does not change."
            )
    lines.append(
        "- Depaving helps where the water comes from: sealed ground upstream of the low "
        "spots. Where the terrain collects water from a large catchment, unsealing a few "
        "streets moves little; that is a job for storage and drains."
    )
    return lines


def _limits(facts: dict[str, Any]) -> list[str]:
    counted = (
        [
            "- Exposure is counted on cells of the model grid: a building touching a flooded "
            "cell counts as exposed.",
            "",
        ]
        if facts["applies"]
        else []
    )
    return [
        "## Limits",
        "",
        *counted,
        "From the model card:",
        "",
        bullet_list(facts["limitations"]),
    ]


def flood_markdown(facts: dict[str, Any], command: str) -> str:
    """The whole case study as markdown."""
    head = [
        f"# Flood case study: {facts['scene'].get('title', facts['scene']['name'])}",
        "",
        command_line(command),
        "",
        "## The problem",
        "",
        PROBLEM,
        "",
        *_data(facts),
        "",
    ]
    if not facts["applies"]:
        return "\n".join(
            [
                *head,
                "## The approach, and why it does not apply here",
                "",
                f"The flood model cannot run on this city: {facts['reason']}.",
                "No flood numbers are given for it rather than numbers without a basis.",
                "",
                *_limits(facts),
                "",
            ]
        )
    return "\n".join(
        [
            *head,
            "## The approach",
            "",
            "1. Predict the flood probability of every cell for a 30 mm and a 100 mm storm "
            "with the registered model (`terraops predict-raster flood --param "
            "rainfall_mm=30`, then `=100`).",
            "2. Count the buildings (connected footprints) and the street surface in "
            "flooded cells.",
            "3. Draw a depaving plan from the scene by a fixed rule and run it as a what-if "
            "(`terraops whatif flood`).",
            "",
            "## Measured result",
            "",
            *_exposure(facts),
            "",
            *_plan(facts),
            "",
            *_meaning(facts),
            "",
            *_limits(facts),
            "",
            key_figures(FLOOD_KEY_FIGURES, facts),
            "",
        ]
    )


FLOOD_KEY_FIGURES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("flooded area, 30 mm", ("exposure", "30", "flooded_area_ha"), "ha"),
    ("flooded area, 100 mm", ("exposure", "100", "flooded_area_ha"), "ha"),
    ("streets under water, 100 mm", ("exposure", "100", "street_area_exposed_ha"), "ha"),
    ("ground depaved", ("depaved_ha",), "ha"),
)
"""(label, path in the facts, unit) of the key-figures table at the end of the text."""
