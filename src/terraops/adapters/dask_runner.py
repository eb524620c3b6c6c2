"""Run the segmentation model on a Dask cluster while the driver reads, blends and writes.

``terraops segment predict --dask ADDRESS|local`` keeps everything that touches
the image and the outputs in the driver (windowed reads, the blend
accumulator, the row-band writes and the vectoriser), so the output is the
same as in-process and memory stays bounded; the workers only turn chip
batches into class probabilities:

- :func:`connect` gives a :class:`DaskRunner` on a running scheduler
  (``tcp://host:port``) or on a fresh :class:`~distributed.LocalCluster`
  (``local``: two worker processes, one thread each, no dashboard), and
  closes what it started on exit;
- :meth:`DaskRunner.map_batches` submits batches with ``client.submit``,
  keeps at most ``max_in_flight`` of them in flight (2 × worker threads by
  default) and yields their results in submission order;
- :func:`predict_on_worker` runs on a worker: the :class:`Segmenter` is
  loaded once per worker process (an LRU keyed by the bundle path, engine,
  device and threads) and reused for every batch.

The bundle travels as a *path*: on one machine (``local`` or workers on
loopback) every process reads the same folder. A multi-host cluster needs the
bundle folder on shared storage at the same path (or the workers fetching it
from the registry by version) — chips and probabilities are the only data
sent over the wire.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from terraops.errors import InvalidInputError, RegistryUnavailableError

if TYPE_CHECKING:
    from terraops.adapters.segmentation_bundle import Segmenter

CONNECT_TIMEOUT_S = 10.0
"""How long to wait for the scheduler (and for its first worker)."""
LOCAL_WORKERS = 2
IN_PROCESS = frozenset({"none", "off", ""})
"""``--dask`` values that mean: no cluster, run the model in-process."""


class DaskUnavailableError(RegistryUnavailableError):
    """The Dask scheduler cannot be reached, or it has no workers (exit code 5)."""


class DaskRunner:
    """A connected :class:`distributed.Client` (and the cluster it started, if any)."""

    def __init__(self, client: Any, cluster: Any | None, address: str) -> None:
        self.client = client
        self.cluster = cluster
        self.address = address

    @property
    def n_threads(self) -> int:
        """Worker threads in the cluster now (at least 1)."""
        workers = self.client.scheduler_info().get("workers", {})
        return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))

    @property
    def n_workers(self) -> int:
        return len(self.client.scheduler_info().get("workers", {}))

    def map_batches(
        self,
        fn: Callable[[Any], Any],
        batches: Iterable[Any],
        max_in_flight: int | None = None,
    ) -> Iterator[Any]:
        """``fn(batch)`` for each batch on the workers, yielded in submission order.

        At most ``max_in_flight`` batches (default 2 × worker threads) are
        submitted and not yet yielded, so the driver never holds more than that
        many inputs and results. ``batches`` is consumed lazily. A worker's
        exception is raised here; closing the iterator early cancels what is
        still in flight.
        """
        limit = max(1, max_in_flight or 2 * self.n_threads)
        pending: deque[Any] = deque()
        source = iter(batches)
        try:
            exhausted = False
            while True:
                while not exhausted and len(pending) < limit:
                    try:
                        batch = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    pending.append(self.client.submit(fn, batch, pure=False))
                if not pending:
                    return
                future = pending.popleft()
                result = future.result()
                future.release()
                yield result
        finally:
            if pending:
                self.client.cancel(list(pending))

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def __enter__(self) -> DaskRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wants_cluster(address: str) -> bool:
    """Whether ``address`` asks for a cluster (not 'none'/'off'/empty)."""
    return address.strip().lower() not in IN_PROCESS


def connect(address: str, *, timeout_s: float = CONNECT_TIMEOUT_S) -> DaskRunner:
    """A runner on ``address`` (``tcp://host:port``) or on a new LocalCluster (``local``).

    Raises :class:`DaskUnavailableError` when the scheduler does not answer
    within ``timeout_s`` or has no worker by then.
    """
    from distributed import Client, LocalCluster

    address = address.strip()
    if address.lower() == "local":
        cluster = LocalCluster(
            n_workers=LOCAL_WORKERS,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            # no dashboard; the scheduler's small HTTP server (health) on any free port
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.ERROR,
        )
        try:
            return DaskRunner(Client(cluster, timeout=timeout_s), cluster, "local")
        except BaseException:
            cluster.close()
            raise
    if "://" not in address and ":" not in address:
        raise InvalidInputError(
            f"not a Dask scheduler address: {address!r}",
            hint="use --dask tcp://HOST:PORT, or --dask local for a local cluster",
        )
    hint = (
        f"is a scheduler running at {address}? (dask scheduler --port PORT, then "
        "dask worker tcp://HOST:PORT); or use --dask local, or drop --dask to run in-process"
    )
    try:
        client = Client(address, timeout=timeout_s, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise DaskUnavailableError(
            f"cannot reach the Dask scheduler at {address} within {timeout_s:g} s ({exc})",
            hint=hint,
        ) from None
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except (OSError, TimeoutError) as exc:
        client.close()
        raise DaskUnavailableError(
            f"the Dask scheduler at {address} has no worker after {timeout_s:g} s ({exc})",
            hint=hint,
        ) from None
    return DaskRunner(client, None, address)


def local_model_threads(runner: DaskRunner) -> int | None:
    """ONNX Runtime threads per worker model: the CPUs shared out on a LocalCluster.

    A remote cluster's workers use their own default (every CPU they may use):
    size them with ``dask worker --nworkers/--nthreads``.
    """
    if runner.cluster is None:
        return None
    from terraops.adapters.segmentation_bundle import default_threads

    return max(1, default_threads() // max(1, runner.n_workers))


# ----------------------------------------------------------------- on the workers
@lru_cache(maxsize=4)
def _segmenter_for(path: str, engine: str, device: str, threads: int | None) -> Segmenter:
    """The worker process's Segmenter for a bundle folder: loaded once, then reused."""
    from terraops.adapters.segmentation_bundle import Segmenter

    return Segmenter(Path(path), engine=engine, device=device, threads=threads)  # type: ignore[arg-type]


def predict_on_worker(
    path: str, engine: str, device: str, threads: int | None, chips: np.ndarray
) -> np.ndarray:
    """float32 (N, bands, tile, tile) → (N, classes, tile, tile), on a worker."""
    return _segmenter_for(path, engine, device, threads).predict_proba(chips)


def batch_predictor(
    runner: DaskRunner, segmenter: Segmenter, max_in_flight: int | None = None
) -> Callable[[Iterable[np.ndarray]], Iterator[np.ndarray]]:
    """Chip batches → probabilities on the cluster, in order: the loop's ``predict_batches``."""
    fn = partial(
        predict_on_worker,
        str(Path(segmenter.bundle_dir).resolve()),
        segmenter.engine,
        segmenter.device,
        local_model_threads(runner),
    )
    return lambda batches: runner.map_batches(fn, batches, max_in_flight)


__all__ = [
    "DaskRunner",
    "DaskUnavailableError",
    "batch_predictor",
    "connect",
    "predict_on_worker",
    "wants_cluster",
]
