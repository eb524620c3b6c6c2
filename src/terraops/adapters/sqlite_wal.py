"""Open an embedded SQLite file in WAL mode, safely when many open it at once.

Why this exists: switching a file to WAL needs an exclusive lock, and SQLite
answers ``database is locked`` at once — without waiting on the busy timeout —
when another connection holds a lock at that moment. Several server workers
and a CLI command opening a fresh file together hit exactly that. The mode is
persistent, so the switch is made once per file: a connection reads the mode
first (a shared lock, which does wait) and retries the switch only while it is
still needed, until the same deadline the busy timeout gives writers.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

_RETRY_PAUSE_S = 0.005


def connect_wal(
    path: Path, *, timeout_s: float = 30.0, autocommit: bool = False
) -> sqlite3.Connection:
    """A connection to ``path`` in WAL mode with ``synchronous=FULL`` (every commit fsync'd).

    ``autocommit`` leaves transactions to the caller (``BEGIN IMMEDIATE``...);
    otherwise the sqlite3 module opens one before each write, as by default.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        path, timeout=timeout_s, isolation_level=None if autocommit else "DEFERRED"
    )
    try:
        _ensure_wal(conn, deadline=time.monotonic() + timeout_s)
        conn.execute("PRAGMA synchronous=FULL")
    except BaseException:
        conn.close()
        raise
    return conn


def _ensure_wal(conn: sqlite3.Connection, *, deadline: float) -> None:
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() == "wal":
                return
            conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise
            time.sleep(_RETRY_PAUSE_S)
