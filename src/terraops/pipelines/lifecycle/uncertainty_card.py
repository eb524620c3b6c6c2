"""The model card's "How sure" rows: calibrated-interval metrics logged by training.

Training logs them to the run (:mod:`terraops.pipelines.training.calibration`):
coverage of the 90 % interval on held-out cities, overall, per land-cover class
and for requests that give only the required fields, its mean width and
interval score, each variant's coverage, worst class and score, and the share
of held-out cells inside the area of applicability. A version trained before
calibration has none and the card says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from terraops.domain.uncertainty import CELL_CLASSES, VARIANTS


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _without(classes: str) -> str:
    if classes in ("", "none"):
        return ""
    return (
        f"Cells classed {classes.replace(',', ', ')} get no interval either: on held-out "
        "cities every variant fell more than 5 points short of 90 % for them, so how the "
        "model errs there in a new city cannot be told from the training cities. "
    )


def uncertainty_section(
    task: str, metrics: Mapping[str, float], params: Mapping[str, Any]
) -> list[str]:
    """Markdown lines of the section (empty for a classifier: its probabilities are the band)."""
    if task != "regression":
        return []
    lines = ["## How sure: calibrated intervals", ""]
    if "interval_coverage_90" not in metrics:
        return [*lines, "This version was trained without calibrated intervals.", ""]
    variant = params.get("uncertainty/variant", "?")
    unit = params.get("uncertainty/held_out_unit", "city")
    held_out = "cities" if unit == "city" else "spatial blocks of the one city"
    lines += [
        f"Conformal 90 % intervals calibrated on residuals from held-out {held_out}, "
        f"variant **{variant}** (the kept one of {', '.join(VARIANTS)}; `cv_plus` centres "
        "each score on the held-out model that produced it, the others on this version). "
        "Each score is the residual divided by the cell's expected error, so bands widen "
        "where the model is less sure; the Mondrian variants (`mondrian`, `mondrian_city`, "
        "`cv_plus`) take the quantile per land-cover class from scores of at least three "
        "cities, every city weighing the same, and fall back to all classes together "
        "otherwise. Cells unlike the "
        "training data (outside the area of applicability, Meyer & Pebesma 2021) get no "
        "interval. "
        + _without(params.get("uncertainty/classes_without_interval", "none"))
        + "Measured on held-out cities:",
        "",
        "| cells | coverage | averaged over the cities | mean width | interval score |",
        "|---|---|---|---|---|",
        f"| all | {_fmt(metrics.get('interval_coverage_90'))} | | "
        f"{_fmt(metrics.get('interval_mean_width_90'), 2)} | "
        f"{_fmt(metrics.get('interval_score_90'), 2)} |",
        *(
            f"| {name} | {_fmt(metrics.get(f'interval_coverage_90_{name}'))} | "
            f"{_fmt(metrics.get(f'interval_coverage_90_{name}_city_mean'))} | | |"
            for name in CELL_CLASSES
        ),
        f"| required fields only | {_fmt(metrics.get('interval_coverage_90_required_only'))} "
        "| | | |",
        "",
        "Every variant on the same held-out-city residuals (the kept one has the smallest "
        "interval score among those that leave no land-cover class more than 5 points "
        "below 90 %, each class's coverage averaged over the held-out cities; a band wider "
        "than needed is already paid for in the score):",
        "",
        "| variant | coverage | worst class off by | mean width | interval score |",
        "|---|---|---|---|---|",
        *(
            f"| {v}{' (kept)' if v == variant else ''} | "
            f"{_fmt(metrics.get(f'interval_coverage_90_{v}'))} | "
            f"{_fmt(metrics.get(f'interval_worst_class_gap_90_{v}'))} | "
            f"{_fmt(metrics.get(f'interval_mean_width_90_{v}'), 2)} | "
            f"{_fmt(metrics.get(f'interval_score_90_{v}'), 2)} |"
            for v in VARIANTS
        ),
        "",
        "Held-out cells inside the area of applicability: "
        f"{_fmt(metrics.get('aoa_share_inside_held_out'))}. The held-out residuals come "
        "from models that saw one city fewer than this version, so on new cities the "
        "intervals tend to cover more than their level, less so the more training cities "
        "(`cv_plus` avoids this by centring on those models). Coverage on cities no part "
        "of training saw, per land-cover class and on the real cities, is measured in "
        "BENCHMARKS.md.",
        "",
    ]
    return lines
