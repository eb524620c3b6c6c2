"""Ground truth sent back for served predictions, kept in SQLite under the home.

A feedback row is one observed value joined to the prediction it judges: the
model version that served it, what it predicted and when. The join is made
*before* a row is stored (by request id through the prediction log, or by
scoring the given features with the serving model), so the store holds
complete pairs and live error is one SQL aggregate — no log scan, no model —
whenever someone asks (``live_error``, ``/metrics``, ``terraops slo check``).

Why SQLite: durable (WAL, ``synchronous=FULL``: a 201 means the row is on
disk), safe with several server workers and a CLI import writing at once (a
busy writer waits, nothing is lost), and an import is one transaction — all
rows or none. A request id (and row index) gets truth once: a second report is
refused rather than overwriting the first.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from terraops.adapters.sqlite_wal import connect_wal
from terraops.errors import ConflictError, NotFoundError
from terraops.services import get_service

Task = Literal["regression", "binary"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY,
    service TEXT NOT NULL,
    task TEXT NOT NULL,
    request_id TEXT,
    row_index INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL,
    prediction REAL NOT NULL,
    observed REAL NOT NULL,
    predicted_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    source TEXT NOT NULL,
    features TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS feedback_request
    ON feedback (service, request_id, row_index) WHERE request_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS feedback_received ON feedback (service, received_at);
"""

#: A flood prediction counts as "flooded" at or above this probability (F1).
BINARY_THRESHOLD = 0.5


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _iso(moment: datetime) -> str:
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")


@dataclass(frozen=True)
class FeedbackRow:
    """One observed value joined to the prediction it judges."""

    service: str
    task: Task
    version: int
    prediction: float
    observed: float
    predicted_at: str
    request_id: str | None = None
    index: int = 0
    features: Mapping[str, float | None] | None = None
    source: str = "api"
    received_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "service": self.service,
            "request_id": self.request_id,
            "index": self.index,
            "version": self.version,
            "prediction": self.prediction,
            "observed": self.observed,
            "error": self.prediction - self.observed,
            "predicted_at": self.predicted_at,
            "received_at": self.received_at,
            "source": self.source,
        }
        if self.features is not None:
            out["features"] = dict(self.features)
        return out


