"""Scoring and the BENCHMARKS.md section of the what-if validation (``bench/whatif_validation.py``).

Pure functions of the cases: which criteria each method meets, how often the
truth falls in terraops' interval, where terraops is closer than the others.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.whatif_validation import (
    INTERVENTIONS,
    PASS_SHARE,
    RING_SIGN_K,
    SIGN_K,
    SIZES_M2,
    TOLERANCE_K,
    TOLERANCE_SHARE,
    Case,
)
from terraops.pipelines.whatif.summary import (
    INTERVAL_LEVEL,
    EffectCalibration,
    EffectCase,
    cross_fitted_coverage,
)


# ------------------------------------------------------------------ scoring
def within(pred: float, truth: float) -> bool:
    return abs(pred - truth) <= max(TOLERANCE_K, TOLERANCE_SHARE * abs(truth))


def score(cases: list[Case], method: str) -> dict[str, Any]:
    """The criteria for one method over the cases it has a Δ for."""
    have = [c for c in cases if method in c.methods and np.isfinite(c.methods[method][0])]
    signed = [c for c in have if abs(c.truth[0]) >= SIGN_K]
    sign_ok = sum(np.sign(c.methods[method][0]) == np.sign(c.truth[0]) for c in signed)
    close = sum(within(c.methods[method][0], c.truth[0]) for c in have)
    rings = [(c, i) for c in have for i in (1, 2) if abs(c.truth[i]) >= RING_SIGN_K]
    ring_ok = sum(np.sign(c.methods[method][i]) == np.sign(c.truth[i]) for c, i in rings)
    errors = [abs(c.methods[method][0] - c.truth[0]) for c in have]
    return {
        "cases": len(have),
        "sign": [int(sign_ok), len(signed)],
        "within": [int(close), len(have)],
        "ring_sign": [int(ring_ok), len(rings)],
        "mae_k": float(np.mean(errors)) if errors else float("nan"),
        "passes": bool(
            have
            and sign_ok == len(signed)
            and close >= PASS_SHARE * len(have)
            and ring_ok == len(rings)
        ),
    }


def coverage(cases: list[Case]) -> list[int]:
    """[hits, cases] of the member spread alone (a case without an interval is a miss)."""
    hits = sum(
        c.member_interval is not None and c.member_interval[0] <= c.truth[0] <= c.member_interval[1]
        for c in cases
    )
    return [int(hits), len(cases)]


def _effect_cases(cases: list[Case]) -> list[Case]:
    return [
        c
        for c in cases
        if c.member_interval is not None
        and np.isfinite(c.truth[0])
        and np.isfinite(c.methods.get("terraops", [np.nan])[0])
    ]


def calibrate_intervals(cases: list[Case]) -> dict[str, Any]:
    """Cross-fitted calibrated intervals (set on each case) and the calibration of every city.

    Each case's interval is calibrated on the other cities' cases only, so its
    coverage is an honest estimate for an unseen city; the stored calibration
    uses them all.
    """
    usable = _effect_cases(cases)
    effects = [
        EffectCase(c.intervention, c.truth[0], c.methods["terraops"][0], c.member_interval)  # type: ignore[arg-type]
        for c in usable
    ]
    intervals, hits = cross_fitted_coverage(effects, [c.city for c in usable], INTERVAL_LEVEL)
    for case, interval in zip(usable, intervals, strict=True):
        case.interval = interval
    final = EffectCalibration.fit(effects, INTERVAL_LEVEL)
    widths = [hi - lo for lo, hi in (iv for iv in intervals if iv is not None)]
    return {
        **final.to_json(),
        "cross_fitted_coverage": hits,
        "median_width_k": float(np.median(widths)) if widths else float("nan"),
    }


def closer(cases: list[Case], other: str) -> dict[str, list[int]]:
    """Per intervention: in how many cases terraops' mean Δ is nearer the truth than ``other``'s."""
    out: dict[str, list[int]] = {}
    for kind in INTERVENTIONS:
        pairs = [c for c in cases if c.intervention == kind and other in c.methods]
        wins = sum(
            abs(c.methods["terraops"][0] - c.truth[0]) < abs(c.methods[other][0] - c.truth[0])
            for c in pairs
        )
        out[kind] = [int(wins), len(pairs)]
    return out


# ------------------------------------------------------------------ report
def _frac(pair: list[int]) -> str:
    return f"{pair[0]}/{pair[1]}" if pair[1] else "—"


def _mean(values: list[float]) -> str:
    finite = [v for v in values if np.isfinite(v)]
    return f"{np.mean(finite):+.2f}" if finite else "—"


def render(cases: list[Case], report: dict[str, Any], header: str) -> str:
    methods = list(report["methods"])
    lines = [
        "## What-if validated against the counterfactual city",
        "",
        header,
        "",
        f"{len({c.city for c in cases})} unseen cities × {len(INTERVENTIONS)} interventions × "
        f"{len(SIZES_M2)} sizes = {len(cases)} cases. Truth: the generator's city with the "
        "scenario minus the same city without (same seed and noise). Criteria: sign of the "
        f"mean Δ right wherever |true Δ| ≥ {SIGN_K} K; mean Δ within max({TOLERANCE_K} K, "
        f"{TOLERANCE_SHARE:.0%}) in ≥ {PASS_SHARE:.0%} of cases; ring sign right wherever "
        f"|true ring Δ| ≥ {RING_SIGN_K} K.",
        "",
        "| method | sign right | within tolerance | ring sign right | mean abs. error (K) "
        "| passes |",
        "|---|---|---|---|---|---|",
    ]
    for m in methods:
        s = report["methods"][m]
        lines.append(
            f"| {m} | {_frac(s['sign'])} | {_frac(s['within'])} | {_frac(s['ring_sign'])} | "
            f"{s['mae_k']:.2f} | {'yes' if s['passes'] else 'no'} |"
        )
    lines += ["", *_interval_lines(report), ""]
    lines += [
        "Mean Δ LST inside the polygon (K), averaged over the cities; rings 0–100 m / 100–250 m:",
        "",
        "| intervention | size | truth | "
        + " | ".join(methods)
        + " | truth rings | terraops rings | terraops within tolerance |",
        "|---|---|---|" + "---|" * len(methods) + "---|---|---|",
    ]
    for kind in INTERVENTIONS:
        for size in SIZES_M2:
            group = [c for c in cases if c.intervention == kind and c.size == size]
            if not group:
                continue
            cells = [_mean([c.methods.get(m, [np.nan])[0] for c in group]) for m in methods]
            rings = [_mean([c.truth[i] for c in group]) for i in (1, 2)]
            ours = [_mean([c.methods["terraops"][i] for c in group]) for i in (1, 2)]
            close = sum(within(c.methods["terraops"][0], c.truth[0]) for c in group)
            lines.append(
                f"| {kind} | {size} | {_mean([c.truth[0] for c in group])} | "
                + " | ".join(cells)
                + f" | {' / '.join(rings)} | {' / '.join(ours)} | {close}/{len(group)} |"
            )
    lines += ["", "Where terraops is closer to the truth than the other methods (cases):", ""]
    for other, wins in report["closer"].items():
        lines.append(f"- vs {other}: " + ", ".join(f"{k} {_frac(v)}" for k, v in wins.items()))
    lines += _invest_raw_lines(cases) + _flood_lines(cases)
    return "\n".join(lines) + "\n"


def _interval_lines(report: dict[str, Any]) -> list[str]:
    calibration = report.get("interval_calibration") or {}
    quantiles = ", ".join(
        f"{g} {'—' if q is None else f'{q:.2f}'} ({calibration['cases'][g]} cases)"
        for g, q in calibration.get("quantiles", {}).items()
    )
    return [
        f"The truth lies in terraops' 90 % interval of the mean Δ in {_frac(report['coverage'])} "
        f"cases (median width {calibration.get('median_width_k', float('nan')):.2f} K), "
        "calibrated on the counterfactual truth of the other cities and tested on each "
        "held-out city; the member models' spread alone holds it in "
        f"{_frac(report['member_coverage'])}. Calibration: split-conformal on how far the truth "
        "lies outside the member spread, in units of max(|model Δ|, "
        f"{calibration.get('floor_k', 0.3)} K), roof and ground interventions apart; "
        f"quantiles from all cities (stored with the model version): {quantiles or '—'}.",
        "",
        *LIMITS,
    ]


LIMITS: tuple[str, ...] = (
    "What the what-if edits: roofs come from the building footprints the scene carries "
    "(here the synthetic city's land-cover layer; an imported scene without one falls back "
    "to the roofs its imagery shows, where a dark bitumen roof looks like asphalt), and the "
    "edited land cover is what the classification sees after the edit (a repainted roof a "
    "bright building, a planted roof grass). The bands are what the sensor would record: "
    "a planted roof is painted with the scene's sunlit grass (a third of a dense city's grass "
    "lies in building shadow, and the median over all of it painted roofs a shaded green), "
    "and the change is blurred by the sensor's point-spread function (σ 0.45 px), so the "
    "pixels beside an edit move too and are classified again — as they are on the "
    "counterfactual city's imagery, where a dark lane between planted roofs turns green. The "
    "generator's cities draw their share of white roofs (5–35 %) and each white roof's "
    "albedo (0.45–0.80), so a model trained on them sees the albedos a cool roof asks for "
    "(the champion validated here was trained on the cities of its home, whatever generator "
    "version made them).",
    "",
    "What remains: each city draws its own physics (albedo −10 to −30 K per unit, daytime "
    "SUHI 0.1–5.1 K), which no feature of one scene reveals, so a model answers with the "
    "response it learned on its training cities; and a tree ensemble trained on cities as "
    "drawn splits an effect among inputs that travel together there (albedo with NDBI, the "
    "sealed share around a cell with the cell's own) and is flat past the brightest or "
    "densest cells it saw, so the response to one input moved alone — a repainted block, a "
    "new district — is weaker than the truth's. Training cities that carry drawn "
    "interventions of every kind (`terraops scene generate --random-interventions N`) "
    "strengthen that response, but they also move the rural reference the model measures "
    "LST against (new parks and depaved streets join the least-sealed vegetated cells), "
    "which biases its LST on cities as drawn; the demo's cities are drawn without them.",
)
"""The paragraph after the interval: what the edit does, and what limits the answer."""


def _invest_raw_lines(cases: list[Case]) -> list[str]:
    raw = [c for c in cases if c.invest_raw]
    if not raw:
        return ["", "InVEST was not run (build it with `make bench-invest-env`)."]
    lines = [
        "",
        "InVEST's own outputs inside the polygon (mean over cities): Δ cooling capacity, "
        "Δ heat-mitigation index, Δ air temperature (K):",
        "",
    ]
    for kind in INTERVENTIONS:
        group = [c for c in raw if c.intervention == kind]
        lines.append(
            f"- {kind}: ΔCC {_mean([c.invest_raw['cc'] for c in group])}, ΔHM "
            f"{_mean([c.invest_raw['hm'] for c in group])}, ΔT_air "
            f"{_mean([c.invest_raw['t_air'] for c in group])}"
        )
    return lines


def _flood_lines(cases: list[Case]) -> list[str]:
    flood = [c for c in cases if c.flood]
    if not flood:
        return []
    lines = [
        "",
        "Flood, Δ flooded area of the design storm (ha, depth ≥ 0.1 m):",
        "",
        "| city | intervention | size | truth | terraops |",
        "|---|---|---|---|---|",
    ]
    for c in flood:
        ours = c.flood.get("terraops_ha", float("nan"))
        lines.append(
            f"| {c.city} | {c.intervention} | {c.size} | {c.flood['truth_ha']:+.2f} | {ours:+.2f} |"
        )
    return lines


def summarise(cases: list[Case]) -> dict[str, Any]:
    methods = [
        m
        for m in ("terraops", "NDVI line", "InVEST (calibrated)")
        if any(m in c.methods for c in cases)
    ]
    calibration = calibrate_intervals(cases)
    return {
        "methods": {m: score(cases, m) for m in methods},
        "cities": len({c.city for c in cases}),
        "interventions": len({c.intervention for c in cases}),
        "sizes": len({c.size for c in cases}),
        "coverage": calibration["cross_fitted_coverage"],
        "member_coverage": coverage(cases),
        "interval_calibration": calibration,
        "closer": {m: closer(cases, m) for m in methods if m != "terraops"},
        "cases": [c.__dict__ for c in cases],
    }


def log_to_cards(
    settings: Any, versions: dict[str, int], report: dict[str, Any], command: str
) -> None:
    """Attach the summary to each model version's run: its card shows it (``terraops card``)."""
    from terraops.adapters.registry import ModelRegistry
    from terraops.adapters.tracking import log_folder_to_run

    registry = ModelRegistry(settings)
    summary = {k: v for k, v in report.items() if k != "cases"}
    per_kind = {
        "uhi": summary,
        "flood": {
            "flood": [
                {
                    **c["flood"],
                    "intervention": c["intervention"],
                    "size": c["size"],
                    "city": c["city"],
                }
                for c in report["cases"]
                if c["flood"]
            ]
        },
    }
    for service, version in versions.items():
        run_id = registry.get_version(service, version).run_id
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "whatif_validation.json").write_text(
                json.dumps({**per_kind[service], "command": command}, indent=2)
            )
            log_folder_to_run(settings, run_id, Path(tmp), "whatif_validation")
