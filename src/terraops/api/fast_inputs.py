"""Fast acceptance of prediction bodies that are valid, in the model's feature order.

Why: the documented request models (:mod:`terraops.api.schemas`) validate one
Pydantic object per location; behind FastAPI's generic request handler that
is most of a point request's CPU time, and for a 10 000-row batch it is one
object per row. The prediction routes therefore first try this module on the
parsed JSON body. It *only ever accepts*: a body it cannot vouch for — a wrong
type, a value out of range, NaN/Infinity, a missing or unknown field, too many
rows, anything unusual — makes it return ``None`` and the route falls back to
the documented Pydantic validation, which words the 422 (field, row index,
allowed range) exactly as before. So the two paths cannot disagree on an
error, and the fast path must accept nothing that Pydantic refuses:

* a feature value is a JSON number (``int`` or ``float``, never ``bool``),
  finite and within the feature's ``[minimum, maximum]``;
* an optional feature may be absent or ``null`` (the model gets NaN);
* no key outside the service's features (``extra="forbid"``);
* a batch is ``{"instances": [...]}`` with 1 to ``max_rows`` objects.

Batches are checked column by column with C-level passes (``map`` over the
rows, one ``set`` of value types, numpy range checks), not row by row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import msgspec
import numpy as np

from terraops.services.base import ServiceDefinition

NAN = float("nan")
_NUMBER = frozenset({float, int})
_NUMBER_OR_NULL = frozenset({float, int, type(None)})
# Errors a conversion of an accepted-looking value can raise (a huge int, say):
# the fast path declines and the documented validation answers.
_DECLINE = (OverflowError, TypeError, ValueError)
_ENCODE = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class FieldCheck:
    """One request field: where it goes in the model's row, and what it may hold."""

    name: str
    position: int  # index in the model's feature order; -1: accepted, not used
    minimum: float
    maximum: float
    required: bool


class FastInputs:
    """Accepts valid point and batch bodies of one service for one model's feature order."""

    def __init__(
        self, definition: ServiceDefinition, model_features: Sequence[str], max_rows: int
    ) -> None:
        order = {name: i for i, name in enumerate(model_features)}
        unknown = set(order) - set(definition.feature_names)
        if unknown:  # the model wants an input no request can give: never vouch
            raise ValueError(f"model features not in the service: {sorted(unknown)}")
        self.width = len(model_features)
        self.max_rows = max_rows
        self.fields = {
            f.name: FieldCheck(
                f.name, order.get(f.name, -1), float(f.minimum), float(f.maximum), f.required
            )
            for f in definition.features
        }
        self.required = frozenset(f.name for f in definition.features if f.required)
        self.allowed = frozenset(self.fields)
        self._checks = tuple(self.fields.values())
        # The point loop's view of the same checks: plain tuples unpack faster.
        self._point = {c.name: (c.position, c.minimum, c.maximum, c.required) for c in self._checks}

    # ----- one location ----------------------------------------------------------------
    def point(self, data: Any) -> list[float] | None:
        """The model's row for a valid ``{feature: value}`` object, else ``None``."""
        if type(data) is not dict or not self.required <= data.keys():
            return None
        row = [NAN] * self.width
        checks = self._point
        try:
            for key, value in data.items():
                check = checks.get(key)
                if check is None:
                    return None
                position, minimum, maximum, required = check
                kind = type(value)
                if kind is int:
                    value = float(value)
                elif kind is not float:
                    if value is None and not required:
                        continue
                    return None
                # Also refuses NaN (every comparison false) and ±inf (v - v is NaN).
                if not minimum <= value <= maximum or value - value != 0.0:
                    return None
                if position >= 0:
                    row[position] = value
        except _DECLINE:
            return None
        return row

    # ----- many locations ----------------------------------------------------------------
    def records(self, data: Any) -> np.ndarray | None:
        """``(rows, model features)`` float64 for a valid ``{"instances": [...]}``, else ``None``.

        NaN marks an optional feature not given (absent or ``null``).
        """
        if type(data) is not dict or len(data) != 1:
            return None
        rows = data.get("instances")
        if type(rows) is not list or not 1 <= len(rows) <= self.max_rows:
            return None
        if set(map(type, rows)) != {dict}:
            return None
        if not all(map(self.allowed.issuperset, rows)):  # a key that is no feature
            return None
        matrix = np.empty((len(rows), self.width), dtype=np.float64)
        try:
            for check in self._checks:
                pick = dict.__getitem__ if check.required else dict.get  # absent: None
                column = self.column(list(map(pick, rows, repeat(check.name))), check)
                if column is None:
                    return None
                if check.position >= 0:
                    matrix[:, check.position] = column
        except KeyError:  # a required feature missing in some row
            return None
        return matrix

    def column(self, values: list[Any], check: FieldCheck) -> np.ndarray | None:
        """One feature over all rows as float64 (NaN: not given), or ``None`` if any is bad."""
        kinds = set(map(type, values))
        if not kinds <= (_NUMBER if check.required else _NUMBER_OR_NULL):
            return None
        try:
            column = np.array(values, dtype=np.float64)  # None becomes NaN
        except _DECLINE:
            return None
        inside = (column >= check.minimum) & (column <= check.maximum) & np.isfinite(column)
        if type(None) not in kinds:
            return column if bool(inside.all()) else None
        # NaN here must come from null, never from a NaN token in the body.
        missing = np.isnan(column)
        if int(missing.sum()) != values.count(None) or not bool((inside | missing).all()):
            return None
        return column


def finite_json_array(values: Sequence[float]) -> bytes | None:
    """A JSON array of finite floats (shortest round-trip digits), ``None`` if any is not
    finite. msgspec writes it ~10× faster than ``json.dumps``: for a 100 000-row batch
    the response is no longer a noticeable part of the request."""
    if not all(map(math.isfinite, values)):
        return None
    return _ENCODE(values)


__all__ = ["FastInputs", "FieldCheck", "finite_json_array"]
