"""A real scale-out stack for tests: PostgreSQL + an ``mlflow server`` on loopback.

PostgreSQL comes from the system (Debian's ``postgresql`` package, installed by
``scripts/install-system-deps.sh``); its binaries are found by glob, newest
major version first. It refuses to run as root, so when the tests run as root
(CI) the cluster is owned by and run as an unprivileged system user
(``postgres``, else ``nobody``) through ``setpriv``, in a world-traversable
temporary folder (pytest's own tmp folders are private to root).

One cluster holds two databases: ``mlflow`` (the tracking server's backend
store) and ``terraops`` (the shared terraops state, ``TERRAOPS_STATE_DB_URL``).
The tracking server serves artifacts itself (``--serve-artifacts``), so clients
see ``mlflow-artifacts:`` URIs and never touch its disk — as on a real
multi-machine deployment. Tests that kill the server start their own with
:func:`start_mlflow_server` on the shared cluster.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from serving_support import RunningProcess, free_port, wait_until

DB_SUPERUSER = "terraops"


def postgres_bin_dir() -> Path | None:
    """Folder of ``initdb`` and ``postgres``: Debian's newest major, else on PATH."""

    def major(path: str) -> int:
        version = Path(path).parents[1].name
        return int(version) if version.isdigit() else 0

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=major, reverse=True)
    if found:
        return Path(found[0]).parent
    on_path = shutil.which("postgres")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    return None


def require_postgres() -> Path:
    """The binaries' folder, or skip: only a developer machine may lack them (CI has them)."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/postgres): "
            "install them with scripts/install-system-deps.sh (Debian package postgresql)"
        )
    return bin_dir


def _unprivileged_prefix() -> tuple[list[str], int, int]:
    """Command prefix that drops root (PostgreSQL refuses it), and the uid/gid to own files."""
    if os.geteuid() != 0:
        return [], os.getuid(), os.getgid()
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        prefix = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"]
        return [*prefix, "--"], entry.pw_uid, entry.pw_gid
    raise RuntimeError("running as root and neither 'postgres' nor 'nobody' exists")


@dataclass
class PostgresCluster:
    """A running throw-away PostgreSQL cluster (trust auth, loopback only)."""

    root: Path
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, database: str, *, driver: str = "") -> str:
        """``postgresql://`` URL of a database (``driver='psycopg'``: SQLAlchemy's spelling)."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{DB_SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def query(self, database: str, statement: str) -> list[tuple[object, ...]]:
        """Rows of one statement (test inspection: pg_locks, row counts)."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            return list(conn.execute(statement).fetchall())

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then remove the cluster's files."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def running_postgres(startup_timeout_s: float = 60.0) -> Iterator[PostgresCluster]:
    """initdb + postgres on a free loopback port; stopped and deleted on exit."""
    import psycopg

    bin_dir = require_postgres()
    prefix, uid, gid = _unprivileged_prefix()
    root = Path(tempfile.mkdtemp(prefix="terraops-pg-"))
    root.chmod(0o755)  # the unprivileged owner must reach its data folder
    data, log = root / "data", root / "postgres.log"
    data.mkdir()
    log.touch()
    for path in (data, log):
        os.chown(path, uid, gid)
    initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", DB_SUPERUSER, "--auth=trust"]
    initdb += ["--no-locale", "--encoding=UTF8", "--no-sync"]
    done = subprocess.run([*prefix, *initdb], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    port = free_port()
    server = [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port)]
    server += ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="]
    server += ["-c", "shared_buffers=32MB", "-c", "max_connections=60"]
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*prefix, *server], cwd=root, stdout=out, stderr=subprocess.STDOUT
        )
    cluster = PostgresCluster(root, port, process, log)
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            try:
                psycopg.connect(cluster.url("postgres"), connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"postgres did not start:\n{log.read_text()[-3000:]}"
                    ) from None
                time.sleep(0.1)
        yield cluster
    finally:
        cluster.stop()


def start_mlflow_server(
    cluster: PostgresCluster, folder: Path, *, database: str = "mlflow"
) -> RunningProcess:
    """``mlflow server`` on loopback: backend store in ``database`` (created if missing),
    artifacts served from ``folder/artifacts``. Stop it with ``.stop()`` (any signal)."""
    if not cluster.query("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{database}'"):
        cluster.create_database(database)
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--backend-store-uri", cluster.url(database, driver="psycopg")]
    args += ["--serve-artifacts", "--artifacts-destination", str(folder / "artifacts")]
    args += ["--workers", "1"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TERRAOPS_", "MLFLOW_"))}
    log = folder / f"mlflow-server-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = RunningProcess(process, f"http://127.0.0.1:{port}", log)
    try:
        wait_until(
            lambda: httpx.get(f"{server.url}/health", timeout=2).status_code == 200,
            120,
            "mlflow server ready",
            server,
        )
    except BaseException:
        server.stop()
        raise
    return server
