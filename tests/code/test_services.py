"""Service definitions: schemas consistent with the cell table, examples, params."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from terraops.adapters.raster_io import read_scene
from terraops.domain.hydrology import DESIGN_STORMS_MM
from terraops.errors import InvalidInputError, ServiceNotFoundError
from terraops.pipelines.training.train import parse_param_pairs, resolve_params
from terraops.services import all_services, get_service
from terraops.services.base import ID_COLUMNS
from terraops.services.flood import FLOODED_FRACTION, storm_depths

# The cell-table contract (team notes): features every scene provides.
CELL_FEATURES = {
    "ndvi", "ndbi", "albedo", "building_density", "tree_cover", "imperviousness",
    "water_fraction", "water_distance", "elevation", "hand", "slope", "river_distance",
    "upstream_area", "curve_number", "drainage_upstream_area", "drainage_curve_number",
    "depression_depth", "imperviousness_500m", "tree_cover_200m", "reference_temperature",
}  # fmt: skip


def fake_cells(n: int = 200, storms: tuple[int, ...] = (10, 50)) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    cells = pd.DataFrame(
        {"scene": "s", "row": np.arange(n) // 20, "col": np.arange(n) % 20}
        | {"x": (np.arange(n) % 20) * 20.0, "y": (np.arange(n) // 20) * 20.0}
    )
    for name in sorted(CELL_FEATURES):
        cells[name] = rng.uniform(0, 1, n)
    cells["curve_number"] = 80.0
    cells["lst"] = 30 + rng.normal(size=n)
    for p in storms:
        cells[f"flood_frac_p{p}"] = rng.uniform(0, 1, n)
        cells[f"flood_depth_p{p}"] = rng.uniform(0, 1, n)
    return cells


@pytest.mark.parametrize("name", ["uhi", "flood"])
def test_features_are_cell_table_columns_with_sane_specs(name: str) -> None:
    service = get_service(name)
    inputs = set(service.feature_names) - {"rainfall_mm"}
    assert inputs <= CELL_FEATURES
    assert len(set(service.feature_names)) == len(service.features)
    for f in service.features:
        assert f.minimum < f.maximum and f.minimum <= f.example <= f.maximum, f.name
        assert f.unit and f.description
    assert set(service.monotone) <= set(service.feature_names)
    model = service.model_factory(service.default_params)
    assert len(model.get_params()["monotone_constraints"]) == len(service.model_inputs)


def test_uhi_keeps_the_legacy_request_shape() -> None:
    uhi = get_service("uhi")
    assert uhi.required_features == ["ndvi", "building_density", "water_distance"]
    assert uhi.target == "lst" and uhi.task == "regression"
    assert uhi.monotone["ndvi"] == -1


def test_uhi_neighbourhood_features_are_optional_with_physical_signs() -> None:
    uhi = get_service("uhi")
    assert {"imperviousness_500m", "tree_cover_200m"} <= set(uhi.optional_features)
    assert uhi.monotone["imperviousness_500m"] == 1  # a sealed neighbourhood never cools
    assert uhi.monotone["tree_cover_200m"] == -1  # nearby trees never warm
    for name in ("imperviousness_500m", "tree_cover_200m"):
        spec = uhi.feature(name)
        assert (spec.minimum, spec.maximum, spec.unit) == (0.0, 1.0, "fraction")


@pytest.mark.parametrize("name", ["uhi", "flood"])
def test_primary_and_slo_metrics_are_metrics_the_trainer_logs(name: str) -> None:
    service = get_service(name)
    y = np.array([0.0, 1.0, 0.0, 1.0])
    produced = service.metrics(y, np.array([0.1, 0.8, 0.3, 0.6]))
    for metric in (service.primary_metric, service.slo.metric):
        base = metric.removesuffix("_spatial_cv")
        assert metric.endswith("_spatial_cv") and base in produced


def test_flood_examples_melt_storms_into_rows() -> None:
    cells = fake_cells(storms=(10, 50, 100))
    examples = get_service("flood").build_examples(cells)
    assert len(examples) == 3 * len(cells)
    assert sorted(examples["rainfall_mm"].unique()) == [10.0, 50.0, 100.0]
    at_50 = examples[examples["rainfall_mm"] == 50.0].reset_index(drop=True)
    expected = (cells["flood_frac_p50"] >= FLOODED_FRACTION).astype(float)
    assert at_50["flooded"].tolist() == expected.tolist()
    assert list(examples.columns[: len(ID_COLUMNS)]) == list(ID_COLUMNS)
    assert storm_depths(cells) == [10.0, 50.0, 100.0]


def test_check_examples_flags_nan_and_out_of_range() -> None:
    uhi = get_service("uhi")
    examples = uhi.build_examples(fake_cells())
    assert uhi.check_examples(examples)["passed"]
    broken = examples.copy()
    broken.loc[0, "ndvi"] = 3.0
    broken.loc[1, "lst"] = np.nan
    report = uhi.check_examples(broken)
    failed = {(c["column"], c["check"].split("[")[0]) for c in report["checks"] if not c["passed"]}
    assert failed == {("ndvi", "in_range"), ("lst", "not_null")}
    assert not report["passed"]


def test_params_are_validated_and_coerced() -> None:
    uhi = get_service("uhi")
    model, training = resolve_params(uhi, parse_param_pairs(["n_estimators=50", "cv_folds=3"]))
    assert model["n_estimators"] == 50 and training["cv_folds"] == 3
    assert model["learning_rate"] == uhi.default_params["learning_rate"]
    with pytest.raises(InvalidInputError, match="unknown parameter"):
        resolve_params(uhi, {"n_trees": "5"})
    with pytest.raises(InvalidInputError, match="must be of type int"):
        resolve_params(uhi, {"n_estimators": "many"})
    with pytest.raises(InvalidInputError):
        parse_param_pairs(["no-equals-sign"])


def test_service_lookup() -> None:
    assert set(all_services()) >= {"uhi", "flood"}
    with pytest.raises(ServiceNotFoundError):
        get_service("tsunami")


def test_real_cell_table_satisfies_both_services(tiny_scenes: list[Path]) -> None:
    from terraops.pipelines.scenes.cell_tables import scene_cell_table

    cells = scene_cell_table(read_scene(tiny_scenes[0]))
    assert set(cells.columns) >= CELL_FEATURES
    assert storm_depths(cells) == [float(p) for p in DESIGN_STORMS_MM]
    for service in all_services().values():
        report = service.check_examples(service.build_examples(cells))
        assert report["passed"], [c for c in report["checks"] if not c["passed"]]
