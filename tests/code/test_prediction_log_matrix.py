"""A batch logged as a numpy matrix reads back as the same rows logged as lists.

The fast batch path hands the prediction log its matrix; the writer encodes it a
column at a time. What a reader gets must not depend on which path logged it:
values, NaN as ``null``, a failed request's ``prediction: null``.
"""

from __future__ import annotations

import json
import math
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
