"""Schema fuzzing with schemathesis: no request the OpenAPI document allows — or that
its negative mode derives by breaking it — may produce a 5xx.

The app runs in-process (ASGI) with a tiny deterministic predictor per service, so
the fuzzing exercises validation, routing and error mapping, not a model file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from terraops.api.app import create_app
from terraops.api.model_holder import LoadedModel, ModelHolder
from terraops.services import all_services
from terraops.settings import Settings

FEEDBACK_TOKEN = "fuzz-feedback-token"
"""Sent with every case, so feedback bodies get past the token and are fuzzed too."""


class MeanPredictor:
    """Mean of the given (non-NaN) inputs: finite for any valid request."""

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.nan_to_num(np.nanmean(np.where(np.isnan(X), 0.0, X), axis=1))


def _app():  # type: ignore[no-untyped-def]
    holders = {}
    for name, definition in all_services().items():
        holder = ModelHolder(definition)
        holder.swap(
            LoadedModel(
                service=name,
                name=name,
                version=1,
                alias="champion",
                predictor=MeanPredictor(),
                feature_names=tuple(definition.feature_names),
                source="registry",
            )
        )
        holders[name] = holder
    home = Path(tempfile.mkdtemp(prefix="terraops-fuzz-")) / "home"
    settings = Settings(
        home=home,
        max_batch_size=50,
        feedback_token=FEEDBACK_TOKEN,
        feedback_rate_per_min=1_000_000,  # the fuzzer is one client sending many bodies
    )
    return create_app(settings, holders=holders, watch=False)


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@schema.parametrize()
@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
def test_no_request_gets_a_server_error(case: schemathesis.Case) -> None:
    response = case.call(headers={"Authorization": f"Bearer {FEEDBACK_TOKEN}"})
    assert response.status_code < 500, (response.status_code, case.body, response.text[:300])
