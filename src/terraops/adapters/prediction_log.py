"""Prediction log: what every served prediction was asked and answered.

It is the hook monitoring builds on (drift against the training reference,
SLO checks from live latency and errors, ground-truth feedback joined by
request id, audits of which version answered what), and it is generic over
services. One record per predicted row, as one JSON line::

    {"request_id": "3f9a0c1e-2a", "index": 0, "ts": "2025-01-31T09:00:00.123456+00:00",
     "service": "uhi", "version": 3, "features": {"ndvi": 0.5, "tree_cover": null, ...},
     "prediction": 31.5, "latency_ms": 0.21, "status": 200}

``index`` is the row of a batch request (0 for a point request); ``status`` is
the HTTP status the request got: a request that failed after validation (503:
no champion yet, 500: the model raised) is logged with ``prediction: null`` so
availability can be computed from the log. A ``null`` feature was not given.

Why this shape of writer: the request path only appends a tuple to an
in-memory deque (well under a µs); a background thread encodes (a numpy
batch through a compiled assembler, :mod:`terraops.adapters.log_lines`) and writes
batches, one file per process (``<home>/predictions/<service>/<day>-<pid>-<seq>.jsonl``)
so worker processes never contend for a file, and a crash loses at most one
flush interval. A file is rotated when it reaches ``max_bytes`` (next
``seq``), and files older than ``retention_s`` are deleted. Records are never
lost silently: a full buffer (disk stalled) or a failed write drops records
and counts them per reason (``dropped``), which ``/readyz`` and ``/metrics``
expose. A failed write is rolled back (the file truncated to where it was), so
the file never holds half a record except after a crash, which the reader skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import mmap
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias

log = logging.getLogger(__name__)

#: Why records were lost (keys of ``PredictionLog.dropped``).
DROP_REASONS = ("buffer_full", "write_error")
_RETENTION_CHECK_S = 600.0
#: An encoded batch at least this big is written at once, so a backlog of big batches
#: is never all held encoded in memory together (≈ 600 bytes a row).
_WRITE_NOW_BYTES = 16 * 1024 * 1024
#: What the writer appends: encoded lines (``bytes`` or a view of the assembler's buffer).
Buffer: TypeAlias = bytes | memoryview
_MB = 1024 * 1024


def iso_utc(t: float) -> str:
    """A UNIX time as the log's timestamp (ISO 8601, UTC, microseconds)."""
    return datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="microseconds")


