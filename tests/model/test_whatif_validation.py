"""What-if against the counterfactual city, on tiny data (the full benchmark is in ``make bench``).

One small unseen city; trees planted on its streets and a block of its green
land developed. The truth is the generator's city rendered with the scenario
(same seed, same noise) minus the city without it; the what-if Δ of a UHI
model trained (default parameters) on the session's two tiny cities must have
the truth's sign and lie within max(0.3 K, 30 %) of it. The model of the
shared trained home is not used: it is trained with 40 trees for speed, and a
what-if measures the model's response to an edit, which such a model
under-states. InVEST is not needed here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bench.whatif_validation import (
    PLACED_ON,
    SIGN_K,
    place_square,
    region_means,
    regions,
    scenario_document,
)

from terraops.adapters.raster_io import read_scene
from terraops.adapters.registry import ModelRegistry
from terraops.adapters.tracking import log_folder_to_run
from terraops.domain.scene.generator import generate
from terraops.domain.scene.spec import SceneSpec
from terraops.domain.whatif.scenario import parse_scenario, rasterise
from terraops.pipelines.lifecycle.card_whatif import whatif_validation_section
from terraops.pipelines.scenes.generate import generate_scene
from terraops.pipelines.training.train import train_service
from terraops.pipelines.whatif.run import run_whatif, scene_bounds
from terraops.pipelines.whatif.summary import CALIBRATED, MEMBER_SPREAD, EffectCalibration
from terraops.services import get_service
from terraops.settings import Settings

UNSEEN_SEED, SIZE_PX, RESOLUTION_M = 41, 256, 4.0
BLOCK_SIDE_M = 200.0  # a ~4 ha block
CASES = {
    "tree_planting": {"canopy": 0.6},
    "develop": {"building_share": 0.5, "sealed_share": 0.4},
}


@pytest.fixture(scope="module")
def unseen_city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A city no model in the session trained on (the training cities are seeds 1 and 2)."""
    out = tmp_path_factory.mktemp("unseen") / f"city{UNSEEN_SEED}"
    generate_scene(out, seed=UNSEEN_SEED, size=SIZE_PX, resolution=RESOLUTION_M, morphology="dense")
    return out


@pytest.fixture(scope="module")
def uhi_model(
    tiny_scenes: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Settings, int]:
    """A UHI model trained with the default parameters on the training cities (seeds 1, 2)."""
    settings = Settings(home=tmp_path_factory.mktemp("whatif-validation") / "home")
    result = train_service(settings, get_service("uhi"), tiny_scenes, progress=False)
    return settings, result.version


def within_tolerance(predicted: float, truth: float) -> bool:
    return abs(predicted - truth) <= max(0.3, 0.3 * abs(truth))


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(CASES))
def test_whatif_has_the_counterfactual_sign_and_size(
    kind: str, unseen_city: Path, uhi_model: tuple[Settings, int]
) -> None:
    scene = read_scene(unseen_city)
    spec = SceneSpec(seed=UNSEEN_SEED, size=SIZE_PX, resolution=RESOLUTION_M, morphology="dense")
    base = generate(spec)
    side = round(BLOCK_SIDE_M / RESOLUTION_M)
    corner = place_square(
        base.layers["landcover"], PLACED_ON[kind], side, round(150 / RESOLUTION_M)
    )
    document = scenario_document(kind, CASES[kind], corner, side, scene)
    scenario = parse_scenario(document, scene_crs=scene.crs, scene_bounds=scene_bounds(scene))
    masks = rasterise(scenario, shape=scene.shape, origin=scene.origin, resolution=RESOLUTION_M)
    after = generate(spec, scenario=scenario)
    truth = region_means(after.layers["lst"] - base.layers["lst"], regions(masks[0], RESOLUTION_M))

    settings, version = uhi_model
    result = run_whatif(settings, "uhi", scene, document, version=version).to_json()
    predicted = result["interventions"][0]["mean_delta"]

    expected_sign = -1.0 if kind == "tree_planting" else 1.0
    assert np.sign(truth[0]) == expected_sign and abs(truth[0]) >= SIGN_K, truth
    assert np.sign(predicted) == np.sign(truth[0]), (predicted, truth)
    assert within_tolerance(predicted, truth[0]), (predicted, truth)


