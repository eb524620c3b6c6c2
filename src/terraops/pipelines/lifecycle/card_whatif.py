"""The card's "validated against the counterfactual city" section.

``make bench`` runs what-if scenarios on unseen synthetic cities and compares
each answer with the truth the generator renders for the same city with the
scenario applied (same seed, same noise). It attaches its summary to the
validated model version's run as ``whatif_validation/whatif_validation.json``;
the card reads it from there like every other number, so the section always
describes the version the card is about, and is absent for a version that
was never validated.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from terraops.adapters.tracking import download_run_folder
from terraops.pipelines.whatif.summary import EffectCalibration
from terraops.settings import Settings

ARTIFACT_DIR = "whatif_validation"
REPORT_FILE = "whatif_validation.json"


def read_whatif_validation(settings: Settings, run_id: str, dest: Path) -> dict[str, Any] | None:
    """The run's what-if validation summary, or None when it was never validated."""
    files = {p.name: p for p in download_run_folder(settings, run_id, ARTIFACT_DIR, dest)}
    if REPORT_FILE not in files:
        return None
    report: dict[str, Any] = json.loads(files[REPORT_FILE].read_text(encoding="utf-8"))
    return report


def read_effect_calibration(settings: Settings, run_id: str) -> EffectCalibration | None:
    """The interval calibration stored with a validated model version, or None.

    The benchmark fits it on every validation city and attaches it with the
    summary (``interval_calibration``); a what-if of that version then reports
    the calibrated interval of each mean Δ instead of the bare member spread.
    """
    with tempfile.TemporaryDirectory(prefix="terraops-whatif-calibration-") as tmp:
        report = read_whatif_validation(settings, run_id, Path(tmp))
    if not report:
        return None
    return EffectCalibration.from_json(report.get("interval_calibration"))


def _frac(pair: list[int]) -> str:
    return f"{pair[0]}/{pair[1]}" if pair and pair[1] else "—"


def _uhi_lines(report: dict[str, Any]) -> list[str]:
    lines = [
        f"{report.get('cities', '?')} unseen cities × {report.get('interventions', '?')} "
        f"interventions × {report.get('sizes', '?')} sizes (a ~4 ha block, a ~40 ha district). "
        "Each case is one intervention; the truth is the same city rendered with the "
        "intervention minus the city without it (mean ΔLST inside the polygon and in rings "
        "0–100 m and 100–250 m around it). NDVI line: LST = a + b·NDVI fitted on the city; "
        "InVEST: Urban Cooling's air temperature mapped to LST by a line fitted on the city.",
        "",
        "| method | sign right (true Δ ≥ 0.3 K in size) | within max(0.3 K, 30 %) | ring sign "
        "right (true ring Δ ≥ 0.2 K in size) | mean abs. error (K) |",
        "|---|---|---|---|---|",
    ]
    for name, score in report.get("methods", {}).items():
        lines.append(
            f"| {name} | {_frac(score['sign'])} | {_frac(score['within'])} | "
            f"{_frac(score['ring_sign'])} | {score['mae_k']:.2f} |"
        )
    lines += ["", *_interval_lines(report)]
    return lines


def _interval_lines(report: dict[str, Any]) -> list[str]:
    """How often the truth lies in the interval of the mean Δ, and how it is derived."""
    member = report.get("member_coverage")
    calibration = report.get("interval_calibration")
    if not calibration:
        return [
            f"The truth lies in the what-if's 90 % interval of the mean Δ in "
            f"{_frac(report.get('coverage', []))} cases."
        ]
    return [
        "The 90 % interval of a mean Δ is calibrated on these counterfactual cities: "
        "split-conformal on how far the truth lies outside the member models' spread, "
        "relative to the effect (max(|Δ|, 0.3 K)), roof and ground interventions apart. "
        f"Calibrated on the other cities and tested on each held-out city, it holds the "
        f"truth in {_frac(report.get('coverage', []))} cases"
        + (f" (the member spread alone: {_frac(member)})" if member else "")
        + f"; what-if runs of this version use the calibration from all "
        f"{sum(calibration.get('cases', {}).values())} cases.",
    ]


def _flood_lines(report: dict[str, Any]) -> list[str]:
    rows = report.get("flood", [])
    lines = [
        "Δ flooded area of the design storm (ha, depth ≥ 0.1 m), what-if vs the truth:",
        "",
        "| intervention | size | city | truth | what-if |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        ours = row.get("terraops_ha")
        lines.append(
            f"| {row['intervention']} | {row['size']} | {row['city']} | "
            f"{row['truth_ha']:+.2f} | {'—' if ours is None else f'{ours:+.2f}'} |"
        )
    return lines


def whatif_validation_section(service: str, report: dict[str, Any] | None) -> list[str]:
    """Markdown lines of the section (none when the version was not validated)."""
    if not report:
        return []
    if service == "flood" and not report.get("flood"):
        return []
    body = _flood_lines(report) if service == "flood" else _uhi_lines(report)
    command = report.get("command", "python bench/whatif_validation.py")
    return [
        "## Validated against the counterfactual city",
        "",
        *body,
        "",
        f"Measured by `make bench` (`{command}`); details in BENCHMARKS.md.",
        "",
    ]
