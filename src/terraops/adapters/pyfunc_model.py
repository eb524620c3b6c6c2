"""MLflow's view of a terraops tabular model: a pyfunc that predicts what the API predicts.

MLflow's own LightGBM flavour would hand a request's columns straight to the
booster. A terraops model is more than its booster — a UHI model learns LST
relative to the day's reference temperature and adds it back
(:attr:`terraops.services.base.ServiceDefinition.baseline`) — so the logged
model is this pyfunc, whose ``predict`` is the serving
:class:`~terraops.adapters.model_bundle.Predictor` itself: ``mlflow.pyfunc``,
``mlflow models serve`` and ``terraops serve`` return the same numbers. The
booster is the artifact ``booster`` (LightGBM's text format); loading it needs
terraops installed (``--env-manager local`` for ``mlflow models serve``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from terraops.adapters.model_bundle import Predictor, predictor_from


class ServiceModel(PythonModel):
    """A terraops LightGBM service model; ``model_config`` is its terraops metadata."""

    _predictor: Predictor

    def load_context(self, context: Any) -> None:
        booster = Path(context.artifacts["booster"])
        self._predictor = predictor_from(booster, dict(context.model_config), booster.parent)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        """One value per row; columns by name, absent optional features as NaN."""
        frame = pd.DataFrame(model_input).reindex(columns=self._predictor.feature_names)
        return self._predictor.predict(frame.to_numpy(dtype=np.float64))
