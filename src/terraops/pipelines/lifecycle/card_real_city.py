"""The model card's side-by-side table of a real city: synthetic, adapted, from scratch, NDVI.

Rendered from the ``city_rows`` block of a real-scene report
(:func:`terraops.pipelines.training.real_city_rows.side_by_side`); a report
written before that block existed renders nothing here.
"""

from __future__ import annotations

from typing import Any

_LABELS = {
    "synthetic": "registered synthetic model v{base} (as is)",
    "adapted": "v{base} adapted to this city (spatial CV)",
    "from_scratch": "trained from scratch on this city (spatial CV)",
    "ndvi_line": "NDVI line (spatial CV)",
}


def _num(value: Any, spec: str = ".3f") -> str:
    return "–" if value is None else format(float(value), spec)


def _cells(row: dict[str, Any] | None) -> list[str]:
    if row is None:
        return ["–", "–", "–"]
    return [str(row["n"]), _num(row.get("mae_after_offset")), _num(row.get("spearman"))]


def city_rows_section(report: dict[str, Any]) -> list[str]:
    """The four rows on land cells and on all cells, and what the set-up was."""
    rows = report.get("city_rows")
    if not rows:
        return []
    unit = report.get("unit", "")
    base = rows["base_version"]
    lines = [
        "Side by side on this city — land cells (open water masked) and all cells; MAE "
        f"after removing each row's mean offset ({unit}):",
        "",
        "| | land n | land MAE | land Spearman | all n | all MAE | all Spearman |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, label in _LABELS.items():
        cells = [*_cells(rows["land"].get(key)), *_cells(rows["all"].get(key))]
        lines.append(f"| {label.format(base=base)} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Every row that saw the city is scored on blocks it was not fitted to: "
        f"{_num(rows['block_size_m'], '.0f')} m blocks, {_num(rows['buffer_m'], '.0f')} m "
        f"buffer, {rows['folds']} folds. *Adapted* starts from v{base} on each fold's "
        "training blocks (`terraops train uhi --scenes CITY --init-from "
        f"{base}`): v{base}'s output is refitted to the city's level and scale, a tenth of "
        "that slope is kept (the rest shrunk to the city's mean), and new trees — as many "
        "as early stopping keeps on part of those blocks — learn what it still misses; "
        "*from scratch* trains the usual recipe on the same blocks alone; the NDVI line is "
        "LST = a + b·NDVI fitted there.",
        "",
    ]
    if rows.get("adapted_note"):
        lines += [f"No adapted row: {rows['adapted_note']}", ""]
    return lines
