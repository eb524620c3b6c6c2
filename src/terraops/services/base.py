"""The service recipe: what a model service *declares*.

Training, registry, serving, monitoring and maps are generic over a
:class:`ServiceDefinition`; adding a service (UHI, flood, ...) means writing one
of these, not copying a pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

Task = Literal["regression", "binary"]


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
    extra_columns: tuple[str, ...] = ()

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

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
