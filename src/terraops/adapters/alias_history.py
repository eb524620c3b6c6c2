"""Durable journal of alias changes (MLflow keeps no alias history).

One SQLite file under the home folder, in WAL mode with ``synchronous=FULL`` so
every commit is fsync'd before it returns: a row the lifecycle has written
survives a crash or a power cut. Changes are journalled write-ahead — a
``pending`` row is committed *before* the alias moves, then marked
``committed`` — so a crash at any point leaves a row that a reconcile can
resolve by looking at where the alias actually points.

Readers (the API's history endpoint, the CLI) and the one writer (the
lifecycle, serialised by a file lock) can use it concurrently.

Scale-out: the same journal — same table, same statements, same semantics —
can live in a shared PostgreSQL database instead
(:class:`terraops.adapters.state_db.PostgresDatabase`, ``TERRAOPS_STATE_DB_URL``),
so every host sees one history. A :class:`JournalStore` is the only thing that
differs: how to connect, the dialect's auto-increment key and placeholder, and
how to create the table safely when several processes start at once.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from terraops.adapters.sqlite_wal import connect_wal
from terraops.domain.promotion import Action, EntryStatus, GateResult, HistoryEntry

_TABLE = """
CREATE TABLE IF NOT EXISTS alias_history (
    id {id_column},
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
)
"""
_INDEX = "CREATE INDEX IF NOT EXISTS alias_history_service ON alias_history (service, alias, id)"

_COLUMNS = (
    "id, service, alias, action, from_version, to_version, actor, reason, forced, status, "
    "created_at, resolved_at, gates"
)

#: Added columns ("table.column": type), applied to journals created by older
#: versions (compatible: nullable).
_ADDED_COLUMNS: dict[str, str] = {
    "alias_history.gates": "TEXT",  # JSON list of gate verdicts
}


class JournalStore(Protocol):
    """Where the journal's rows live (SQLite file or shared PostgreSQL database)."""

    #: How the store is named in messages (no secrets).
    description: str
    #: Column definition of the dialect's auto-increment primary key.
    id_column: str

    def sql(self, statement: str) -> str:
        """A statement written with ``?`` placeholders, in this dialect."""
        ...

    def transaction(self) -> AbstractContextManager[Any]:
        """A connection (``execute`` returning cursors of mapping rows) in one
        transaction, committed durably on a clean exit."""
        ...

    def create(self, statements: Sequence[str], added_columns: Mapping[str, str]) -> None:
        """Run the idempotent DDL and add missing columns, safe against a concurrent twin."""
        ...


class SqliteStore:
    """The embedded default: one SQLite file, WAL, ``synchronous=FULL``."""

    id_column = "INTEGER PRIMARY KEY AUTOINCREMENT"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = str(path)

    def sql(self, statement: str) -> str:
        return statement

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A short-lived connection: one transaction, committed (fsync'd) on exit."""
        with closing(connect_wal(self.path)) as conn:
            conn.row_factory = sqlite3.Row
            with conn:  # commit on success, roll back on error
                yield conn

    def create(self, statements: Sequence[str], added_columns: Mapping[str, str]) -> None:
        with self.transaction() as conn:
            for statement in statements:
                conn.execute(statement)
            for table_column, column_type in added_columns.items():
                table, column = table_column.split(".")
                present = {r["name"] for r in conn.execute(f"PRAGMA table_info({table})")}
                if column in present:
                    continue
                try:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {column_type}")
                except sqlite3.OperationalError as exc:  # another process added it first
                    if "duplicate column" not in str(exc):
                        raise


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _entry(row: Mapping[str, Any]) -> HistoryEntry:
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

    def __init__(self, where: Path | JournalStore) -> None:
        """Open (creating if needed) the journal in a SQLite file or another store."""
        self.store: JournalStore = SqliteStore(where) if isinstance(where, Path) else where
        self.store.create((_TABLE.format(id_column=self.store.id_column), _INDEX), _ADDED_COLUMNS)

    @property
    def description(self) -> str:
        return self.store.description

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        with self.store.transaction() as conn:
            yield conn

    def _execute(self, conn: Any, statement: str, params: tuple[Any, ...]) -> Any:
        return conn.execute(self.store.sql(statement), params)

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
            inserted = self._execute(
                conn,
                "INSERT INTO alias_history (service, alias, action, from_version, to_version, "
                "actor, reason, forced, status, created_at, resolved_at, gates) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
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
            ).fetchone()
        return self.get(int(inserted["id"]))

    def resolve(self, entry_id: int, status: EntryStatus) -> HistoryEntry:
        """Mark a pending intent ``committed`` or ``aborted`` (idempotent)."""
        with self._connect() as conn:
            self._execute(
                conn,
                "UPDATE alias_history SET status = ?, resolved_at = ? "
                "WHERE id = ? AND status = 'pending'",
                (status, _now(), entry_id),
            )
        return self.get(entry_id)

    def get(self, entry_id: int) -> HistoryEntry:
        with self._connect() as conn:
            row = self._execute(
                conn, f"SELECT {_COLUMNS} FROM alias_history WHERE id = ?", (entry_id,)
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
            rows = self._execute(conn, query + " ORDER BY id", params).fetchall()
        return [_entry(r) for r in rows]

    def pending(self, service: str) -> list[HistoryEntry]:
        return [e for e in self.entries(service) if e.status == "pending"]
