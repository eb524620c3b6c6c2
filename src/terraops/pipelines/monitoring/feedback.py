"""Ground truth → stored feedback rows → live error.

Truth arrives later than predictions (a satellite pass, a flood survey), as an
API call or a file. Either way it is joined to what was predicted *before* it
is stored:

- by **request id** (and row ``index`` of a batch): the prediction, version and
  time come from the prediction log — the values the caller actually got;
- by **features**: the given features are scored with the model that serves
  them (the server's champion, or for an import the champion or ``--version``),
  and that version is recorded.

An import is checked completely first (every row valid, every id found in the
log, none reported twice) and stored in one transaction, so a bad file stores
nothing and its report names every bad line.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from terraops.adapters.feedback_store import FeedbackRow, FeedbackStore
from terraops.adapters.prediction_log import read_predictions
from terraops.adapters.registry import ModelRegistry
from terraops.errors import InvalidInputError
from terraops.pipelines.lifecycle.aliases import load_verified_predictor
from terraops.pipelines.lifecycle.resolve import resolve_version_number
from terraops.services import get_service
from terraops.services.base import ServiceDefinition
from terraops.settings import Settings

#: Most bad lines listed in one report (the count is always given).
MAX_REPORTED = 50


class BadRowsError(InvalidInputError):
    """A feedback file has bad rows; nothing was imported. ``reasons``: one per line."""

    def __init__(self, message: str, *, reasons: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reasons = reasons


@dataclass(frozen=True)
class FeedbackEntry:
    """One validated piece of truth, before it is joined to a prediction."""

    line: int
    service: str
    observed: float
    request_id: str | None = None
    index: int = 0
    features: Mapping[str, float | None] | None = None


def check_observed(definition: ServiceDefinition, observed: float) -> float:
    """The observed value, or a clear error (binary services take 0 or 1)."""
    if not math.isfinite(observed):
        raise InvalidInputError("observed: must be a finite number")
    if definition.task == "binary" and observed not in (0.0, 1.0):
        raise InvalidInputError(
            f"observed: {definition.name} is a yes/no service ({definition.target}); "
            f"give 0 or 1, got {observed:g}"
        )
    return float(observed)


def row_from_record(
    definition: ServiceDefinition, record: Mapping[str, Any], observed: float, source: str
) -> FeedbackRow:
    """Join truth to a logged prediction (refused when that request failed)."""
    if record.get("status", 200) != 200 or record.get("prediction") is None:
        raise InvalidInputError(
            f"request {record.get('request_id')!r} failed with status {record.get('status')}: "
            "there is no prediction to compare with"
        )
    return FeedbackRow(
        service=definition.name,
        task=definition.task,
        version=int(record["version"]),
        prediction=float(record["prediction"]),
        observed=observed,
        predicted_at=str(record["ts"]),
        request_id=record.get("request_id"),
        index=int(record.get("index", 0)),
        source=source,
    )


def score_features(
    definition: ServiceDefinition,
    predictor: Any,
    version: int,
    entries: Sequence[FeedbackEntry],
    source: str,
) -> list[FeedbackRow]:
    """Score the given features with ``predictor`` (one batch) and pair with the truth."""
    names = list(getattr(predictor, "feature_names", definition.feature_names))
    rows = np.array(
        [[_nan_if_none((e.features or {}).get(n)) for n in names] for e in entries],
        dtype=np.float64,
    )
    predictions = np.asarray(predictor.predict(rows), dtype=np.float64)
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    return [
        FeedbackRow(
            service=definition.name,
            task=definition.task,
            version=version,
            prediction=float(p),
            observed=e.observed,
            predicted_at=now,
            features=dict(e.features or {}),
            source=source,
        )
        for e, p in zip(entries, predictions, strict=True)
    ]


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else float(value)


# ----- files ---------------------------------------------------------------------------


def read_feedback_file(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line, object)`` per data row of a CSV or JSON-lines file.

    CSV: a header, then ``request_id,observed`` (optional ``index``, ``service``)
    or feature columns plus ``observed``; numbers are parsed here, empty cells
    are "not given". JSON lines: one request body per line (as the API takes
    it), optionally with ``"service"``.
    """
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path)
    if suffix in (".jsonl", ".ndjson", ".json"):
        return _read_jsonl(path)
    raise InvalidInputError(
        f"{path}: unknown format {suffix or '(no suffix)'!r}", hint="give a .csv or .jsonl file"
    )


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    out, bad = [], []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                bad.append(f"line {number}: not valid JSON ({exc.msg})")
                continue
            if not isinstance(item, dict):
                bad.append(f"line {number}: expected a JSON object, got {type(item).__name__}")
                continue
            out.append((number, item))
    if bad:
        raise bad_rows_error(path, bad)
    return out


_ID_COLUMNS = ("service", "request_id")


