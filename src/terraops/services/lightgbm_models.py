"""LightGBM building blocks shared by the service declarations.

Why LightGBM for every tabular service: one-row ``booster.predict`` in tens of
µs (the API's latency budget), native missing values (optional request fields),
and monotone constraints (physics we are sure of, enforced). For serving, a
model's trees are compiled (:func:`serving_forest`) where that reproduces
LightGBM's predictions exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from terraops.services.base import Feature

log = logging.getLogger("terraops.serving")

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
    estimator: str, features: tuple[Feature, ...], monotone: Mapping[str, int]
) -> Callable[[Mapping[str, Any]], Any]:
    """A ``model_factory``: an unfitted LightGBM ``estimator`` (its class name, e.g.
    ``"LGBMRegressor"``) with monotone constraints in feature order.

    LightGBM is imported when a model is made, not when a service is declared: commands
    that only read a service's declaration (``models list``) skip its second of imports.
    """
    constraints = [monotone.get(f.name, 0) for f in features]

    def make_model(params: Mapping[str, Any]) -> Any:
        import lightgbm

        model_class = getattr(lightgbm, estimator)
        return model_class(**{**params, "monotone_constraints": constraints, "verbose": -1})

    return make_model


def serving_forest(booster: Any, label: str = "model") -> Any:
    """The booster compiled for serving (:mod:`terraops.domain.compiled_forest`), or None.

    Why checked here, at load: a compiled model that gave other numbers than
    LightGBM would silently change every served prediction. So the compiled
    model is used only when it reproduces ``booster.predict`` within
    :data:`~terraops.domain.compiled_forest.RELATIVE_TOLERANCE` on inputs that
    exercise every split (thresholds, their neighbours, NaN, ±0); a model it
    cannot reproduce (categorical splits, linear trees, multiclass) or that
    differs stays on LightGBM, and the reason is logged. ``label`` names the
    model in the log.
    """
    from terraops.domain import compiled_forest  # lazy: numba, only where a model is served

    dump = booster.dump_model()
    reason = compiled_forest.unsupported_reason(dump)
    if reason is None:
        forest = compiled_forest.compile_forest(dump, int(booster.num_feature()))
        inputs = compiled_forest.check_inputs(forest)
        diff = compiled_forest.agreement(
            forest, lambda X: booster.predict(X, num_threads=1), inputs
        )
        if diff <= compiled_forest.RELATIVE_TOLERANCE:
            log.info("%s: serving the compiled trees (max relative difference %.1e)", label, diff)
            return forest
        reason = (
            f"its predictions differ from LightGBM's by up to {diff:.2e} (relative; "
            f"tolerance {compiled_forest.RELATIVE_TOLERANCE:g})"
        )
    log.warning("%s: served by LightGBM, not compiled: %s", label, reason)
    return None
