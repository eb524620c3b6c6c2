"""What ``?interval=`` and ``?explain=`` add to a prediction response.

- ``interval=LEVEL`` (0 < LEVEL < 1): the model version's calibrated
  (conformal, held-out-city) interval at that level, ``{"level", "lower",
  "upper"}``, and ``in_applicability_domain``; outside the area of
  applicability, and for a land-cover class the calibration could not calibrate
  on held-out cities, the bounds are ``null`` — no interval is claimed there. A
  version trained before calibration existed answers 409: no band is invented.
- ``explain=true``: ``contributions`` (feature → contribution in the
  prediction's unit) and ``baseline``, with ``baseline + Σ contributions`` the
  prediction; a point answer adds ``drivers``, ``dominant_driver`` and a
  ``sentence`` (:func:`terraops.domain.explain.explanation_json`).

A point response gets the values; a batch response the same keys with one
value per row (``interval.lower``/``upper``, ``in_applicability_domain``,
``contributions`` and ``baseline`` become lists in the request's order).
Requests without these query parameters never come here: their fast path
and bytes are unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from fastapi import Query, Request

from terraops.domain.explain import explanation_json
from terraops.errors import ConflictError

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


@dataclass(frozen=True)
class PredictExtras:
    """The query parameters that add to a prediction: an interval level, explanations."""

    interval: float | None = None
    explain: bool = False

    @property
    def wanted(self) -> bool:
        return self.interval is not None or self.explain


def query_extras(params: Mapping[str, str]) -> PredictExtras | None:
    """The extras of a query string, or ``None`` when a value is not valid (the
    documented path then words the 422)."""
    level: float | None = None
    raw = params.get("interval")
    if raw is not None:
        try:
            level = float(raw)
        except ValueError:
            return None
        if not 0.0 < level < 1.0:
            return None
    explain = str(params.get("explain", "false")).lower()
    if explain not in _TRUE | _FALSE:
        return None
    return PredictExtras(level, explain in _TRUE)


IntervalQuery = Annotated[
    float | None,
    Query(
        gt=0.0,
        lt=1.0,
        description="Add a calibrated prediction interval at this level (e.g. 0.9) and "
        "whether the input lies in the model's area of applicability (outside it, and for "
        "a land-cover class the held-out cities could not calibrate, the interval bounds "
        "are null: not claimed)",
    ),
]
ExplainQuery = Annotated[
    bool,
    Query(
        description="Add each feature's contribution (in the prediction's unit) and the "
        "baseline they add up from (baseline + Σ contributions = prediction)"
    ),
]


NO_EXTRAS = PredictExtras()


def fast_extras(request: Request) -> PredictExtras | None:
    """The query's extras (none without a query string), ``None`` when one is invalid."""
    if not request.scope.get("query_string"):
        return NO_EXTRAS
    return query_extras(request.query_params)


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def extra_fields(
    predictor: Any, rows: Any, values: Any, extras: PredictExtras, *, batch: bool = False
) -> dict[str, Any]:
    """The keys ``extras`` add to a response for ``rows`` predicted as ``values``
    (none when neither was asked)."""
    fields: dict[str, Any] = {}
    if not extras.wanted:
        return fields
    X = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
    if extras.interval is not None:
        if getattr(predictor, "task", "regression") != "regression":
            raise ConflictError(
                "this service predicts a calibrated probability: it has no interval",
                hint="drop ?interval=; the probability itself states how sure the model is",
            )
        if not getattr(predictor, "has_uncertainty", False):
            raise ConflictError(
                "this model version has no calibrated intervals or area of applicability "
                "(it was trained before they were computed)",
                hint="train and promote a new version, or ask without ?interval=",
            )
        prediction = np.asarray(values, dtype=np.float64)
        lower, upper, inside = predictor.interval_with_domain(X, extras.interval, prediction)
        lows, highs = [_number(v) for v in lower], [_number(v) for v in upper]
        flags = [bool(v) for v in inside]
        fields["interval"] = {
            "level": extras.interval,
            "lower": lows if batch else lows[0],
            "upper": highs if batch else highs[0],
        }
        fields["in_applicability_domain"] = flags if batch else flags[0]
    if extras.explain:
        if not callable(getattr(predictor, "explain", None)):
            raise ConflictError(
                "this model version cannot explain its predictions",
                hint="ask without ?explain=, or serve a LightGBM model trained by terraops",
            )
        explanation = predictor.explain(X)
        if not batch:
            # A point answer also says it in words: the drivers (a waterfall's bars),
            # the dominant one and one sentence — what the map shows on a click.
            why = explanation_json(explanation, str(predictor.service), 0)
            fields.update({key: why[key] for key in _POINT_EXPLANATION})
            return fields
        names = list(predictor.feature_names)
        fields["contributions"] = [
            dict(zip(names, row, strict=True)) for row in explanation.contributions.tolist()
        ]
        fields["baseline"] = explanation.baseline.tolist()
    return fields


#: The keys of :func:`explanation_json` a point answer carries, in the response's order.
_POINT_EXPLANATION = ("contributions", "baseline", "drivers", "dominant_driver", "sentence")
