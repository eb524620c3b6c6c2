"""LightGBM building blocks shared by the service declarations.

Why LightGBM for every tabular service: one-row ``booster.predict`` in tens of
µs (the API's latency budget), native missing values (optional request fields),
and monotone constraints (physics we are sure of, enforced).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from terraops.services.base import Feature

#: Parameters every service starts from; a service overrides what differs.
BASE_PARAMS: dict[str, Any] = {
    "learning_rate": 0.05,
    "num_leaves": 31,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.9,
    "reg_lambda": 1.0,
    "random_state": 0,
    # One thread: CV fits are small, and OpenMP threads spin-waiting on a busy
    # 2-core machine made each boosting round 15x slower than single-threaded.
    "n_jobs": 1,
}


def lightgbm_factory(
    estimator: type, features: tuple[Feature, ...], monotone: Mapping[str, int]
) -> Callable[[Mapping[str, Any]], Any]:
    """A ``model_factory``: unfitted ``estimator`` with monotone constraints in feature order."""
    constraints = [monotone.get(f.name, 0) for f in features]

    def make_model(params: Mapping[str, Any]) -> Any:
        return estimator(**{**params, "monotone_constraints": constraints, "verbose": -1})

    return make_model
