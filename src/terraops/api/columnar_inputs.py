"""Batch bodies given column by column: columnar JSON and Apache Arrow IPC streams.

Why: a ``{"instances": [...]}`` body is one JSON object per row, and turning
it into the model's matrix costs more than the model itself. A column per
feature decodes straight into numpy:

* ``{"columns": {"ndvi": [0.5, 0.4, ...], "tree_cover": [...], ...}}``
  (``application/json``), decoded by msgspec against a type made from the
  service's features, so only numbers — or ``null`` in an optional feature —
  get through, each column becomes a float64 array at once;
* an Arrow IPC stream (``application/vnd.apache.arrow.stream``) with one
  numeric column per feature, read without a copy per value.

The rules are those of a row body (:mod:`terraops.api.fast_inputs`, the
documented request models): every value a finite number within the feature's
range, an optional feature absent or ``null`` (the model treats it as
unknown), no unknown column, 1 to ``max_rows`` rows, every column as long as
the others. A refusal is a ``RequestValidationError`` naming the column and the
row (``columns.ndvi[17]``, ``ndvi[17]`` for Arrow), which the app words as a
422 like any other validation error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any, NoReturn

import msgspec
import numpy as np
from fastapi.exceptions import RequestValidationError

from terraops.api.fast_inputs import FastInputs, FieldCheck

ARROW_STREAM = "application/vnd.apache.arrow.stream"
_ARROW_TYPE = ARROW_STREAM.encode("ascii")
#: A JSON body whose first key is ``columns`` is a columnar batch.
_COLUMNS_BODY = re.compile(rb"\A\s*\{\s*\"columns\"\s*:")
_MSGSPEC_PATH = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_MSGSPEC_TYPES = {"str": "", "bool": True, "null": None, "array": [], "object": {}}

Loc = tuple[str | int, ...]


def arrow_request(scope: MutableMapping[str, Any]) -> bool:
    """Whether the request declares an Arrow IPC stream body."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == _ARROW_TYPE
    return False


def batch_openapi() -> dict[str, Any]:
    """The Arrow body in the batch route's OpenAPI document (the JSON shapes come from
    its request model, :func:`terraops.api.schemas.batch_model`)."""
    described = (
        "An Arrow IPC stream: one column per feature (float64 or integer; null for an "
        "unknown value of an optional feature), 1 to the batch limit rows."
    )
    schema = {"type": "string", "format": "binary", "description": described}
    return {"requestBody": {"content": {ARROW_STREAM: {"schema": schema}}}}


def is_columnar_json(body: bytes) -> bool:
    """Whether a JSON batch body is ``{"columns": ...}`` (its first key)."""
    return _COLUMNS_BODY.match(body[:256]) is not None


def _refuse(loc: Loc, kind: str, msg: str, value: Any = None, **ctx: Any) -> NoReturn:
    error = {"loc": ("body", *loc), "type": kind, "msg": msg, "input": value}
    if ctx:
        error["ctx"] = ctx
    raise RequestValidationError([error])


class ColumnarInputs:
    """Columnar JSON and Arrow batch bodies of one service for one model's feature order."""

    def __init__(self, inputs: FastInputs, title: str) -> None:
        self.inputs = inputs
        fields = [
            (
                check.name,
                list[float] if check.required else list[float | None] | None,
                msgspec.NODEFAULT if check.required else None,
            )
            for check in inputs.fields.values()
        ]
        columns = msgspec.defstruct(f"{title}Columns", fields, forbid_unknown_fields=True)
        body = msgspec.defstruct(
            f"{title}ColumnsBody", [("columns", columns)], forbid_unknown_fields=True
        )
        self._decoder = msgspec.json.Decoder(body)

    # ----- columnar JSON ----------------------------------------------------------------
    def from_json(self, body: bytes) -> np.ndarray:
        """``(rows, model features)`` float64 of a valid ``{"columns": {...}}`` body."""
        try:
            decoded = self._decoder.decode(body)
        except msgspec.ValidationError as exc:
            _refuse_msgspec(str(exc))
        except msgspec.DecodeError as exc:
            reason = str(exc)
            at = re.search(r"\(byte (\d+)\)", reason)
            _refuse((int(at.group(1)) if at else 0,), "json_invalid", "", error=reason)
        columns = getattr(decoded, "columns")  # noqa: B009 - a struct made at run time
        given = {
            name: values
            for name in self.inputs.fields
            if (values := getattr(columns, name)) is not None
        }
        arrays = {name: np.array(values, dtype=np.float64) for name, values in given.items()}
        # JSON has no NaN: a NaN here is a null (optional features only).
        nulls = {
            name: np.isnan(values)
            for name, values in arrays.items()
            if not self.inputs.fields[name].required
        }
        return self.matrix(arrays, nulls, ("columns",))

    # ----- Arrow IPC ----------------------------------------------------------------------
    def from_arrow(self, body: bytes) -> np.ndarray:
        """``(rows, model features)`` float64 of a valid Arrow IPC stream body."""
        import pyarrow as pa  # lazy: only Arrow requests pay its import

        try:
            table = pa.ipc.open_stream(body).read_all()
        except (pa.ArrowException, OSError, ValueError) as exc:
            _refuse((), "value_error", f"is not an Arrow IPC stream ({exc})")
        names = table.column_names
        unknown = [n for n in names if n not in self.inputs.fields]
        if unknown:
            _refuse((unknown[0],), "extra_forbidden", "")
        if len(set(names)) != len(names):
            twice = next(n for n in names if names.count(n) > 1)
            _refuse((twice,), "value_error", "is given twice; send each feature once")
        arrays: dict[str, np.ndarray] = {}
        nulls: dict[str, np.ndarray] = {}
        for name in names:
            column = table.column(name)
            if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
                _refuse(
                    (name,),
                    "value_error",
                    f"must be a column of numbers (Arrow float64 or integer), got {column.type}",
                )
            if column.null_count:
                nulls[name] = np.asarray(column.is_null().to_numpy(zero_copy_only=False))
            arrays[name] = np.asarray(column.to_numpy(), dtype=np.float64)  # null: NaN
        return self.matrix(arrays, nulls, ())

    # ----- shared checks --------------------------------------------------------------------
    def matrix(
        self, arrays: Mapping[str, np.ndarray], nulls: Mapping[str, np.ndarray], prefix: Loc
    ) -> np.ndarray:
        """The model's matrix of checked columns (see the module docstring for the rules)."""
        fields = self.inputs.fields
        missing = [c.name for c in fields.values() if c.required and c.name not in arrays]
        if missing:
            _refuse((*prefix, missing[0]), "missing", "")
        rows = _row_count(arrays, prefix, self.inputs.max_rows)
        matrix = np.full((rows, self.inputs.width), np.nan, dtype=np.float64)
        for name, values in arrays.items():
            check = fields[name]
            _check_column(values, nulls.get(name), check, (*prefix, name))
            if check.position >= 0:
                matrix[:, check.position] = values
        return matrix


