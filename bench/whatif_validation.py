"""What-if validated against the counterfactual city, beside a one-line NDVI model and InVEST.

A synthetic city has what no real one has: its counterfactual. For each
unseen city (seeds no model trains on), each intervention and two sizes (a
~4 ha block, a ~40 ha district, placed where the intervention makes sense),
the generator renders the same city with the scenario applied — same seed,
same noise — and the truth of the intervention is that city's LST minus the
baseline's, inside the polygon and in the 0–100 m and 100–250 m rings around
it. Against it:

* terraops' what-if (``run_whatif``): edited inputs through the one feature
  path, Δ and the interval of the mean Δ;
* a one-line NDVI model, LST = a + b·NDVI fitted on the baseline city's 20 m
  cells, Δ = b·ΔNDVI of the same edited imagery (no neighbourhood: no spillover);
* InVEST Urban Cooling (natcap-invest 3.20, its own environment, see
  ``bench/invest``) on the baseline and scenario land cover: Δ cooling
  capacity, Δ heat-mitigation index and Δ air temperature; its T_air is also
  mapped to LST by a line fitted on the baseline city (calibrated InVEST).

Criteria: the sign of the mean Δ is right wherever |true Δ| ≥ 0.3 K; the mean
Δ is within max(0.3 K, 30 %) of the truth in ≥ 90 % of cases; each ring's sign
is right wherever |true ring Δ| ≥ 0.2 K; how often the truth falls in the
what-if interval — the member models' spread alone, and that spread calibrated
on the counterfactual truth (cross-fitted by city: calibrated on the other
cities' cases, tested on the held-out one; the calibration fitted on every
city is stored with the validated model version, and its what-if runs use it:
:mod:`terraops.pipelines.whatif.summary`). For depave and develop the flood Δ (flooded area of the
design storm) is compared with the counterfactual's too.

``python bench/whatif_validation.py --out BENCHMARKS.md`` (``make bench`` runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.harness import machine_description, replace_section  # noqa: E402
from bench.invest import runner as invest  # noqa: E402
from terraops.domain.landcover import LandCover, classify_spectral  # noqa: E402
from terraops.domain.scene.lst import SUHI_IMPERVIOUSNESS  # noqa: E402

INTERVENTIONS = ("tree_planting", "park", "depave", "cool_roof", "green_roof", "develop")
SIZES_M2 = {"block": 40_000.0, "district": 400_000.0}
UNSEEN_CITIES = ((101, "dense"), (102, "sprawl"), (103, "coastal"), (104, "dense"), (105, "sprawl"))
TRAINING_CITIES = ((1, "dense"), (2, "sprawl"), (3, "coastal"))
# Where each intervention makes sense: the classes its polygon is placed on.
PLACED_ON: dict[str, tuple[LandCover, ...]] = {
    "tree_planting": (LandCover.ROAD,),  # streets
    "depave": (LandCover.ROAD,),
    "park": (LandCover.ROAD, LandCover.BARE),  # a paved area
    "cool_roof": (LandCover.BUILDING,),
    "green_roof": (LandCover.BUILDING,),
    "develop": (LandCover.GRASS, LandCover.TREE),  # green land
}
PARAMS: dict[str, dict[str, float]] = {
    "tree_planting": {"canopy": 0.5},
    "park": {"canopy": 0.3},
    "depave": {},
    "cool_roof": {"albedo": 0.65},
    "green_roof": {},
    "develop": {"building_share": 0.4, "sealed_share": 0.3},
}
SIGN_K, TOLERANCE_K, TOLERANCE_SHARE, RING_SIGN_K, PASS_SHARE = 0.3, 0.3, 0.3, 0.2, 0.9
RINGS_M = ((0.0, 100.0), (100.0, 250.0))
CELL_M = 20.0
FLOOD_DEPTH_M = 0.1
BANDS = ("red", "green", "blue", "nir", "swir")


@dataclass
class Case:
    """One city × intervention × size, with every method's Δ (K) inside and in the rings."""

    city: str
    intervention: str
    size: str
    area_ha: float
    truth: list[float]  # inside, ring 0–100 m, ring 100–250 m
    methods: dict[str, list[float]] = field(default_factory=dict)
    member_interval: tuple[float, float] | None = None  # the members' spread alone
    interval: tuple[float, float] | None = None  # calibrated on the other cities' cases
    invest_raw: dict[str, float] = field(default_factory=dict)  # ΔCC, ΔHM, ΔT_air inside
    flood: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------ placement
