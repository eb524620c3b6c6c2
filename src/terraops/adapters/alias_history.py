"""Durable journal of alias changes (MLflow keeps no alias history).

One SQLite file under the home folder, in WAL mode with ``synchronous=FULL`` so
every commit is fsync'd before it returns: a row the lifecycle has written
survives a crash or a power cut. Changes are journalled write-ahead — a
``pending`` row is committed *before* the alias moves, then marked
``committed`` — so a crash at any point leaves a row that a reconcile can
resolve by looking at where the alias actually points.

Readers (the API's history endpoint, the CLI) and the one writer (the
lifecycle, serialised by a file lock) can use it concurrently.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from terraops.domain.promotion import Action, EntryStatus, GateResult, HistoryEntry

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alias_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT NOT NULL,
    alias TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('promote', 'rollback', 'assign', 'external')),
    from_version INTEGER,
    to_version INTEGER,
    actor TEXT NOT NULL,
    reason TEXT,
    forced INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL CHECK (status IN ('pending', 'committed', 'aborted')),
    created_at TEXT NOT NULL,
    resolved_at TEXT
);
CREATE INDEX IF NOT EXISTS alias_history_service ON alias_history (service, alias, id);
"""

_COLUMNS = (
    "id, service, alias, action, from_version, to_version, actor, reason, forced, status, "
    "created_at, resolved_at, gates"
)

#: Added columns, applied to journals created by older versions (compatible: nullable).
_MIGRATIONS: dict[str, str] = {
    "gates": "ALTER TABLE alias_history ADD COLUMN gates TEXT",  # JSON list of gate verdicts
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _entry(row: sqlite3.Row) -> HistoryEntry:
    return HistoryEntry(
        id=row["id"],
        service=row["service"],
        alias=row["alias"],
        action=row["action"],
        from_version=row["from_version"],
        to_version=row["to_version"],
        actor=row["actor"],
        reason=row["reason"],
        forced=bool(row["forced"]),
        status=row["status"],
        created_at=datetime.fromisoformat(row["created_at"]),
        resolved_at=datetime.fromisoformat(row["resolved_at"]) if row["resolved_at"] else None,
        gates=tuple(GateResult.from_dict(g) for g in json.loads(row["gates"] or "[]")),
    )


class AliasHistory:
    """Append-mostly journal of alias changes, one row per change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.executescript(_SCHEMA)
            present = {r["name"] for r in conn.execute("PRAGMA table_info(alias_history)")}
            for column, statement in _MIGRATIONS.items():
                if column not in present:
                    try:
                        conn.execute(statement)
                    except sqlite3.OperationalError as exc:  # another process added it first
                        if "duplicate column" not in str(exc):
                            raise

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A short-lived connection: one transaction, committed (fsync'd) on exit."""
        with closing(sqlite3.connect(self.path, timeout=30.0)) as conn:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            with conn:  # commit on success, roll back on error
                yield conn

    def begin(
        self,
        *,
        service: str,
        alias: str,
        action: Action,
        from_version: int | None,
        to_version: int | None,
        actor: str,
        reason: str | None,
        forced: bool,
        status: EntryStatus = "pending",
        gates: tuple[GateResult, ...] = (),
    ) -> HistoryEntry:
        """Write an intent (``pending``) — or a fact, with ``status='committed'``."""
        now = _now()
        resolved = now if status != "pending" else None
        with self._connect() as conn:
            cursor = conn.execute(
                "INSERT INTO alias_history (service, alias, action, from_version, to_version, "
                "actor, reason, forced, status, created_at, resolved_at, gates) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    service,
                    alias,
                    action,
                    from_version,
                    to_version,
                    actor,
                    reason,
                    int(forced),
                    status,
                    now,
                    resolved,
                    json.dumps([g.as_dict() for g in gates]) if gates else None,
                ),
            )
            row_id = cursor.lastrowid
        assert row_id is not None
        return self.get(row_id)

    def resolve(self, entry_id: int, status: EntryStatus) -> HistoryEntry:
        """Mark a pending intent ``committed`` or ``aborted`` (idempotent)."""
        with self._connect() as conn:
            conn.execute(
                "UPDATE alias_history SET status = ?, resolved_at = ? "
                "WHERE id = ? AND status = 'pending'",
                (status, _now(), entry_id),
            )
        return self.get(entry_id)

    def get(self, entry_id: int) -> HistoryEntry:
        with self._connect() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM alias_history WHERE id = ?", (entry_id,)
            ).fetchone()
        if row is None:
            raise KeyError(entry_id)
        return _entry(row)

    def entries(self, service: str, alias: str | None = None) -> list[HistoryEntry]:
        """Every entry for a service (optionally one alias), oldest first."""
        query = f"SELECT {_COLUMNS} FROM alias_history WHERE service = ?"
        params: tuple[str, ...] = (service,)
        if alias is not None:
            query += " AND alias = ?"
            params = (service, alias)
        with self._connect() as conn:
            rows = conn.execute(query + " ORDER BY id", params).fetchall()
        return [_entry(r) for r in rows]

    def pending(self, service: str) -> list[HistoryEntry]:
        return [e for e in self.entries(service) if e.status == "pending"]