def _row_count(arrays: Mapping[str, np.ndarray], prefix: Loc, max_rows: int) -> int:
    if not arrays:
        _refuse(prefix, "value_error", "give at least one feature column")
    lengths = {name: int(values.shape[0]) for name, values in arrays.items()}
    counts = list(lengths.values())
    rows = max(counts, key=counts.count)  # the length most columns have
    first = next(name for name, length in lengths.items() if length == rows)
    for name, length in lengths.items():
        if length != rows:
            _refuse(
                (*prefix, name),
                "value_error",
                f"has {length} values but {first} has {rows}: give every column one value per row",
            )
    if not 1 <= rows <= max_rows:
        _refuse(
            (*prefix, first),
            "value_error",
            f"{rows} rows given; send 1 to {max_rows} rows per request "
            "(TERRAOPS_MAX_BATCH_SIZE), split a bigger batch",
        )
    return rows


def _check_column(
    values: np.ndarray, nulls: np.ndarray | None, check: FieldCheck, loc: Loc
) -> None:
    """Refuse the first bad value of one column (null where required, NaN, ±inf, range)."""
    good = (values >= check.minimum) & (values <= check.maximum)
    if nulls is not None and not check.required:
        good |= nulls
    if bool(good.all()):
        return
    row = int(np.argmin(good))
    value = float(values[row])
    if nulls is not None and bool(nulls[row]):
        _refuse((*loc, row), "float_type", "", None)
    if value != value or value in (np.inf, -np.inf):
        _refuse((*loc, row), "finite_number", "", value)
    kind = "greater_than_equal" if value < check.minimum else "less_than_equal"
    _refuse((*loc, row), kind, "", value)


def _refuse_msgspec(text: str) -> NoReturn:
    """A msgspec validation error as the matching 422 (its ``$.a.b[3]`` path as ``loc``)."""
    message, _, path = text.partition(" - at `$")
    loc: list[str | int] = [
        name if name else int(index) for name, index in _MSGSPEC_PATH.findall(path.rstrip("`"))
    ]
    named = re.search(r"field `([^`]+)`", message)
    if message.startswith("Object missing required field") and named:
        _refuse((*loc, named.group(1)), "missing", "")
    if message.startswith("Object contains unknown field") and named:
        _refuse((*loc, named.group(1)), "extra_forbidden", "")
    got = re.fullmatch(r"Expected `float`, got `(\w+)`", message)
    if got:
        _refuse(tuple(loc), "float_type", "", _MSGSPEC_TYPES.get(got.group(1), got.group(1)))
    if message == "Number out of range":
        _refuse(tuple(loc), "finite_number", "", float("inf"))
    wanted = {"Expected `array`": "must be an array of numbers, one per row"}
    hint = next((text for start, text in wanted.items() if message.startswith(start)), None)
    if hint is None and not loc:
        hint = 'must be {"columns": {"feature": [values...], ...}}'
    _refuse(tuple(loc), "value_error", hint or message)


__all__ = ["ARROW_STREAM", "ColumnarInputs", "is_columnar_json"]
