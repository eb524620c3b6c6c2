"""Many connections opening one fresh SQLite file at once all get WAL, none fails."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from terraops.adapters.sqlite_wal import connect_wal


def _open_and_write(path: Path, worker: int, errors: list[BaseException]) -> None:
    try:
        conn = connect_wal(path, timeout_s=10.0, autocommit=True)
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS t (worker INTEGER)")
            conn.execute("INSERT INTO t VALUES (?)", (worker,))
        finally:
            conn.close()
    except BaseException as exc:  # collected and asserted on below
        errors.append(exc)


def test_concurrent_first_opens_all_switch_to_wal_without_error(tmp_path: Path) -> None:
    for trial in range(25):
        path = tmp_path / f"fresh-{trial}.db"
        errors: list[BaseException] = []
        threads = [
            threading.Thread(target=_open_and_write, args=(path, w, errors)) for w in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 6


def test_a_file_that_is_not_a_database_is_not_retried(tmp_path: Path) -> None:
    path = tmp_path / "not.db"
    path.write_bytes(b"this is not an SQLite file" * 100)
    try:
        connect_wal(path, timeout_s=5.0)
    except sqlite3.DatabaseError as exc:
        assert "not a database" in str(exc)
    else:
        raise AssertionError("opening a non-database file should fail")
