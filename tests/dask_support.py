"""A real Dask cluster on loopback for the tests: ``dask scheduler`` + ``dask worker`` processes.

Used by the segmentation (``segment predict --dask``) and the scene/raster
(``TERRAOPS_DASK_SCHEDULER``) cluster tests. Every process is the installed
``dask`` command in its own session (so a test can kill one worker process
from outside); each worker runs under a nanny, which restarts its worker
process when it dies — what a real deployment does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving_support import free_port

DASK = str(Path(sys.executable).parent / "dask")


@dataclass
class DaskCluster:
    """Address of a running scheduler, and the processes the test started."""

    address: str
    processes: list[subprocess.Popen[bytes]]

    def client(self, timeout: float = 30) -> Any:
        """A new :class:`distributed.Client` on the scheduler (close it: ``with``)."""
        from distributed import Client

        return Client(self.address, timeout=timeout, set_as_default=False)

    def worker_pids(self) -> dict[str, int]:
        """Worker address → pid of the worker process (the nanny's child) now."""
        with self.client() as client:
            return dict(client.run(os.getpid))


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@contextmanager
def dask_cluster(logs: Path, n_workers: int = 2) -> Iterator[DaskCluster]:
    """A scheduler and ``n_workers`` single-threaded workers, stopped on exit.

    Their output goes to ``logs/<i>.log``; the block starts once every worker
    has joined.
    """
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    commands = [
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        *[
            [DASK, "worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard"]
            for _ in range(n_workers)
        ],
    ]
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    processes: list[subprocess.Popen[bytes]] = []
    logs.mkdir(parents=True, exist_ok=True)
    try:
        for i, args in enumerate(commands):
            with (logs / f"{i}.log").open("wb") as log:
                processes.append(
                    subprocess.Popen(
                        args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                    )
                )
        cluster = DaskCluster(address, processes)
        with cluster.client() as client:
            client.wait_for_workers(n_workers, timeout=60)
        yield cluster
    finally:
        for process in reversed(processes):
            _stop(process)