def _read_csv(path: Path) -> list[tuple[int, dict[str, Any]]]:
    out, bad = [], []
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "observed" not in reader.fieldnames:
            raise InvalidInputError(
                f"{path}: the CSV header must name an 'observed' column",
                hint="columns: request_id,observed[,index][,service] or features…,observed",
            )
        for raw in reader:
            number = reader.line_num
            item: dict[str, Any] = {}
            features: dict[str, Any] = {}
            problems = []
            for column, cell in raw.items():
                if column is None:
                    problems.append(f"line {number}: more cells than header columns")
                    continue
                cell = (cell or "").strip()
                if not cell:
                    continue
                if column in _ID_COLUMNS:
                    item[column] = cell
                    continue
                try:
                    value: Any = int(cell) if column == "index" else float(cell)
                except ValueError:
                    problems.append(f"line {number}: {column}: {cell!r} is not a number")
                    continue
                if column in ("index", "observed"):
                    item[column] = value
                else:
                    features[column] = value
            if features:
                item["features"] = features
            bad.extend(problems)
            if not problems:
                out.append((number, item))
    if bad:
        raise bad_rows_error(path, bad)
    return out


def bad_rows_error(path: Path, reasons: list[str]) -> BadRowsError:
    shown = reasons[:MAX_REPORTED]
    if len(reasons) > MAX_REPORTED:
        shown.append(f"… and {len(reasons) - MAX_REPORTED} more")
    return BadRowsError(
        f"{path}: {len(reasons)} bad row(s); nothing imported", reasons=shown, hint=None
    )


# ----- import ----------------------------------------------------------------------------


def import_feedback(
    settings: Settings,
    entries: Sequence[FeedbackEntry],
    *,
    source: str,
    path: Path,
    version: int | None = None,
    load_predictor: Any = None,
) -> dict[str, Any]:
    """Join every entry to a prediction and store them all in one transaction.

    ``load_predictor(service, version | None) -> (version, predictor)`` scores
    feature rows (default: the registry's champion, or ``version``). Raises
    :class:`BadRowsError` naming every bad line; nothing is stored then.
    """
    store = FeedbackStore(settings.feedback_db)
    bad: list[str] = []
    for entry in entries:
        try:
            check_observed(get_service(entry.service), entry.observed)
        except InvalidInputError as exc:
            bad.append(f"line {entry.line}: {exc.message}")
    seen: dict[tuple[str, str, int], int] = {}
    for entry in entries:
        if entry.request_id is None:
            continue
        key = (entry.service, entry.request_id, entry.index)
        if key in seen:
            bad.append(
                f"line {entry.line}: request id {entry.request_id!r} (row {entry.index}) "
                f"already given on line {seen[key]}"
            )
        seen.setdefault(key, entry.line)
    rows: list[tuple[int, FeedbackRow]] = []
    by_service: dict[str, list[FeedbackEntry]] = {}
    for entry in entries:
        by_service.setdefault(entry.service, []).append(entry)
    for service, group in by_service.items():
        definition = get_service(service)
        wanted: set[tuple[str | None, int]] = {
            (e.request_id, e.index) for e in group if e.request_id is not None
        }
        found = _logged(settings, service, wanted) if wanted else {}
        reported = store.already_reported(service, wanted) if wanted else set()
        for e in group:
            if e.request_id is None:
                continue
            record = found.get((e.request_id, e.index))
            if record is None:
                bad.append(
                    f"line {e.line}: no prediction with request id {e.request_id!r} "
                    f"(row {e.index}) in the {service} prediction log"
                )
            elif (e.request_id, e.index) in reported:
                bad.append(f"line {e.line}: request id {e.request_id!r} already has feedback")
            else:
                try:
                    rows.append((e.line, row_from_record(definition, record, e.observed, source)))
                except InvalidInputError as exc:
                    bad.append(f"line {e.line}: {exc.message}")
    if bad:
        raise bad_rows_error(path, bad)
    for service, group in by_service.items():
        scored = [e for e in group if e.request_id is None]
        if scored:
            loader = load_predictor or _registry_predictor(settings)
            used, predictor = loader(service, version)
            for e, row in zip(
                scored,
                score_features(get_service(service), predictor, used, scored, source),
                strict=True,
            ):
                rows.append((e.line, row))
    rows.sort(key=lambda item: item[0])
    stored = store.add_many([row for _, row in rows])
    return {
        "imported": len(stored),
        "file": str(path),
        "by_service": {s: sum(r.service == s for r in stored) for s in by_service},
        "live_error": {s: store.live_error(s) for s in by_service},
    }


def _logged(
    settings: Settings, service: str, wanted: set[tuple[str | None, int]]
) -> dict[tuple[str, int], dict[str, Any]]:
    """The logged records of the wanted ids (one pass over the log; latest wins)."""
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for record in read_predictions(settings.predictions_dir, service):
        key = (record.get("request_id"), int(record.get("index", 0)))
        if key in wanted:
            found[key] = record  # type: ignore[index]
    return found


def _registry_predictor(settings: Settings) -> Any:
    def load(service: str, version: int | None) -> tuple[int, Any]:
        registry = ModelRegistry(settings)
        version = resolve_version_number(
            registry,
            service,
            version,
            purpose="to score feature rows with",
            hint="promote a version, or pass --version N",
        )
        _, predictor = load_verified_predictor(registry, get_service(service), version)
        return version, predictor

    return load


__all__ = [
    "BadRowsError",
    "FeedbackEntry",
    "check_observed",
    "import_feedback",
    "read_feedback_file",
    "row_from_record",
    "score_features",
]