class PredictionLog:
    """Buffered, per-process JSON-lines log of predictions (see the module docstring).

    ``max_buffered`` rows may wait for the writer (a queued batch costs about 8 bytes
    per value: 500 000 rows of 12 features ≈ 50 MB), so a few concurrent
    100 000-row batches fit while the writer works; when a quarter of that is queued
    the writer starts at once rather than at its next ``flush_interval_s``.
    """

    def __init__(
        self,
        root: Path,
        *,
        flush_interval_s: float = 1.0,
        max_buffered: int = 500_000,
        max_bytes: int = 64 * _MB,
        retention_s: float | None = 30 * 86400.0,
        on_drop: Callable[[str, int], None] | None = None,
    ) -> None:
        self.root = Path(root)
        self.flush_interval_s = flush_interval_s
        self.max_buffered = max_buffered
        self.max_bytes = max_bytes
        self.retention_s = retention_s
        self.on_drop = on_drop
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self.written = 0
        self.last_error: str | None = None
        self._buffer: deque[tuple[Any, ...]] = deque()
        self._stop = threading.Event()
        # Set by record() when a quarter of the buffer is queued: the writer starts at
        # once instead of at the next interval, so big batches do not fill the buffer.
        self._wake = threading.Event()
        self._wake_rows = max(1, max_buffered // 4)
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()
        # service -> (day, path) of the file this process appends to
        self._current: dict[str, tuple[str, Path]] = {}
        self._last_retention = 0.0
        self._keys: dict[tuple[str, ...], list[str]] = {}  # '"name":' per feature order
        # One writer each (request path / writer thread), so no lock and no lost update.
        self._rows_in = 0
        self._rows_out = 0
        # room_for() waiters: (their event loop, a future the writer resolves)
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._waiters_lock = threading.Lock()

    # ----- request path ------------------------------------------------------
    def record(
        self,
        request_id: str | None,
        service: str,
        version: int | None,
        features: Sequence[str],
        rows: Sequence[Sequence[float | None]],
        predictions: Sequence[float] | None,
        latency_ms: float,
        status: int = 200,
    ) -> None:
        """Queue the rows of one request; ``None`` (or NaN) marks an input not given.

        ``rows`` may be a numpy matrix (the fast batch path's): it is turned into
        lists in the writer thread, not here.

        Only a tuple is appended here: building and encoding the JSON happens
        in the writer thread, off the request path. ``predictions=None`` logs a
        failed request (its rows get ``prediction: null``).
        """
        if self._rows_in - self._rows_out + len(rows) > self.max_buffered:
            self._drop("buffer_full", len(rows))
            return
        self._rows_in += len(rows)
        if self._rows_in - self._rows_out >= self._wake_rows:
            self._wake.set()
        self._buffer.append(
            (
                time.time(),
                request_id,
                service,
                version,
                features,
                rows,
                predictions,
                latency_ms,
                status,
            )
        )

    async def room_for(self, rows: int, timeout_s: float = 10.0) -> bool:
        """Wait, without blocking the event loop, until ``rows`` more rows fit in the buffer.

        Why: under a sustained load of big batches the writer can fall behind the
        requests (it shares the CPU with them); a batch route awaits this before
        :meth:`record` so that its rows are logged rather than dropped, which slows
        the requests to the pace of the log. The writer thread wakes the waiters
        each time it takes rows off the buffer (no polling). A log that does not
        catch up within ``timeout_s`` (a stalled disk) is not waited for:
        :meth:`record` then drops and counts as before. Returns whether the rows fit.
        """

        def fits() -> bool:
            return self._rows_in - self._rows_out + rows <= self.max_buffered

        if fits() or self._thread is None or rows > self.max_buffered:
            return fits()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not fits():
            taken: asyncio.Future[None] = loop.create_future()
            with self._waiters_lock:
                self._waiters.append((loop, taken))
            self._wake.set()
            if fits():  # the writer took rows between the check and the registration
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(taken, remaining)
            except TimeoutError:
                with self._waiters_lock:  # a stalled writer must not collect dead waiters
                    self._waiters = [w for w in self._waiters if w[1] is not taken]
                return fits()
        return True

    def _wake_waiters(self) -> None:
        """Tell every :meth:`room_for` waiter that rows left the buffer (writer thread)."""
        with self._waiters_lock:
            waiters, self._waiters = self._waiters, []
        for loop, taken in waiters:
            loop.call_soon_threadsafe(_resolve, taken)

    def _drop(self, reason: str, count: int) -> None:
        self.dropped[reason] += count
        if self.on_drop is not None:
            self.on_drop(reason, count)

    @property
    def buffered(self) -> int:
        """Rows waiting for the writer."""
        return self._rows_in - self._rows_out

    def stats(self) -> dict[str, Any]:
        """What ``/readyz`` shows for this worker."""
        return {
            "written": self.written,
            "buffered": self.buffered,
            "dropped": dict(self.dropped),
            "last_error": self.last_error,
        }

    # ----- background writer -------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._wake.clear()
            self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the writer and write everything still queued (a clean shutdown loses nothing)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            if self._stop.is_set():
                break  # stop() writes the rest
            try:
                self.flush()
            except Exception:  # never let the writer die: the next flush may succeed
                log.exception("prediction log flush failed")

    def flush(self) -> int:
        """Write everything buffered so far; returns the number of records written."""
        with self._write_lock:
            written_before = self.written
            by_service: dict[str, list[Buffer]] = {}
            counts: dict[str, int] = {}
            second, base = -1, ""
            while self._buffer:
                t, rid, service, version, features, rows, predictions, latency_ms, status = (
                    self._buffer.popleft()
                )
                whole = int(t)
                if whole != second:  # one isoformat per second, not per record
                    second, base = whole, iso_utc(whole)[:19]
                stamp = f"{base}.{int((t - whole) * 1e6):06d}+00:00"
                names = features if isinstance(features, tuple) else tuple(features)
                keys = self._keys.get(names)
                if keys is None:
                    keys = self._keys[names] = [json.dumps(n) + ":" for n in names]
                head = f'{{"request_id":{json.dumps(rid)},"index":'
                tail = (
                    f',"ts":"{stamp}","service":{json.dumps(service)},'
                    f'"version":{_num(version)},"features":{{'
                )
                end = f',"latency_ms":{_num(latency_ms)},"status":{int(status)}}}'
                self._rows_out += len(rows)
                if self._waiters:
                    self._wake_waiters()
                try:
                    chunk = _encode(head, tail, keys, rows, predictions, end)
                except (ValueError, TypeError, IndexError) as exc:  # a caller's bug: count it
                    self.last_error = f"unencodable record: {exc}"
                    self._drop("write_error", len(rows))
                    continue
                by_service.setdefault(service, []).append(chunk)
                counts[service] = counts.get(service, 0) + len(rows)
                if len(chunk) >= _WRITE_NOW_BYTES:  # a big batch: write it, do not hold it
                    self._append(service, _today(), by_service.pop(service), counts.pop(service))
            day = _today()
            for service, chunks in by_service.items():
                self._append(service, day, chunks, counts[service])
            self._apply_retention()
            return self.written - written_before

    def _append(self, service: str, day: str, chunks: list[Buffer], count: int) -> None:
        """Append ``count`` records (newline-terminated, in ``chunks``) to today's file."""
        incoming = sum(len(chunk) for chunk in chunks)
        size_before: int | None = None
        path: Path | None = None
        try:
            path = self._file_for(service, day, incoming)
            with path.open("ab") as fh:
                size_before = fh.tell()
                fh.writelines(chunks)
                fh.flush()
        except OSError as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("prediction log: %d records lost: %s", count, self.last_error)
            self._drop("write_error", count)
            self._current.pop(service, None)
            if path is not None and size_before is not None:
                with contextlib.suppress(OSError):  # roll back a partial write
                    os.truncate(path, size_before)
            return
        self.written += count
        self.last_error = None

    def _file_for(self, service: str, day: str, incoming: int) -> Path:
        """The file to append to: today's, rotated when it would pass ``max_bytes``."""
        current = self._current.get(service)
        if current is not None and current[0] == day:
            path = current[1]
            try:
                size = path.stat().st_size
            except FileNotFoundError:  # deleted under us: start again
                size = 0
            if size == 0 or size + incoming <= self.max_bytes:
                return path
        folder = self.root / service
        folder.mkdir(parents=True, exist_ok=True)
        prefix = f"{day}-{os.getpid()}-"
        seqs = [int(p.stem.rsplit("-", 1)[1]) for p in folder.glob(f"{prefix}*.jsonl")]
        seq = max(seqs, default=-1) + 1
        path = folder / f"{prefix}{seq:04d}.jsonl"
        self._current[service] = (day, path)
        return path

    def _apply_retention(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if self.retention_s is None or now - self._last_retention < _RETENTION_CHECK_S:
            return
        self._last_retention = now
        delete_older_than(self.root, now - self.retention_s)


def _resolve(taken: asyncio.Future[None]) -> None:
    if not taken.done():  # a waiter that timed out has cancelled its future
        taken.set_result(None)


def _today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def delete_older_than(root: Path, cutoff: float) -> list[Path]:
    """Delete log files last written before ``cutoff`` (UNIX time); returns them."""
    removed = []
    for path in Path(root).glob("*/*.jsonl"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # another worker removed it first
            continue
    return removed


def _encode(head: str, tail: str, keys: list[str], rows: Any, predictions: Any, end: str) -> Buffer:
    """The newline-terminated records of one queued request.

    A numpy matrix (the fast batch path's) goes through the compiled assembler
    (:mod:`terraops.adapters.log_lines`, imported on first use: numba); rows as
    lists (point requests, the documented path) are encoded value by value.
    """
    if hasattr(rows, "tolist"):
        # numba: imported by a server's first batch, never by a CLI that reads the log
        from terraops.adapters.log_lines import matrix_bytes

        return matrix_bytes(head, tail, keys, rows, predictions, end)
    encoded = [
        f"{head}{i}{tail}"
        + ",".join([k + ("null" if v is None else _num(v)) for k, v in zip(keys, row, strict=True)])
        + f'}},"prediction":{_num(None if predictions is None else predictions[i])}'
        + end
        for i, row in enumerate(rows)
    ]
    return ("\n".join(encoded) + "\n").encode("utf-8") if encoded else b""


def _num(value: Any) -> str:
    """A number as JSON; ``None`` and NaN (an input not given) become ``null``.

    Hand-encoded because ``json.dumps`` of a record dict costs ~3× more, in the
    writer thread that shares the GIL with the requests.
    """
    if value is None or value != value:
        return "null"
    if type(value) is float:  # the common case: pydantic and tolist() give floats
        return repr(value) if math.isfinite(value) else "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    number = float(value)  # numpy scalars and the like
    return float.__repr__(number) if math.isfinite(number) else "null"


# ----- reading -----------------------------------------------------------------------


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _upgrade(record: dict[str, Any]) -> dict[str, Any]:
    """Records written before request ids existed (``t``/``inputs``) in today's shape."""
    if "t" in record and "ts" not in record:
        return {
            "request_id": None,
            "index": 0,
            "ts": iso_utc(record["t"]),
            "service": record.get("service"),
            "version": record.get("version"),
            "features": record.get("inputs", {}),
            "prediction": record.get("prediction"),
            "latency_ms": record.get("latency_ms"),
            "status": 200,
        }
    return record


def log_files(root: Path, service: str) -> list[Path]:
    """A service's log files, oldest first by name (day, then process)."""
    return sorted((Path(root) / service).glob("*.jsonl"))


def read_predictions(
    root: Path, service: str, since: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """Every logged record of a service (at or after ``since``), file by file.

    Records come grouped by file (day, then process), so they are in time order
    within one worker's file, not across workers. A truncated last line (the
    process died mid-write) is skipped; an unreadable line inside a file
    (should never happen) is skipped with a warning instead of failing the read.
    ``since`` without a timezone is taken as UTC.
    """
    floor = iso_utc(_as_utc(since).timestamp()) if since is not None else None
    floor_t = _as_utc(since).timestamp() if since is not None else None
    for path in log_files(root, service):
        try:
            if floor_t is not None and path.stat().st_mtime < floor_t:
                continue  # last written before the window: nothing in it is newer
            data = path.read_bytes()
        except FileNotFoundError:  # deleted by retention while we read
            continue
        lines = data.split(b"\n")
        complete = lines[:-1]  # after the last "\n": empty, or a line cut by a crash
        if lines[-1].strip():
            log.info("%s: skipping a truncated last line (%d bytes)", path, len(lines[-1]))
        for number, line in enumerate(complete, start=1):
            if not line.strip():
                continue
            try:
                record = _upgrade(json.loads(line))
            except ValueError:
                log.warning("%s:%d: skipping an unreadable record", path, number)
                continue
            if floor is not None and record["ts"] < floor:
                continue
            yield record


def find_prediction(
    root: Path, service: str, request_id: str, index: int = 0
) -> dict[str, Any] | None:
    """The latest logged record of ``request_id`` (row ``index``), or ``None``.

    Feedback joins truth to predictions with this. It scans raw bytes for the
    record's exact opening (``{"request_id":"…","index":i,``: the writer's own
    encoding, and request ids are restricted to characters JSON never escapes),
    newest file first, so a lookup costs a memory search of the log files, not
    a JSON parse of every record.
    """
    needle = json.dumps({"request_id": request_id, "index": index}, separators=(",", ":"))
    pattern = needle[:-1].encode("utf-8") + b","
    files = log_files(root, service)
    files.sort(key=_mtime, reverse=True)
    for path in files:
        try:
            with path.open("rb") as fh:
                if os.fstat(fh.fileno()).st_size == 0:
                    continue
                with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
                    at = data.rfind(pattern)
                    while at > 0 and data[at - 1 : at] != b"\n":  # must open a line
                        at = data.rfind(pattern, 0, at)
                    if at < 0:
                        continue
                    end = data.find(b"\n", at)
                    if end < 0:
                        continue  # the truncated last line of a crash
                    return _upgrade(json.loads(data[at:end]))
        except (FileNotFoundError, ValueError):
            continue
    return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
