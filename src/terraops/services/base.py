"""The service recipe: what a model service *declares*.

Training, registry, serving, monitoring and maps are generic over a
:class:`ServiceDefinition`; adding a service (UHI, flood, ...) means writing one
of these, not copying a pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

Task = Literal["regression", "binary"]

#: Columns every example table keeps besides features and target: where a row is
#: (spatial CV blocks, residual maps) and which scene it came from.
ID_COLUMNS: tuple[str, ...] = ("scene", "row", "col", "x", "y")


@dataclass(frozen=True)
class Feature:
    """One model input: its unit, physical range and meaning.

    ``required=False`` means a request may omit it; the model then receives
    NaN, which it was trained to handle (see ``train``: missing-value
    augmentation), so the prediction uses what the caller did give.
    """

    name: str
    unit: str
    description: str
    minimum: float
    maximum: float
    example: float
    required: bool = True


@dataclass(frozen=True)
class SLO:
    """Service-level objectives checked from live data (see SLO.md)."""

    p95_latency_ms: float
    error_budget: float  # allowed fraction of failed (5xx) requests over the window
    metric: str  # registered-run metric the model must meet
    metric_target: float
    metric_higher_is_better: bool = False


@dataclass(frozen=True)
class RasterStyle:
    """How a raster is shown: a rio-tiler colormap and the values mapped to its ends.

    ``rescale=None`` means "the 2nd–98th percentile of the raster", computed
    when the layer is made and stored with it.
    """

    colormap: str
    rescale: tuple[float, float] | None
    legend: str


@dataclass(frozen=True)
class DerivedRaster:
    """A second raster computed from the prediction grid (e.g. UHI intensity).

    ``compute(prediction, inputs)`` gets the prediction grid and the grids of
    the feature columns named in ``inputs``; it returns the derived grid and a
    dict of facts to keep with the layer (e.g. the reference used).
    """

    key: str
    title: str
    unit: str
    style: RasterStyle
    inputs: tuple[str, ...]
    compute: Callable[[np.ndarray, Mapping[str, np.ndarray]], tuple[np.ndarray, dict[str, Any]]]


@dataclass(frozen=True)
class AreaRule:
    """Vector areas drawn from a raster: where ``source`` (``"prediction"`` or a
    derived key) is at or above ``threshold(values)``."""

    key: str
    title: str
    source: str
    threshold: Callable[[np.ndarray], float]
    rule: str  # how the threshold is chosen, in words (kept in the properties)


@dataclass(frozen=True)
class MapSpec:
    """What a service contributes to the map: its view, styles and area products.

    ``param_labels`` turn scenario parameters into short id parts
    (``{"rainfall_mm": "p{:g}"}`` → ``flood-prob-p50-city1``).
    """

    group: str
    key: str
    title: str
    prediction: RasterStyle
    derived: tuple[DerivedRaster, ...] = ()
    areas: tuple[AreaRule, ...] = ()
    param_labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ServiceDefinition:
    """Everything that makes one model service different from another."""

    name: str
    title: str
    description: str
    task: Task
    features: tuple[Feature, ...]
    target: str
    target_unit: str
    prediction_unit: str
    model_factory: Callable[[Mapping[str, Any]], Any]
    default_params: Mapping[str, Any]
    build_examples: Callable[[pd.DataFrame], pd.DataFrame]
    metrics: Callable[[np.ndarray, np.ndarray], dict[str, float]]
    primary_metric: str
    primary_metric_higher_is_better: bool
    slo: SLO
    monotone: Mapping[str, int] = field(default_factory=dict)
    map: MapSpec | None = None
    extra_columns: tuple[str, ...] = ()
    baseline: str | None = None
    """An optional context feature the target is relative to (UHI: the day's rural
    LST). The model learns ``target − baseline`` from the other features and the
    baseline is added back to its output; where a request or scene does not know
    the baseline, the training data's mean stands in (a typical day). Why: a
    level shared by a whole scene cannot be learned from a handful of training
    cities — leaving one of nine varied cities out, learning it as a feature
    gave 2.5 K MAE against 1.2 K as an offset."""
    # Model-card prose (the numbers come from the registered run).
    intended_use: str = ""
    out_of_scope: tuple[str, ...] = ()
    limitations: tuple[str, ...] = ()
    model_card: str = "tabular"
    """Which sections the one card builder renders for this service (``terraops card``):
    the tabular ones (metrics per CV scheme, features, live error, real scenes)."""

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def model_inputs(self) -> list[str]:
        """The columns the fitted model itself sees: every feature but the baseline."""
        return [f.name for f in self.features if f.name != self.baseline]

    @property
    def required_features(self) -> list[str]:
        return [f.name for f in self.features if f.required]

    @property
    def optional_features(self) -> list[str]:
        return [f.name for f in self.features if not f.required]

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def check_examples(self, examples: pd.DataFrame) -> dict[str, Any]:
        """Data-quality expectations of a training table, as a JSON-able report.

        Every feature and the target must be present and free of NaN, and each
        feature must lie in its declared physical range. Declared here (not in
        the trainer) because the ranges are part of what a service *is*; the
        trainer logs the report and the promotion gates refuse a failed run.
        """
        checks: list[dict[str, Any]] = []

        def add(column: str, check: str, failed_rows: int) -> None:
            checks.append(
                {
                    "column": column,
                    "check": check,
                    "failed_rows": failed_rows,
                    "passed": failed_rows == 0,
                }
            )

        import pandas as pd  # a service is declared without pandas; checked when used

        for name in [*self.feature_names, self.target]:
            if name not in examples.columns:
                add(name, "present", len(examples))
                continue
            values = pd.to_numeric(examples[name], errors="coerce")
            add(name, "not_null", int(values.isna().sum()))
            if name != self.target:
                spec = self.feature(name)
                outside = (values < spec.minimum) | (values > spec.maximum)
                add(name, f"in_range[{spec.minimum}, {spec.maximum}]", int(outside.sum()))
        add("*", "at_least_100_rows", 0 if len(examples) >= 100 else 1)
        return {
            "service": self.name,
            "n_rows": len(examples),
            "passed": all(c["passed"] for c in checks),
            "checks": checks,
        }
