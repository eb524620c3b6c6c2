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

The same runner carries the tabular work (:mod:`terraops.pipelines.scenes.distributed`):
scene cell tables built as one task per scene, and predict-raster's cell
blocks scored by a LightGBM predictor that :func:`predict_cells_on_worker`
loads once per worker process (an LRU keyed by the model folder, version and
run id). :func:`cluster_for` opens a runner only when an address asks for one.

Models travel as *paths*: on one machine (``local`` or workers on loopback)
every process reads the same folder. A multi-host cluster needs the model
folder (and the scene folders) on shared storage at the same path — chips,
cell blocks and predictions are the only data sent over the wire.

A worker that dies mid-task costs nothing but time: the scheduler runs its
tasks again elsewhere (every task here is a pure function of its inputs, or
writes its file atomically). When a task has killed too many workers
(``distributed.scheduler.allowed-failures``) or the scheduler goes away,
:meth:`DaskRunner.map_batches` raises :class:`DaskUnavailableError` (exit 5).
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np

from terraops.adapters.model_bundle import Predictor, load_predictor
from terraops.adapters.segmentation_bundle import Segmenter, default_threads
from terraops.errors import InvalidInputError, RegistryUnavailableError

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

    def info(self) -> dict[str, Any]:
        """What a result reports about the cluster it ran on."""
        return {"scheduler": self.address, "workers": self.n_workers}

    def map_batches(
        self,
        fn: Callable[[Any], Any],
        batches: Iterable[Any],
        max_in_flight: int | None = None,
        *,
        name: str | None = None,
    ) -> Iterator[Any]:
        """``fn(batch)`` for each batch on the workers, yielded in submission order.

        At most ``max_in_flight`` batches (default 2 × worker threads) are
        submitted and not yet yielded, so the driver never holds more than that
        many inputs and results. ``batches`` is consumed lazily. A worker's
        exception is raised here; closing the iterator early cancels what is
        still in flight. ``name`` prefixes the task keys (what the scheduler's
        logs and dashboard show). A lost scheduler, or a task that killed too
        many workers, is a :class:`DaskUnavailableError`.
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
                    key = f"{name}-{uuid.uuid4().hex}" if name else None
                    pending.append(self.client.submit(fn, batch, pure=False, key=key))
                if not pending:
                    return
                future = pending.popleft()
                result = self._result(future)
                future.release()
                yield result
        finally:
            if pending:
                self.client.cancel(list(pending))

    def _result(self, future: Any) -> Any:
        """The task's result; the cluster failing under it becomes DaskUnavailableError."""
        from distributed import CancelledError, KilledWorker
        from distributed.comm import CommClosedError

        try:
            return future.result()
        except KilledWorker as exc:
            raise DaskUnavailableError(
                f"Dask task {future.key} failed on every worker it was given ({exc})",
                hint="the workers die while running it: check their logs and memory "
                "(dask worker --memory-limit), or drop the Dask setting to run in-process",
            ) from None
        except (CancelledError, CommClosedError) as exc:
            raise DaskUnavailableError(
                f"lost the Dask scheduler at {self.address} during task {future.key} ({exc})",
                hint="restart the scheduler and its workers, then run the command again",
            ) from None

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


@contextmanager
def cluster_for(address: str | None) -> Iterator[DaskRunner | None]:
    """A connected runner while the block runs when ``address`` asks for one, else None."""
    if address is None or not wants_cluster(address):
        yield None
        return
    with connect(address) as runner:
        yield runner


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
    return max(1, default_threads() // max(1, runner.n_workers))


# ----------------------------------------------------------------- on the workers
@lru_cache(maxsize=4)
def _segmenter_for(path: str, engine: str, device: str, threads: int | None) -> Segmenter:
    """The worker process's Segmenter for a bundle folder: loaded once, then reused."""
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


@lru_cache(maxsize=4)
def _predictor_for(path: str, version: int, run_id: str) -> Predictor:
    """The worker process's LightGBM predictor of a registered version: loaded once.

    ``version`` and ``run_id`` are part of the key so a model cache folder reused
    for another model can never serve a stale booster.
    """
    return load_predictor(Path(path))


def predict_cells_on_worker(path: str, version: int, run_id: str, X: np.ndarray) -> np.ndarray:
    """float64 (rows, features) → one prediction per row, on a worker."""
    return _predictor_for(path, version, run_id).predict(X)


def cell_predictor(
    runner: DaskRunner,
    predictor: Predictor,
    version: int,
    run_id: str,
    max_in_flight: int | None = None,
) -> Callable[[Iterable[np.ndarray]], Iterator[np.ndarray]]:
    """Cell blocks → predictions on the cluster, in order (the driver's predictor's model)."""
    fn = partial(predict_cells_on_worker, str(Path(predictor.path).resolve()), version, run_id)
    return lambda blocks: runner.map_batches(fn, blocks, max_in_flight, name="predict-cells")


__all__ = [
    "DaskRunner",
    "DaskUnavailableError",
    "batch_predictor",
    "cell_predictor",
    "cluster_for",
    "connect",
    "predict_cells_on_worker",
    "predict_on_worker",
    "wants_cluster",
]