def place_square(
    landcover: np.ndarray, classes: tuple[LandCover, ...], side_px: int, margin_px: int
) -> tuple[int, int]:
    """Top-left (row, col) of the side_px square richest in ``classes``, without water (the
    least wet where every square holds some),
    at least ``margin_px`` from the edge (the 250 m ring must fit in the scene)."""
    wanted = np.isin(landcover, [int(c) for c in classes]).astype(np.float32)
    water = (landcover == int(LandCover.WATER)).astype(np.float32)
    share = ndimage.uniform_filter(wanted, side_px, mode="constant")
    wet = ndimage.uniform_filter(water, side_px, mode="constant")
    h, w = landcover.shape
    half = side_px // 2
    valid = np.zeros_like(share, dtype=bool)
    lo_r, hi_r = margin_px + half, h - margin_px - (side_px - half)
    lo_c, hi_c = margin_px + half, w - margin_px - (side_px - half)
    if lo_r >= hi_r or lo_c >= hi_c:
        raise ValueError(f"a {side_px} px square with a {margin_px} px margin does not fit {h}×{w}")
    valid[lo_r:hi_r, lo_c:hi_c] = True
    # Dry squares first; where none fits (a river through a small city), the least wet one.
    # Never an invalid position: argmax over all −1 would put the square half outside.
    dry = valid & (wet <= wet[valid].min() + 1e-6)
    score = np.where(dry, share, -1.0)
    row, col = np.unravel_index(int(np.argmax(score)), score.shape)
    return int(row) - half, int(col) - half