class FeedbackStore:
    """Durable feedback rows and the live error computed from them."""

    def __init__(self, path: Path, *, timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self._ready = False

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = connect_wal(self.path, timeout_s=self.timeout_s, autocommit=True)
        try:
            if not self._ready:
                conn.executescript(_SCHEMA)
                self._ready = True
            yield conn
        finally:
            conn.close()

    # ----- writing -------------------------------------------------------------
    def add(
        self,
        service: str,
        *,
        task: Task,
        version: int,
        prediction: float,
        observed: float,
        predicted_at: str,
        request_id: str | None = None,
        index: int = 0,
        features: Mapping[str, float | None] | None = None,
        source: str = "api",
    ) -> FeedbackRow:
        """Store one row (committed and synced before returning)."""
        row = FeedbackRow(
            service, task, version, prediction, observed, predicted_at,
            request_id, index, features, source,
        )  # fmt: skip
        return self.add_many([row])[0]

    def add_many(self, rows: Sequence[FeedbackRow]) -> list[FeedbackRow]:
        """Store every row in one transaction: all of them, or none.

        Raises :class:`ConflictError` (nothing stored) when a request id already
        has feedback, naming the ids.
        """
        received = utc_now()
        stored = [
            FeedbackRow(**{**r.__dict__, "received_at": r.received_at or received}) for r in rows
        ]
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                taken = self._already_reported(conn, stored)
                if taken:
                    shown = ", ".join(f"{rid!r} (row {i})" for rid, i in taken[:10])
                    more = f" and {len(taken) - 10} more" if len(taken) > 10 else ""
                    raise ConflictError(
                        f"feedback already received for request id {shown}{more}; nothing stored",
                        hint="a prediction gets its ground truth once",
                    )
                conn.executemany(
                    "INSERT INTO feedback (service, task, request_id, row_index, version, "
                    "prediction, observed, predicted_at, received_at, source, features) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            r.service,
                            r.task,
                            r.request_id,
                            r.index,
                            r.version,
                            r.prediction,
                            r.observed,
                            r.predicted_at,
                            r.received_at,
                            r.source,
                            None if r.features is None else json.dumps(dict(r.features)),
                        )
                        for r in stored
                    ],
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return stored

    @staticmethod
    def _already_reported(
        conn: sqlite3.Connection, rows: Sequence[FeedbackRow]
    ) -> list[tuple[str, int]]:
        taken = []
        for r in rows:
            if r.request_id is None:
                continue
            hit = conn.execute(
                "SELECT 1 FROM feedback WHERE service = ? AND request_id = ? AND row_index = ?",
                (r.service, r.request_id, r.index),
            ).fetchone()
            if hit:
                taken.append((r.request_id, r.index))
        return taken

    # ----- reading -------------------------------------------------------------
    def already_reported(
        self, service: str, keys: set[tuple[str | None, int]]
    ) -> set[tuple[str | None, int]]:
        """Which ``(request_id, index)`` of ``keys`` already have feedback."""
        if not self.path.exists():
            return set()
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT request_id, row_index FROM feedback "
                "WHERE service = ? AND request_id IS NOT NULL",
                (service,),
            ).fetchall()
        return {(r[0], int(r[1])) for r in rows} & keys

    def rows(self, service: str, since: datetime | None = None) -> list[dict[str, Any]]:
        """Stored rows of a service (received at or after ``since``), oldest first."""
        sql = "SELECT * FROM feedback WHERE service = ?"
        args: list[Any] = [service]
        if since is not None:
            sql += " AND received_at >= ?"
            args.append(_iso(since))
        with self._connect() as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(sql + " ORDER BY id", args)]

    def live_error(
        self, service: str, since: datetime | None = None, version: int | None = None
    ) -> dict[str, Any]:
        """Live error of a service from the feedback received at or after ``since``.

        ``{"n", "metric", "value", "by_version": {version: {...}}}``: MAE (and
        mean signed error, ``bias``) for a regression service; Brier score (and
        F1 at probability 0.5) for a binary one. ``value`` is ``None`` without
        feedback. ``since`` filters on when the truth *arrived* (``received_at``).
        """
        task = self._task_of(service)
        where = "service = ?"
        args: list[Any] = [service]
        if since is not None:
            where += " AND received_at >= ?"
            args.append(_iso(since))
        if version is not None:
            where += " AND version = ?"
            args.append(version)
        t = BINARY_THRESHOLD
        sql = (
            "SELECT version, COUNT(*), SUM(ABS(prediction - observed)), "
            "SUM(prediction - observed), SUM((prediction - observed) * (prediction - observed)), "
            f"SUM(prediction >= {t} AND observed = 1), SUM(prediction >= {t} AND observed = 0), "
            f"SUM(prediction < {t} AND observed = 1) "
            f"FROM feedback WHERE {where} GROUP BY version ORDER BY version"
        )
        with self._connect() as conn:
            groups = conn.execute(sql, args).fetchall()
        by_version = {int(g[0]): _summary(task, *g[1:]) for g in groups}
        totals = [sum(g[i] or 0 for g in groups) for i in range(1, 8)]
        overall = _summary(task, *totals)
        metric = "brier" if task == "binary" else "mae"
        out: dict[str, Any] = {
            "service": service,
            "n": overall["n"],
            "metric": metric,
            "value": overall[metric],
            "since": _iso(since) if since is not None else None,
            "by_version": by_version,
        }
        if task == "binary":
            out["f1"] = overall["f1"]
        else:
            out["bias"] = overall["bias"]
        return out

    def _task_of(self, service: str) -> Task:
        try:
            return get_service(service).task
        except NotFoundError:
            pass
        if self.path.exists():
            with self._connect() as conn:
                hit = conn.execute(
                    "SELECT task FROM feedback WHERE service = ? LIMIT 1", (service,)
                ).fetchone()
            if hit:
                return "binary" if hit[0] == "binary" else "regression"
        return "regression"


def _summary(
    task: Task, n: int, abs_sum: float, signed_sum: float, sq_sum: float,
    tp: int, fp: int, fn: int,
) -> dict[str, Any]:  # fmt: skip
    n = int(n or 0)
    if task == "binary":
        tp, fp, fn = int(tp or 0), int(fp or 0), int(fn or 0)
        denominator = 2 * tp + fp + fn
        return {
            "n": n,
            "brier": sq_sum / n if n else None,
            "f1": 2 * tp / denominator if denominator else None,
            "brier_sum": sq_sum or 0.0,
        }
    return {
        "n": n,
        "mae": abs_sum / n if n else None,
        "bias": signed_sum / n if n else None,
        "abs_error_sum": abs_sum or 0.0,
    }


__all__ = ["BINARY_THRESHOLD", "FeedbackRow", "FeedbackStore"]
