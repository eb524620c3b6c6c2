"""The one table from domain errors to HTTP statuses, and readable 422s.

Every error body has the same shape (``schemas.ErrorResponse``): a machine
``error`` code, a ``message`` a person can act on, and where useful a ``hint``,
the gate ``reasons`` or the per-field ``errors``. Validation messages name the
field and, for a service feature, its allowed range and unit — taken from the
service definition, so they can never disagree with the schema.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from terraops import errors
from terraops.services.base import ServiceDefinition

HTTP_STATUS: dict[type[errors.TerraopsError], int] = {
    errors.InvalidInputError: 422,
    errors.PayloadTooLargeError: 413,
    errors.UnsupportedMediaError: 415,
    errors.NotFoundError: 404,
    errors.OutsideBoundsError: 404,
    errors.ModelNotReadyError: 503,
    errors.PromotionRefusedError: 409,
    errors.NothingToRollBackError: 409,
    errors.ConflictError: 409,
    errors.RegistryUnavailableError: 503,
    errors.ExtraNotInstalledError: 503,
    errors.StorageError: 507,
    errors.AuthError: 401,
    errors.AdminDisabledError: 403,
    errors.RateLimitedError: 429,
}


def status_for(exc: errors.TerraopsError) -> int:
    return errors.lookup_by_error_class(HTTP_STATUS, exc, 500)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name.removesuffix("Error")).lower()


def domain_error_response(exc: errors.TerraopsError) -> JSONResponse:
    body: dict[str, Any] = {"error": _snake(type(exc).__name__), "message": exc.message}
    if exc.hint:
        body["hint"] = exc.hint
    if isinstance(exc, errors.PromotionRefusedError):
        body["reasons"] = exc.reasons
    if isinstance(exc, errors.InvalidScenarioError):
        # Where the map page puts the highlight: the feature (by index) and its field.
        body["feature_index"] = exc.feature_index
        body["field"] = exc.field
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, errors.AuthError) else None
    if isinstance(exc, errors.RateLimitedError):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    return JSONResponse(body, status_code=status_for(exc), headers=headers)


# ----- validation errors ----------------------------------------------------------


_RANGE_ERRORS = frozenset({"greater_than_equal", "less_than_equal", "greater_than", "less_than"})
_DIMENSIONLESS = frozenset({"", "1"})


def _json_type(value: Any) -> str:
    """The JSON name of what the caller sent (``true`` is a boolean, not a number)."""
    names = {bool: "boolean", str: "string", list: "array", dict: "object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _field_path(loc: Sequence[Any]) -> str:
    path = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def describe_validation_error(
    error: Mapping[str, Any], definition: ServiceDefinition | None
) -> dict[str, Any]:
    """One validation error as ``{field, message[, allowed]}``."""
    loc = tuple(error.get("loc", ()))
    kind = error.get("type", "")
    field = _field_path(loc)
    leaf = loc[-1] if loc else None
    feature = None
    # The feature is the last name in ``loc``: ``instances[3].ndvi``, ``columns.ndvi[3]``.
    name = next((part for part in reversed(loc) if isinstance(part, str)), None)
    if definition is not None and name in definition.feature_names:
        feature = definition.feature(name)
    item: dict[str, Any] = {"field": field, "type": kind}
    if kind == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "")
        item["field"] = "body"
        item["message"] = f"request body is not valid JSON ({reason} at character {leaf})"
        return item
    if kind == "extra_forbidden":
        allowed = ", ".join(definition.feature_names) if definition else "see /docs"
        item["message"] = f"unknown field {field!r}; allowed fields: {allowed}"
        return item
    if kind in ("model_attributes_type", "dict_type") and field == "body":
        item["message"] = "request body must be a JSON object (Content-Type: application/json)"
        return item
    ctx = error.get("ctx") or {}
    if kind == "too_long" and leaf == "instances":
        item["message"] = (
            f"too many instances: {ctx.get('actual_length')} given, at most "
            f"{ctx.get('max_length')} per request (TERRAOPS_MAX_BATCH_SIZE); split the batch"
        )
        return item
    if kind == "too_short" and leaf == "instances":
        item["message"] = "instances: give at least one instance"
        return item
    message = f"{field}: {error.get('msg', 'invalid value')}"
    if kind == "missing":
        message = f"{field}: required field is missing"
    elif kind in _RANGE_ERRORS:
        message = f"{field}: {error.get('input')!r} is out of range"
    elif kind == "finite_number":
        message = f"{field}: must be a finite number (NaN and Infinity are not accepted)"
    elif kind == "float_type":
        message = f"{field}: must be a JSON number, got {_json_type(error.get('input'))}"
    if feature is not None:
        item["allowed"] = {
            "minimum": feature.minimum,
            "maximum": feature.maximum,
            "unit": feature.unit,
            "required": feature.required,
        }
        unit = "" if feature.unit in _DIMENSIONLESS else f" {feature.unit}"
        message += f" (allowed: {feature.minimum:g} to {feature.maximum:g}{unit})"
    item["message"] = message
    return item


def _service_of(request: Request, services: Mapping[str, ServiceDefinition]) -> Any:
    parts = request.url.path.strip("/").split("/")
    return services.get(parts[1]) if len(parts) > 1 and parts[0] == "v1" else None


def http_error_response(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """The framework's own refusals (no such route, wrong method, body too large) in the
    terraops error shape, so a client parses one shape whatever refused it."""
    code = _snake_phrase(exc.status_code)
    body: dict[str, Any] = {"error": code, "message": str(exc.detail)}
    if exc.status_code == 404:
        body["message"] = f"no route {request.method} {request.url.path[:200]}"
        body["hint"] = "GET /docs lists the API's routes"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        body["message"] = f"{request.method} is not allowed on {request.url.path[:200]}"
        body["hint"] = f"allowed: {allowed}" if allowed else "GET /docs lists the API's routes"
    elif exc.status_code == 400 and exc.__cause__ is not None:
        # Same status and code as a JSON syntax error (see describe_validation_error).
        return JSONResponse(_unparsable_body(exc.__cause__), status_code=422)
    hint = getattr(exc, "hint", None)
    if isinstance(hint, str):
        body["hint"] = hint
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def _unparsable_body(cause: BaseException) -> dict[str, str]:
    """Why FastAPI could not parse a JSON body (it only says "error parsing the body")."""
    if isinstance(cause, RecursionError):
        return {
            "error": "invalid_request",
            "message": "request body is nested too deeply to parse",
            "hint": "send a flat JSON object of features, or {'instances': [...]} for a batch",
        }
    if isinstance(cause, UnicodeDecodeError):
        return {
            "error": "invalid_request",
            "message": f"request body is not valid UTF-8 (byte {cause.start}: {cause.reason})",
            "hint": "encode the JSON body as UTF-8",
        }
    return {
        "error": "invalid_request",
        "message": f"request body could not be parsed as JSON ({type(cause).__name__})",
        "hint": "send a JSON object with Content-Type: application/json",
    }


def _snake_phrase(status: int) -> str:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return "http_error"
    return "payload_too_large" if status == 413 else re.sub(r"\W+", "_", phrase).strip("_").lower()


def install_error_handlers(app: FastAPI, services: Mapping[str, ServiceDefinition]) -> None:
    """Register the domain-error table, the readable validation handler and the
    framework-refusal handler (every error body in the same shape)."""

    async def on_domain_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, errors.TerraopsError)
        return domain_error_response(exc)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        definition = _service_of(request, services)
        items = [describe_validation_error(e, definition) for e in exc.errors()]
        body = {
            "error": "invalid_request",
            "message": "; ".join(i["message"] for i in items[:5])
            + (f"; … and {len(items) - 5} more" if len(items) > 5 else ""),
            "errors": items[:100],
        }
        return JSONResponse(body, status_code=422)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return http_error_response(request, exc)

    app.add_exception_handler(errors.TerraopsError, on_domain_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
