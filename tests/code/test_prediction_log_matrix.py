"""A batch logged as a numpy matrix reads back as the same rows logged as lists.

The fast batch path hands the prediction log its matrix; the writer encodes it a
column at a time. What a reader gets must not depend on which path logged it:
values, NaN as ``null``, a failed request's ``prediction: null``.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from terraops.adapters.prediction_log import PredictionLog

NAMES = ("ndvi", "albedo", "tree%cover")


def records(root: Path) -> list[dict]:
    lines = [line for f in sorted(root.rglob("*.jsonl")) for line in f.read_text().splitlines()]
    return [json.loads(line) for line in lines]


def comparable(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("request_id", "ts")}


@settings(max_examples=30, deadline=None)
@given(
    matrix=arrays(
        np.float64,
        st.tuples(st.integers(1, 6), st.just(len(NAMES))),
        elements=st.one_of(st.floats(-1e6, 1e6), st.just(math.nan)),
    ),
    failed=st.booleans(),
)
def test_matrix_and_list_rows_log_alike(
    tmp_path_factory: pytest.TempPathFactory, matrix: np.ndarray, failed: bool
) -> None:
    root = tmp_path_factory.mktemp("log")
    log = PredictionLog(root)
    predictions = None if failed else np.nansum(matrix, axis=1).tolist()
    status = 500 if failed else 200
    log.record("as-matrix", "uhi", 3, NAMES, matrix, predictions, 1.5, status)  # type: ignore[arg-type]
    rows = [[None if math.isnan(v) else v for v in row] for row in matrix.tolist()]
    log.record("as-lists", "uhi", 3, NAMES, rows, predictions, 1.5, status)
    log.flush()
    got = records(root)
    fast = [comparable(r) for r in got if r["request_id"] == "as-matrix"]
    slow = [comparable(r) for r in got if r["request_id"] == "as-lists"]
    assert fast == slow and len(fast) == len(matrix)
    assert log.dropped == {"buffer_full": 0, "write_error": 0}


def lines_by_request(root: Path) -> dict[str, list[bytes]]:
    """Raw lines per request id, the id itself blanked (the rest must match byte for byte)."""
    out: dict[str, list[bytes]] = {}
    for f in sorted(root.rglob("*.jsonl")):
        for line in f.read_bytes().splitlines():
            rid = json.loads(line)["request_id"]
            out.setdefault(rid, []).append(line.replace(rid.encode(), b"ID"))
    return out


def test_a_big_matrix_logs_the_values_of_list_rows(tmp_path: Path) -> None:
    """Every line parses to the list path's record (numbers may be spelled differently:
    ``1e22`` vs ``1e+22``). Specials included: NaN and ±inf (null), -0.0, huge and tiny
    values, a quote, a ``%`` and non-ASCII letters in names."""
    rng = np.random.default_rng(1)
    matrix = rng.uniform(-1e3, 1e3, size=(2_000, 4))
    matrix[::7, 1] = np.nan
    matrix[3, 0], matrix[4, 0], matrix[5, 0] = np.inf, -np.inf, -0.0
    matrix[6, 2], matrix[7, 2], matrix[8, 3] = 1e22, 5e-324, 123456789.0
    names = ("ndvi", 'a"quote', "tree%cover", "ünïcode")
    predictions = matrix.sum(axis=1)
    predictions[9] = np.nan
    log = PredictionLog(tmp_path)
    log.record("req-matrix", "uhi", 3, names, matrix, predictions, 2.5)
    rows = [[None if math.isnan(v) else v for v in row] for row in matrix.tolist()]
    log.record("req-lists", "uhi", 3, names, rows, predictions.tolist(), 2.5)
    assert log.flush() == 2 * len(matrix)
    by_request = lines_by_request(tmp_path)
    assert len(by_request["req-matrix"]) == len(matrix)
    for fast, slow in zip(by_request["req-matrix"], by_request["req-lists"], strict=True):
        # the timestamps differ by the time between the two record() calls
        assert comparable(json.loads(fast)) == comparable(json.loads(slow))
        assert fast.split(b'"ts":')[0] == slow.split(b'"ts":')[0]  # the line's opening


def test_a_clean_shutdown_writes_every_queued_batch(tmp_path: Path) -> None:
    """The writer thread may be asleep when the server stops: ``stop`` writes the rest,
    in order (batches of ~20 MB of lines each: each written as soon as it is encoded)."""
    log = PredictionLog(tmp_path, flush_interval_s=3600.0, max_buffered=10_000_000)
    log.start()
    matrix = np.random.default_rng(2).uniform(0.0, 1.0, size=(80_000, 3))
    for request in range(4):
        log.record(f"r{request}", "uhi", 1, NAMES, matrix, matrix.sum(axis=1), 1.0)
    assert log.buffered == 320_000
    log.stop()
    assert log.buffered == 0 and log.written == 320_000
    by_request = lines_by_request(tmp_path)
    assert list(by_request) == [f"r{request}" for request in range(4)]  # in order
    counts = {rid: len(lines) for rid, lines in by_request.items()}
    assert counts == {f"r{request}": 80_000 for request in range(4)}


def test_a_big_backlog_wakes_the_writer_before_its_interval(tmp_path: Path) -> None:
    """A quarter of the buffer queued starts the writer at once (not an hour later)."""
    log = PredictionLog(tmp_path, flush_interval_s=3600.0, max_buffered=400)
    log.start()
    try:
        matrix = np.ones((100, 3))
        log.record("big", "uhi", 1, NAMES, matrix, matrix.sum(axis=1), 1.0)
        deadline = time.monotonic() + 10
        while log.written < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert log.written == 100 and log.buffered == 0
    finally:
        log.stop()
    assert log.dropped == {"buffer_full": 0, "write_error": 0}


def test_a_batch_waits_for_room_instead_of_being_dropped(tmp_path: Path) -> None:
    """``room_for`` wakes the writer and returns once the rows fit; nothing is dropped."""
    log = PredictionLog(tmp_path, flush_interval_s=3600.0, max_buffered=1_000)
    log.start()
    try:
        matrix = np.ones((600, 3))
        log.record("first", "uhi", 1, NAMES, matrix, matrix.sum(axis=1), 1.0)
        assert asyncio.run(log.room_for(600, timeout_s=30.0))
        log.record("second", "uhi", 1, NAMES, matrix, matrix.sum(axis=1), 1.0)
    finally:
        log.stop()
    assert log.written == 1_200 and log.dropped == {"buffer_full": 0, "write_error": 0}


def test_room_is_not_awaited_from_a_stopped_writer_or_past_the_buffer(tmp_path: Path) -> None:
    """No writer (or more rows than the buffer holds): answer at once, record() drops."""
    log = PredictionLog(tmp_path, max_buffered=100)
    log.record("full", "uhi", 1, NAMES, np.ones((100, 3)), [1.0] * 100, 1.0)
    assert asyncio.run(log.room_for(10, timeout_s=30.0)) is False
    assert asyncio.run(log.room_for(0)) is True
    log.start()
    try:
        assert asyncio.run(log.room_for(101, timeout_s=30.0)) is False
    finally:
        log.stop()


def test_a_stalled_writer_times_the_wait_out_and_keeps_no_waiter(tmp_path: Path) -> None:
    """The writer cannot take rows (held mid-write): the wait ends at its timeout, returns
    False, and leaves nothing behind for the writer to wake later."""
    log = PredictionLog(tmp_path, flush_interval_s=3600.0, max_buffered=100)
    log.start()
    try:
        log.record("full", "uhi", 1, NAMES, np.ones((100, 3)), [1.0] * 100, 1.0)
        with log._write_lock:  # the writer blocks here, as on a stalled disk
            started = time.monotonic()
            assert asyncio.run(log.room_for(10, timeout_s=0.3)) is False
            assert 0.3 <= time.monotonic() - started < 5.0
            assert log._waiters == []
    finally:
        log.stop()
    assert log.written == 100
