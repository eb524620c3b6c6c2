"""``--param name=value`` overrides, typed by the default they replace (shared by every trainer)."""

from __future__ import annotations

from typing import Any

from terraops.errors import InvalidInputError


def coerce_param(name: str, raw: Any, default: Any) -> Any:
    """A ``--param`` string as the type of its default (bool, int, float), or a clear error."""
    if not isinstance(raw, str):
        return raw
    try:
        if isinstance(default, bool):
            if raw.lower() not in {"true", "false", "1", "0"}:
                raise ValueError(raw)
            return raw.lower() in {"true", "1"}
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        raise InvalidInputError(
            f"parameter {name}={raw!r} must be of type {type(default).__name__}"
        ) from None
    return raw
