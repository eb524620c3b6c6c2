"""Prediction log: what every served prediction was asked and answered.

It is the hook monitoring builds on (drift against the training reference,
SLO checks from live latency, audits of which version answered what), and it is
generic over services: a record is the service, the model version, the inputs
in the service's feature order, the prediction and the handler's latency.

The request path only appends to an in-memory buffer (a few µs); a background
thread writes batches as JSON lines, one file per process and day under
``<home>/predictions/<service>/`` — so worker processes never contend for a
file and a crash loses at most one flush interval. When the buffer is full
(disk stalled), new records are dropped and counted rather than slowing
requests down.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class PredictionLog:
    """Buffered, per-process JSON-lines log of predictions."""

    def __init__(
        self, root: Path, *, flush_interval_s: float = 1.0, max_buffered: int = 200_000
    ) -> None:
        self.root = Path(root)
        self.flush_interval_s = flush_interval_s
        self.max_buffered = max_buffered
        self.dropped = 0
        self._buffer: deque[tuple[Any, ...]] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()

    # ----- request path ------------------------------------------------------
    def record(
        self,
        service: str,
        version: int,
        features: Sequence[str],
        rows: Sequence[Sequence[float | None]],
        predictions: Sequence[float],
        latency_ms: float,
    ) -> None:
        """Queue one record per row; ``None`` (or NaN) marks an input not given.

        Only a tuple is appended here: building and encoding the JSON happens
        in the writer thread, off the request path.
        """
        if len(self._buffer) + len(rows) > self.max_buffered:
            self.dropped += len(rows)
            return
        now = time.time()
        for row, prediction in zip(rows, predictions, strict=True):
            self._buffer.append((now, service, version, features, row, prediction, latency_ms))

    # ----- background writer -------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            try:
                self.flush()
            except OSError as exc:  # a full disk must not kill the server
                log.warning("prediction log flush failed: %s", exc)

    def flush(self) -> int:
        """Write everything buffered so far; returns the number of records written."""
        with self._write_lock:
            by_file: dict[Path, list[str]] = {}
            count = 0
            while self._buffer:
                t, service, version, features, row, prediction, latency_ms = self._buffer.popleft()
                day = datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d")
                path = self.root / service / f"{day}-{os.getpid()}.jsonl"
                inputs = {name: _null_if_nan(v) for name, v in zip(features, row, strict=True)}
                record = {
                    "t": t,
                    "service": service,
                    "version": version,
                    "inputs": inputs,
                    "prediction": prediction,
                    "latency_ms": latency_ms,
                }
                by_file.setdefault(path, []).append(json.dumps(record))
                count += 1
            for path, lines in by_file.items():
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a", encoding="utf-8") as fh:
                    fh.write("\n".join(lines) + "\n")
            return count


def _null_if_nan(value: Any) -> Any:
    """NaN (an input not given) is not JSON: write null."""
    return None if isinstance(value, float) and math.isnan(value) else value


def read_predictions(root: Path, service: str) -> Iterator[dict[str, Any]]:
    """Every logged record of a service, file by file (monitoring reads these)."""
    for path in sorted((Path(root) / service).glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)