@pytest.mark.slow
def test_whatif_reports_the_interval_calibrated_for_its_model_version(
    unseen_city: Path, uhi_model: tuple[Settings, int], tmp_path: Path
) -> None:
    """Without a stored calibration the interval is the members' spread, said to be
    uncalibrated; once the version carries one (``make bench`` attaches it), the
    same what-if widens it by the calibrated quantile and says on how many cases."""
    settings, version = uhi_model
    scene = read_scene(unseen_city)
    spec = SceneSpec(seed=UNSEEN_SEED, size=SIZE_PX, resolution=RESOLUTION_M, morphology="dense")
    side = round(BLOCK_SIDE_M / RESOLUTION_M)
    corner = place_square(generate(spec).layers["landcover"], PLACED_ON["tree_planting"], side, 40)
    document = scenario_document("tree_planting", CASES["tree_planting"], corner, side, scene)

    plain = run_whatif(settings, "uhi", scene, document, version=version).to_json()
    row = plain["interventions"][0]
    assert row["interval_method"] == MEMBER_SPREAD
    assert row["mean_delta_interval"] == row["mean_delta_member_interval"]

    calibration = EffectCalibration(
        0.9, 0.3, {"ground": 0.5, "roof": 2.0}, {"ground": 8, "roof": 4}
    )
    (tmp_path / "whatif_validation.json").write_text(
        json.dumps({"interval_calibration": calibration.to_json()})
    )
    run_id = ModelRegistry(settings).get_version("uhi", version).run_id
    log_folder_to_run(settings, run_id, tmp_path, "whatif_validation")

    row = run_whatif(settings, "uhi", scene, document, version=version).to_json()["interventions"][
        0
    ]
    assert row["interval_method"] == CALIBRATED and row["interval_calibration_cases"] == 12
    lo, hi = row["mean_delta_member_interval"]
    pad = 0.5 * max(abs(row["mean_delta"]), 0.3)
    assert row["mean_delta_interval"] == pytest.approx([lo - pad, hi + pad], abs=1e-3)


def test_card_section_shows_the_validation_only_for_a_validated_version() -> None:
    summary = {
        "cities": 5,
        "interventions": 6,
        "sizes": 2,
        "methods": {
            "terraops": {"sign": [40, 41], "within": [30, 60], "ring_sign": [9, 10], "mae_k": 0.71}
        },
        "coverage": [12, 60],
        "flood": [
            {"intervention": "develop", "size": "block", "city": "city101", "truth_ha": 0.04}
        ],
    }
    uhi = "\n".join(whatif_validation_section("uhi", summary))
    flood = "\n".join(whatif_validation_section("flood", summary))

    assert "## Validated against the counterfactual city" in uhi
    assert "5 unseen cities × 6 interventions × 2 sizes" in uhi
    assert "| terraops | 40/41 | 30/60 | 9/10 | 0.71 |" in uhi
    assert "interval of the mean Δ in 12/60 cases" in uhi
    assert "| develop | block | city101 | +0.04 | — |" in flood
    assert whatif_validation_section("uhi", None) == []
    assert whatif_validation_section("flood", {"methods": {}}) == []

    calibrated = {
        **summary,
        "coverage": [53, 60],
        "member_coverage": [9, 60],
        "interval_calibration": {
            "level": 0.9,
            "floor_k": 0.3,
            "quantiles": {"ground": 0.43, "roof": 3.9},
            "cases": {"ground": 40, "roof": 20},
        },
    }
    text = "\n".join(whatif_validation_section("uhi", calibrated))
    assert "holds the truth in 53/60 cases (the member spread alone: 9/60)" in text
    assert "use the calibration from all 60 cases" in text
