"""Request and response models, generated from each service's feature schema.

Adding a service adds its endpoints and its documentation without any code
here: field names, units, ranges, examples and which fields are required all
come from the :class:`~terraops.services.base.ServiceDefinition`.

Validation is strict on purpose: numbers must be JSON numbers (``true`` is not
1.0, ``"0.5"`` is not 0.5), NaN/Infinity are refused (Starlette's JSON parser
accepts those tokens), values must lie in the feature's physical range and
unknown fields are errors rather than silently ignored typos.
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.config import JsonDict

from terraops.services.base import Feature, ServiceDefinition

STRICT = ConfigDict(extra="forbid")


def _feature_field(feature: Feature) -> tuple[Any, Any]:
    rng = f"{feature.minimum:g} to {feature.maximum:g}"
    constrained = Annotated[
        float,
        Field(
            ge=feature.minimum,
            le=feature.maximum,
            strict=True,
            allow_inf_nan=False,
            description=f"{feature.description} [{feature.unit}], {rng}"
            + ("" if feature.required else "; optional (the model treats it as unknown)"),
            examples=[feature.example],
        ),
    ]
    if feature.required:
        return constrained, ...
    return constrained | None, None


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def features_model(definition: ServiceDefinition) -> type[BaseModel]:
    """``{feature: value}`` for one location, e.g. ``UhiFeatures``."""
    fields = {f.name: _feature_field(f) for f in definition.features}
    example: dict[str, Any] = {f.name: f.example for f in definition.features if f.required}
    return create_model(  # type: ignore[call-overload]
        f"{_camel(definition.name)}Features",
        __config__=ConfigDict(
            extra="forbid", json_schema_extra={"examples": [cast(JsonDict, example)]}
        ),
        __doc__=f"Inputs of the {definition.title} model for one location.",
        **fields,
    )


def batch_model(
    definition: ServiceDefinition, features: type[BaseModel], max_batch_size: int
) -> type[BaseModel]:
    """``{"instances": [...]}`` with between 1 and ``max_batch_size`` items."""
    instances = Annotated[
        list[features],  # type: ignore[valid-type]
        Field(
            min_length=1,
            max_length=max_batch_size,
            description=f"1 to {max_batch_size} locations",
        ),
    ]
    columns = columns_schema(definition, max_batch_size)

    def both_shapes(schema: dict[str, Any]) -> None:
        """Document the columnar body beside the rows (validated by the route, not here)."""
        rows = {k: schema.pop(k) for k in ("type", "properties", "required") if k in schema}
        schema.pop("additionalProperties", None)
        schema["oneOf"] = [{**rows, "additionalProperties": False, "title": "Rows"}, columns]

    return create_model(
        f"{_camel(definition.name)}BatchRequest",
        __config__=ConfigDict(extra="forbid", json_schema_extra=cast(Any, both_shapes)),
        instances=(instances, ...),
    )


def columns_schema(definition: ServiceDefinition, max_batch_size: int) -> dict[str, Any]:
    """JSON schema of ``{"columns": {feature: [values...]}}``, one array per feature."""
    properties: dict[str, Any] = {}
    for feature in definition.features:
        number: dict[str, Any] = {
            "type": "number",
            "minimum": feature.minimum,
            "maximum": feature.maximum,
        }
        item = number if feature.required else {"anyOf": [number, {"type": "null"}]}
        properties[feature.name] = {
            "type": "array",
            "items": item,
            "minItems": 1,
            "maxItems": max_batch_size,
            "description": f"{feature.description} [{feature.unit}], one value per row"
            + ("" if feature.required else "; optional: leave out, or null for a row"),
        }
    required = [f.name for f in definition.features if f.required]
    return {
        "title": "Columns",
        "type": "object",
        "description": f"The same rows, one array per feature (1 to {max_batch_size} rows, "
        "every array as long as the others). Faster to send and to read than rows.",
        "properties": {
            "columns": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            }
        },
        "required": ["columns"],
        "additionalProperties": False,
    }


class ModelRef(BaseModel):
    """Which model computed a response (lineage in every answer)."""

    name: str
    version: int
    alias: str


class PointInterval(BaseModel):
    """A calibrated interval (``?interval=LEVEL``); null bounds: outside the area of
    applicability, where no interval is claimed."""

    level: float
    lower: float | None
    upper: float | None


class BatchInterval(BaseModel):
    """The intervals of a batch, one bound per row in the request's order."""

    level: float
    lower: list[float | None]
    upper: list[float | None]


class DriverContribution(BaseModel):
    driver: str
    label: str
    contribution: float


class PredictionResponse(BaseModel):
    prediction: float
    unit: str
    model: ModelRef
    interval: PointInterval | None = Field(None, description="With `?interval=LEVEL`")
    in_applicability_domain: bool | None = Field(
        None, description="With `?interval=`: the input resembles the training data"
    )
    contributions: dict[str, float] | None = Field(
        None, description="With `?explain=true`: feature → contribution in the prediction's unit"
    )
    baseline: float | None = Field(
        None, description="With `?explain=true`: baseline + Σ contributions = prediction"
    )
    drivers: list[DriverContribution] | None = Field(
        None,
        description="With `?explain=true`: the contributions grouped by driver (vegetation, "
        "built form, water, terrain, the day's reference...), in legend order",
    )
    dominant_driver: str | None = Field(
        None, description="With `?explain=true`: the driver that pushes the value up the most"
    )
    sentence: str | None = Field(
        None, description="With `?explain=true`: why, in one plain sentence"
    )


class BatchPredictionResponse(BaseModel):
    predictions: list[float]
    unit: str
    model: ModelRef
    interval: BatchInterval | None = None
    in_applicability_domain: list[bool] | None = None
    contributions: list[dict[str, float]] | None = None
    baseline: list[float] | None = None


class PromoteRequest(BaseModel):
    model_config = STRICT

    version: Annotated[int, Field(strict=True, ge=1, description="Version to make champion")]
    reason: Annotated[str | None, Field(max_length=500)] = None
    force: Annotated[bool, Field(strict=True, description="Override data/metric gates")] = False


class RollbackRequest(BaseModel):
    model_config = STRICT

    to_version: Annotated[
        int | None, Field(strict=True, ge=1, description="Former champion; default: previous")
    ] = None
    reason: Annotated[str | None, Field(max_length=500)] = None


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body has this shape."""

    error: str
    message: str
    hint: str | None = None
    reasons: list[str] | None = None
    errors: list[dict[str, Any]] | None = None