def scenario_document(
    kind: str, params: dict[str, float], corner: tuple[int, int], side_px: int, scene: Any
) -> bytes:
    """A one-feature GeoJSON FeatureCollection in the scene's CRS (a square polygon)."""
    x0, y0 = scene.origin
    res = scene.resolution
    left, top = x0 + corner[1] * res, y0 - corner[0] * res
    right, bottom = left + side_px * res, top - side_px * res
    ring = [[left, top], [right, top], [right, bottom], [left, bottom], [left, top]]
    epsg = scene.crs.split(":")[-1]
    return json.dumps(
        {
            "type": "FeatureCollection",
            "crs": {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{epsg}"}},
            "features": [
                {
                    "type": "Feature",
                    "properties": {"id": f"{kind}", "intervention": kind, **params},
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                }
            ],
        }
    ).encode()


# ------------------------------------------------------------------ regions and truth
def regions(inside: np.ndarray, resolution: float) -> list[np.ndarray]:
    """The polygon's pixels, then its 0–100 m and 100–250 m rings."""
    distance = np.asarray(ndimage.distance_transform_edt(~inside)) * resolution
    rings = [(distance > lo) & (distance <= hi) for lo, hi in RINGS_M]
    return [inside, *rings]


def region_means(delta: np.ndarray, masks: list[np.ndarray]) -> list[float]:
    return [float(np.nanmean(delta[m])) if m.any() else float("nan") for m in masks]


def reflectance(layers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Stored uint16 bands → reflectance 0–1 with NaN no-data (what the what-if edits)."""
    return {b: np.where(layers[b] == 0, np.nan, layers[b] / 10_000.0) for b in BANDS}


def cell_means(array: np.ndarray, block: int) -> np.ndarray:
    h, w = (array.shape[0] // block) * block, (array.shape[1] // block) * block
    return np.asarray(
        np.nanmean(array[:h, :w].reshape(h // block, block, w // block, block), (1, 3))
    )


def fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares (intercept, slope) of y on x over the finite pairs."""
    ok = np.isfinite(x) & np.isfinite(y)
    slope, intercept = np.polyfit(x[ok], y[ok], 1)
    return float(intercept), float(slope)


def ndvi_of(bands: dict[str, np.ndarray]) -> np.ndarray:
    return np.asarray((bands["nir"] - bands["red"]) / (bands["nir"] + bands["red"] + 1e-9))


def number(value: Any) -> float:
    """A JSON number, NaN for null (the what-if writes null where a region has no cells)."""
    return float("nan") if value is None else float(value)


def flooded_area_ha(depth: np.ndarray, resolution: float) -> float:
    return float((depth >= FLOOD_DEPTH_M).sum() * resolution**2 / 10_000.0)


# ------------------------------------------------------------------ one city
def roof_codes(landcover: np.ndarray, inside: np.ndarray, kind: str) -> np.ndarray:
    """InVEST land cover: roofs inside a roof intervention get their own class (README)."""
    out = landcover.copy()
    code = {"cool_roof": invest.COOL_ROOF_CODE, "green_roof": invest.GREEN_ROOF_CODE}.get(kind)
    if code is not None:
        out[inside & (landcover == int(LandCover.BUILDING))] = code
    return out


def validate_city(
    settings: Any, versions: dict[str, int], seed: int, morphology: str, args: argparse.Namespace
) -> list[Case]:
    """Every intervention × size on one unseen city."""
    from terraops.adapters.raster_io import read_scene
    from terraops.domain.scene.generator import generate
    from terraops.domain.scene.spec import SceneSpec
    from terraops.domain.whatif.interventions import apply_interventions
    from terraops.domain.whatif.scenario import parse_scenario, rasterise
    from terraops.pipelines.scenes.generate import generate_scene
    from terraops.pipelines.whatif.run import run_whatif

    name = f"city{seed}"
    folder = args.work / "unseen" / name
    if not (folder / "scene.json").exists():
        generate_scene(
            folder, seed=seed, size=args.size, resolution=args.resolution, morphology=morphology
        )
    scene = read_scene(folder)
    spec = SceneSpec(seed=seed, size=args.size, resolution=args.resolution, morphology=morphology)
    base = generate(spec)
    res, shape = scene.resolution, scene.shape
    bounds = (
        scene.origin[0],
        scene.origin[1] - shape[0] * res,
        scene.origin[0] + shape[1] * res,
        scene.origin[1],
    )
    bands = reflectance(base.layers)
    classified = classify_spectral(**bands)
    block = max(1, round(CELL_M / res))
    ndvi_a, ndvi_b = fit_line(
        cell_means(ndvi_of(bands), block), cell_means(base.layers["lst"], block)
    )
    del ndvi_a
    cases, invest_inputs, invest_masks = [], {"baseline": base.layers["landcover"]}, {}
    for kind in INTERVENTIONS:
        for size, area in SIZES_M2.items():
            side = round(np.sqrt(area) / res)
            corner = place_square(base.layers["landcover"], PLACED_ON[kind], side, round(250 / res))
            doc = scenario_document(kind, PARAMS[kind], corner, side, scene)
            scenario = parse_scenario(doc, scene_crs=scene.crs, scene_bounds=bounds)
            masks = rasterise(scenario, shape=shape, origin=scene.origin, resolution=res)
            where = regions(masks[0], res)
            after = generate(spec, scenario=scenario)
            truth = region_means(after.layers["lst"] - base.layers["lst"], where)
            case = Case(name, kind, size, float(masks[0].sum() * res**2 / 1e4), truth)
            row = run_whatif(settings, "uhi", scene, doc, version=versions["uhi"]).to_json()
            item = row["interventions"][0]
            keys = ("mean_delta", "ring_100m_mean_delta", "ring_250m_mean_delta")
            case.methods["terraops"] = [number(item.get(k)) for k in keys]
            members = item.get("mean_delta_member_interval") or item.get("mean_delta_interval")
            case.member_interval = (number(members[0]), number(members[1])) if members else None
            edited = apply_interventions(bands, classified, scenario, masks, resolution=res)
            d_ndvi = ndvi_of(edited.bands) - ndvi_of(bands)
            case.methods["NDVI line"] = region_means(ndvi_b * d_ndvi, where)
            if kind in ("depave", "develop") and "flood" in versions:
                case.flood = flood_case(settings, versions["flood"], scene, doc, base, after, res)
            key = f"{kind}-{size}"
            invest_inputs[key] = roof_codes(after.layers["landcover"], masks[0], kind)
            invest_masks[key] = (case, where)
            cases.append(case)
            print(
                f"{name} {kind} {size}: truth {truth[0]:+.2f} K, terraops "
                f"{case.methods['terraops'][0]:+.2f} K",
                file=sys.stderr,
            )
    if invest.invest_available() and not args.no_invest:
        add_invest(args.work / "invest" / name, invest_inputs, invest_masks, base, scene, block)
    return cases


def flood_case(
    settings: Any, version: int, scene: Any, doc: bytes, base: Any, after: Any, res: float
) -> dict[str, float]:
    """Δ flooded area of the whole scene (ha) for the city's design storm: what-if vs truth.

    Truth: pixels with depth ≥ 0.1 m in the counterfactual minus the baseline;
    what-if: its scene-wide ``storms`` total (cells at the flood service's
    decision threshold).
    """
    from terraops.pipelines.whatif.run import run_whatif

    rainfall = float(base.spec.rainfall_mm)
    body = run_whatif(
        settings, "flood", scene, doc, params={"rainfall_mm": rainfall}, version=version
    ).to_json()
    storms: list[dict[str, Any]] = body.get("storms", [])
    storm = next((s for s in storms if s["rainfall_mm"] == rainfall), {})
    truth = flooded_area_ha(after.layers["flood_depth"], res) - flooded_area_ha(
        base.layers["flood_depth"], res
    )
    item = body["interventions"][0]
    return {
        "truth_ha": truth,
        "terraops_ha": number(storm.get("flooded_area_delta_ha")),
        "rainfall_mm": rainfall,
        "mean_delta_probability": number(item.get("mean_delta")),
    }


def add_invest(
    workspace: Path,
    landcovers: dict[str, np.ndarray],
    masks: dict[str, tuple[Case, list[np.ndarray]]],
    base: Any,
    scene: Any,
    block: int,
) -> None:
    """InVEST on the baseline and every case's land cover of one city (one subprocess)."""
    from rasterio.transform import Affine

    physics = base.physics
    outputs = invest.run_urban_cooling(
        workspace,
        landcovers,
        transform=Affine(*scene.transform),
        crs=scene.crs,
        t_ref=float(physics.reference_c),
        uhi_max=float(max(physics.suhi_amplitude_k * SUHI_IMPERVIOUSNESS, 0.1)),
    )
    ref = outputs.pop("baseline")
    _, slope = fit_line(cell_means(ref.t_air, block), cell_means(base.layers["lst"], block))
    for key, out in outputs.items():
        case, where = masks[key]
        d_t = out.t_air - ref.t_air
        case.methods["InVEST (calibrated)"] = region_means(slope * d_t, where)
        case.invest_raw = {
            "cc": region_means(out.cc - ref.cc, where)[0],
            "hm": region_means(out.hm - ref.hm, where)[0],
            "t_air": region_means(d_t, where)[0],
        }


# ------------------------------------------------------------------ set-up and main
def trained_versions(settings: Any, args: argparse.Namespace) -> dict[str, int]:
    """UHI and flood trained on the training cities (reused when the home has them)."""
    from terraops.pipelines.scenes.generate import generate_scene
    from terraops.pipelines.training.train import train_service
    from terraops.services import get_service

    marker = args.work / "trained.json"
    if marker.exists():
        return {k: int(v) for k, v in json.loads(marker.read_text()).items()}
    scenes = []
    for seed, morphology in TRAINING_CITIES:
        out = args.work / "training" / f"city{seed}"
        if not (out / "scene.json").exists():
            generate_scene(
                out, seed=seed, size=args.size, resolution=args.resolution, morphology=morphology
            )
        scenes.append(out)
    versions = {
        name: train_service(settings, get_service(name), scenes, progress=False).version
        for name in ("uhi", "flood")
    }
    marker.write_text(json.dumps(versions))
    return versions


def champions(home: Path) -> tuple[Any, dict[str, int]] | None:
    """The UHI and flood champions of an existing home (``make train promote``), if both exist."""
    from terraops.adapters.registry import ModelRegistry
    from terraops.settings import Settings

    if not home.is_dir():
        return None
    settings = Settings(home=home)
    registry = ModelRegistry(settings)
    found = {name: registry.get_alias(name, "champion") for name in ("uhi", "flood")}
    if any(v is None for v in found.values()):
        return None
    return settings, {name: int(v) for name, v in found.items() if v is not None}


COMMAND = "python bench/whatif_validation.py"


def main() -> int:
    from bench.whatif_report import log_to_cards, render, summarise
    from terraops.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--work", type=Path, default=None, help="reuse a work folder")
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="validate this home's UHI and flood champions (their cards then show the result); "
        "without champions there, models are trained on the training cities",
    )
    parser.add_argument("--size", type=int, default=384, help="pixels per side of every city")
    parser.add_argument("--resolution", type=float, default=4.0, help="metres per pixel")
    parser.add_argument("--cities", type=int, default=len(UNSEEN_CITIES))
    parser.add_argument("--no-invest", action="store_true", help="skip InVEST")
    parser.add_argument("--results", type=Path, default=HERE / "results" / "whatif_validation.json")
    args = parser.parse_args()
    started = time.monotonic()
    args.work = (args.work or Path(tempfile.mkdtemp(prefix="terraops-whatif-"))).resolve()
    existing = champions(args.home.resolve()) if args.home else None
    if existing:
        settings, versions = existing
        trained_on = "the champions of " + str(args.home)
    else:
        settings = Settings(home=args.work / "home")
        versions = trained_versions(settings, args)
        trained_on = "models trained on seeds " + ", ".join(str(s) for s, _ in TRAINING_CITIES)
    cases: list[Case] = []
    for seed, morphology in UNSEEN_CITIES[: args.cities]:
        cases += validate_city(settings, versions, seed, morphology, args)
    report = summarise(cases)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2, default=float))
    log_to_cards(settings, versions, report, COMMAND)
    header = (
        f"Machine: {machine_description()}.  \n"
        f"Command: `make bench` (`{COMMAND} --size {args.size} "
        f"--resolution {args.resolution:g} --cities {args.cities}`), {time.strftime('%Y-%m-%d')}; "
        f"took {time.monotonic() - started:.0f} s; {trained_on} (UHI v{versions['uhi']}, "
        f"flood v{versions['flood']}), validated on the unseen seeds "
        f"{', '.join(str(s) for s, _ in UNSEEN_CITIES[: args.cities])}."
    )
    text = render(cases, report, header)
    replace_section(args.out, "whatif-validation", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
