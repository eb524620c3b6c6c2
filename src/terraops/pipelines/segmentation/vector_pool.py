"""Worker processes for vectorising label strips on every core.

Polygonising and coverage simplification are GEOS and GDAL calls driven from
Python; the GIL keeps threads from running them side by side, so strips go to
worker *processes*. One pool per process, created on first use and reused by
every later request or scene (starting workers costs about a second: their
imports), shut down at exit. The ``spawn`` start method is used because the
caller may already run threads (ONNX Runtime, the web server), which ``fork``
would copy in an unusable state.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
from concurrent.futures import Executor, ProcessPoolExecutor

import numpy as np

from terraops.domain.segmentation import vectorise
from terraops.domain.segmentation.geojson_coords import polygon_coordinates_text

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_pool_workers = 0


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, else the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _warm() -> str:
    """Run once in each new worker: unpickling this function imports this module and,
    with it, the vectoriser; the compiled GeoJSON writer is loaded (or compiled) by a
    tiny call — so that the first strip does not pay for either."""
    polygon_coordinates_text(np.ones((4, 2)), np.array([4]), np.array([1]), np.array([1]), [0], 7)
    return vectorise.__name__


def vector_pool(workers: int | None = None) -> Executor | None:
    """The shared pool of ``workers`` processes (default: one per core); None for one
    worker or fewer, which means vectorising in the calling thread."""
    global _pool, _pool_workers
    n = available_cores() if workers is None else workers
    if n <= 1:
        return None
    with _lock:
        if _pool is None or _pool_workers != n:
            if _pool is not None:
                _pool.shutdown(wait=False, cancel_futures=True)
            context = multiprocessing.get_context("spawn")
            _pool, _pool_workers = ProcessPoolExecutor(n, mp_context=context), n
            for _ in range(n):
                _pool.submit(_warm)
        return _pool


def _shutdown() -> None:
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)


atexit.register(_shutdown)

__all__ = ["available_cores", "vector_pool"]
