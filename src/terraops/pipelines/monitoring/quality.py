"""Data quality: Great Expectations suites built from what a service declares.

Two suites:

- **per service** (``<service>.examples``), built from the feature schema of the
  service definition — every feature present, numeric, not null, inside its
  declared physical range, and not constant (a stuck sensor or a fill value
  repeated over a whole table; features that are constant over a scene by
  nature, like the day's reference temperature, are exempt); the target
  present, not null and plausible (0/1 for a binary service, the declared
  range of a regression target); at least 100 rows.
- **scene inputs** (``scene.inputs``), over one row of facts per raster layer of
  a scene folder: projected CRS in metres, pixel size 0.1–30 m and equal to the
  manifest's, reflectance bands within 0–1.5 at their 0.1/99.9 % quantiles,
  DEM within −100…9000 m, at most 5 % no-data per layer.

Great Expectations runs in an **ephemeral** context (nothing written to disk,
no project folder, analytics off) and is imported inside :func:`validate` only
— it takes ~10 s to import. Every check writes a readable Markdown report and
its JSON under ``TERRAOPS_HOME/reports/quality/``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from terraops.adapters import atomic, raster_files
from terraops.adapters.tables import read_feature_table
from terraops.domain.scene_record import Scene
from terraops.errors import InvalidInputError
from terraops.pipelines.monitoring.drift_report import read_scene_folder, scene_examples
from terraops.services.base import ServiceDefinition
from terraops.settings import Settings

MIN_ROWS = 100
MAX_NODATA_SHARE = 0.05
REFLECTANCE_RANGE = (0.0, 1.5)
DEM_RANGE = (-100.0, 9000.0)
RESOLUTION_RANGE = (0.1, 30.0)
NUMERIC_TYPES = [
    "float64",
    "float32",
    "float16",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "Float64",
    "Int64",
]

#: Features constant over a scene by nature (no "not constant" expectation).
SCENE_CONSTANT_FEATURES = frozenset({"reference_temperature", "rainfall_mm"})
#: Plausible ranges of regression targets (°C for land-surface temperature).
TARGET_RANGES: dict[str, tuple[float, float]] = {"lst": (-40.0, 90.0)}


@dataclass(frozen=True)
class Expectation:
    """One expectation as plain data: GE type name, its arguments and why it exists."""

    type: str
    kwargs: dict[str, Any]
    why: str

    @property
    def label(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.kwargs.items() if k != "column")
        column = self.kwargs.get("column")
        return f"{self.type}({column}{', ' if column and args else ''}{args})"


@dataclass(frozen=True)
class QualityResult:
    suite: str
    passed: bool
    results: list[dict[str, Any]]
    n_rows: int
    report_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [r["expectation"] for r in self.results if not r["success"]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "passed": self.passed,
            "n_rows": self.n_rows,
            "failed": self.failed,
            "results": self.results,
            "report": str(self.report_path) if self.report_path else None,
            **self.extra,
        }


# ----- suites as data --------------------------------------------------------------


def absent_optional_features(service: ServiceDefinition, examples: pd.DataFrame) -> set[str]:
    """Optional features a table does not carry at all (every value NaN).

    A scene imported without a DEM has no terrain features and a user's image
    without a thermal band no reference temperature: the models take such
    features as unknown, so a table may lack them as a whole — but never have
    them half-filled, which is what a broken input looks like.
    """
    return {
        name
        for name in service.optional_features
        if name in examples and examples[name].isna().all()
    }


def service_expectations(
    service: ServiceDefinition, *, target: bool = True, absent: Set[str] = frozenset()
) -> list[Expectation]:
    """The service's suite, from its feature schema (see the module doc).

    Features in ``absent`` (see :func:`absent_optional_features`) are only
    required to exist.
    """
    out: list[Expectation] = [
        Expectation(
            "expect_table_row_count_to_be_between",
            {"min_value": MIN_ROWS},
            f"at least {MIN_ROWS} rows: fewer cannot be cross-validated by blocks",
        )
    ]
    for f in service.features:
        col = {"column": f.name}
        out.append(Expectation("expect_column_to_exist", col, "declared feature of the service"))
        if f.name in absent:
            continue
        out += [
            Expectation(
                "expect_column_values_to_be_in_type_list",
                {**col, "type_list": NUMERIC_TYPES},
                "features are numbers",
            ),
            Expectation(
                "expect_column_values_to_not_be_null",
                col,
                "training rows carry every feature (NaN is made on purpose by augmentation)",
            ),
            Expectation(
                "expect_column_values_to_be_between",
                {**col, "min_value": f.minimum, "max_value": f.maximum},
                f"physical range of {f.name} ({f.unit})",
            ),
        ]
        if f.name not in SCENE_CONSTANT_FEATURES:
            out.append(
                Expectation(
                    "expect_column_stdev_to_be_between",
                    {**col, "min_value": 1e-9},
                    "not constant over the table: a stuck sensor or a fill value",
                )
            )
    if target:
        col = {"column": service.target}
        out += [
            Expectation("expect_column_to_exist", col, "the target of the service"),
            Expectation("expect_column_values_to_not_be_null", col, "every example is labelled"),
        ]
        if service.task == "binary":
            out.append(
                Expectation(
                    "expect_column_values_to_be_in_set",
                    {**col, "value_set": [0, 1]},
                    "a binary target is 0 or 1",
                )
            )
        elif service.target in TARGET_RANGES:
            lo, hi = TARGET_RANGES[service.target]
            out.append(
                Expectation(
                    "expect_column_values_to_be_between",
                    {**col, "min_value": lo, "max_value": hi},
                    f"plausible {service.target} ({service.target_unit})",
                )
            )
    return out


def scene_expectations() -> list[Expectation]:
    """The scene-inputs suite over :func:`scene_facts` (one row per layer)."""
    return [
        Expectation("expect_table_row_count_to_be_between", {"min_value": 1}, "layers exist"),
        Expectation(
            "expect_column_values_to_be_in_set",
            {"column": "crs_projected", "value_set": [True]},
            "cells and distances are computed in a projected CRS",
        ),
        Expectation(
            "expect_column_values_to_be_in_set",
            {"column": "crs_unit", "value_set": ["metre"]},
            "resolution and cell sizes are metres",
        ),
        Expectation(
            "expect_column_values_to_be_between",
            {
                "column": "resolution_m",
                "min_value": RESOLUTION_RANGE[0],
                "max_value": RESOLUTION_RANGE[1],
            },
            "pixel size the features are designed for",
        ),
        Expectation(
            "expect_column_values_to_be_in_set",
            {"column": "resolution_matches_manifest", "value_set": [True]},
            "every layer on the manifest's grid",
        ),
        Expectation(
            "expect_column_values_to_be_between",
            {"column": "nodata_share", "min_value": 0.0, "max_value": MAX_NODATA_SHARE},
            f"at most {MAX_NODATA_SHARE:.0%} no-data per layer",
        ),
        Expectation(
            "expect_column_values_to_be_between",
            {
                "column": "reflectance_p001",
                "min_value": REFLECTANCE_RANGE[0],
                "max_value": REFLECTANCE_RANGE[1],
            },
            "surface reflectance (0.1 % quantile) is physical",
        ),
        Expectation(
            "expect_column_values_to_be_between",
            {
                "column": "reflectance_p999",
                "min_value": REFLECTANCE_RANGE[0],
                "max_value": REFLECTANCE_RANGE[1],
            },
            "surface reflectance (99.9 % quantile) is physical (clouds, saturation, scaling)",
        ),
        Expectation(
            "expect_column_values_to_be_between",
            {"column": "dem_min", "min_value": DEM_RANGE[0], "max_value": DEM_RANGE[1]},
            "terrain height on Earth",
        ),
        Expectation(
            "expect_column_values_to_be_between",
            {"column": "dem_max", "min_value": DEM_RANGE[0], "max_value": DEM_RANGE[1]},
            "terrain height on Earth",
        ),
    ]


def scene_facts(scene: Scene, *, max_side: int = 1024) -> pd.DataFrame:
    """One row per raster layer of a scene: CRS, pixel size, no-data share, value quantiles.

    Values come from a decimated read (at most ``max_side`` pixels a side), so
    memory stays flat in the scene's size.
    """
    bands = set(scene.reflectance.bands) if scene.reflectance else set()
    scale = float(scene.reflectance.scale) if scene.reflectance else 1.0
    rows = []
    for name, file in scene.layer_files.items():
        if name not in bands and name != "dem":
            continue  # targets and labels are not inputs
        band = raster_files.read_first_band(scene.folder / file, max_side=max_side)
        crs, nodata = band.crs, band.nodata
        data = band.data.astype(np.float64)
        resolution = float(abs(band.transform.a))
        invalid = ~np.isfinite(data) | (data == nodata if nodata is not None else False)
        valid = data[~invalid]
        row: dict[str, Any] = {
            "layer": name,
            "crs_projected": bool(crs is not None and crs.is_projected),
            "crs_unit": (crs.linear_units if crs is not None else "none") or "none",
            "resolution_m": resolution,
            "resolution_matches_manifest": bool(np.isclose(resolution, float(scene.resolution))),
            "nodata_share": float(invalid.mean()),
            "reflectance_p001": np.nan,
            "reflectance_p999": np.nan,
            "dem_min": np.nan,
            "dem_max": np.nan,
        }
        if valid.size and name in bands:
            lo, hi = np.quantile(valid * scale, [0.001, 0.999])
            row.update(reflectance_p001=float(lo), reflectance_p999=float(hi))
        elif valid.size:
            row.update(dem_min=float(valid.min()), dem_max=float(valid.max()))
        rows.append(row)
    return pd.DataFrame(rows)


# ----- running a suite --------------------------------------------------------------


def _gx_expectation(gx: Any, spec: Expectation) -> Any:
    class_name = "".join(part.title() for part in spec.type.split("_"))
    cls = getattr(gx.expectations, class_name)
    return cls(**spec.kwargs, meta={"why": spec.why})


def _observed(result: Any) -> Any:
    details = dict(result.result or {})
    keep = ("observed_value", "unexpected_count", "unexpected_percent", "partial_unexpected_list")
    out = {k: details[k] for k in keep if k in details}
    if "partial_unexpected_list" in out:
        out["partial_unexpected_list"] = out["partial_unexpected_list"][:5]
    return json.loads(json.dumps(out, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def validate(table: pd.DataFrame, expectations: Sequence[Expectation], suite: str) -> QualityResult:
    """Run a suite on a DataFrame in an ephemeral GE context (nothing written)."""
    import logging

    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("terraops")
    asset = source.add_dataframe_asset(suite)
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(
        batch_parameters={"dataframe": table}
    )
    gx_suite = gx.ExpectationSuite(name=suite)
    for spec in expectations:
        gx_suite.add_expectation(_gx_expectation(gx, spec))
    outcome = batch.validate(gx_suite)
    results = []
    for spec, result in zip(expectations, outcome.results, strict=True):
        error = (result.exception_info or {}).get("exception_message")
        results.append(
            {
                "expectation": spec.label,
                "type": spec.type,
                "column": spec.kwargs.get("column"),
                "success": bool(result.success),
                "why": spec.why,
                "observed": _observed(result),
                **({"error": str(error)} if error else {}),
            }
        )
    return QualityResult(suite, all(r["success"] for r in results), results, len(table))


# ----- entry points -------------------------------------------------------------------


def check_examples(
    settings: Settings,
    service: ServiceDefinition,
    examples: pd.DataFrame,
    *,
    source: str,
    target: bool = True,
    save: bool = True,
) -> QualityResult:
    """The service suite on an example table; the report is saved under the home."""
    result = validate(
        examples,
        service_expectations(
            service, target=target, absent=absent_optional_features(service, examples)
        ),
        f"{service.name}.examples",
    )
    return _saved(settings, result, source, service.name) if save else result


def check_scene(settings: Settings, scene: Scene, *, save: bool = True) -> QualityResult:
    facts = scene_facts(scene)
    result = validate(facts, scene_expectations(), "scene.inputs")
    result = QualityResult(
        result.suite,
        result.passed,
        result.results,
        result.n_rows,
        extra={"layers": facts.to_dict(orient="records")},
    )
    return _saved(settings, result, str(scene.folder), "scene") if save else result


def check_data(settings: Settings, service: ServiceDefinition, data: Path) -> list[QualityResult]:
    """``terraops quality check``: a scene folder (scene suite + service suite on its
    cell table) or a feature table (service suite; the target is checked when present)."""
    data = Path(data)
    if data.is_dir():
        scene_record = read_scene_folder(data)
        scene = check_scene(settings, scene_record)
        if not scene.passed:
            return [scene]  # features of a broken scene would only repeat the failure
        examples = scene_examples(service, scene_record, settings.cell_size_m)
        return [scene, check_examples(settings, service, examples, source=str(data))]
    table = read_feature_table(data)
    return [
        check_examples(
            settings, service, table, source=str(data), target=service.target in table.columns
        )
    ]


def refuse_unless_passed(results: Sequence[QualityResult], what: str) -> None:
    """Raise ``DataQualityError`` (exit 2) naming every failed expectation."""
    failed = [f"{r.suite}: {name}" for r in results for name in r.failed]
    if failed:
        reports = ", ".join(str(r.report_path) for r in results if r.report_path)
        raise DataQualityError(
            f"{what} failed data quality ({len(failed)} expectation(s))",
            reasons=failed,
            hint=f"report: {reports}" if reports else None,
        )


class DataQualityError(InvalidInputError):
    """Data failed a quality suite; ``reasons`` names the failed expectations."""

    def __init__(self, message: str, *, reasons: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reasons = reasons


# ----- reports -------------------------------------------------------------------------


def _saved(settings: Settings, result: QualityResult, source: str, name: str) -> QualityResult:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    base = settings.reports_dir / "quality" / f"{name}-{stamp}"
    md = base.with_suffix(".md")
    payload = {**result.as_dict(), "source": source, "created_at": stamp, "report": str(md)}
    atomic.atomic_write_json(base.with_suffix(".json"), payload, default=str, parents=True)
    atomic.atomic_write_text(md, render_markdown(result, source))
    return QualityResult(
        result.suite, result.passed, result.results, result.n_rows, md, result.extra
    )


def render_markdown(result: QualityResult, source: str) -> str:
    verdict = "PASSED" if result.passed else f"FAILED ({len(result.failed)} expectation(s))"
    lines = [
        f"# Data quality: {result.suite} — {verdict}",
        "",
        f"- Data: `{source}` ({result.n_rows} rows)",
        f"- Checked: {datetime.now(UTC).isoformat(timespec='seconds')} with Great Expectations",
        "",
        "| | Expectation | Observed | Why |",
        "|---|---|---|---|",
    ]
    for r in sorted(result.results, key=lambda r: r["success"]):
        mark = "ok" if r["success"] else "**FAIL**"
        observed = json.dumps(r["observed"], default=str) if r["observed"] else ""
        if r.get("error"):
            observed = f"error: {r['error']}"
        lines.append(f"| {mark} | `{r['expectation']}` | {observed} | {r['why']} |")
    return "\n".join(lines) + "\n"
