"""Scale-out: two homes ("two hosts") on one mlflow server + one PostgreSQL state database.

The stack is real: Debian's PostgreSQL started by the test (as an unprivileged
user when the suite runs as root), an ``mlflow server`` whose backend store is
PostgreSQL and which serves the artifacts, and terraops CLI processes with two
different ``TERRAOPS_HOME``s that share only the two URLs. What each test proves:

- a version trained and promoted from host 1 shows in host 2's history, and host 2
  downloads it through the served artifact store (``mlflow-artifacts:``);
- two promotions started at once from two processes serialise on the shared
  advisory lock — both are seen waiting on it, their journal rows do not interleave;
- an unreachable state database stops a promotion with exit 5 and a clear message,
  before anything is written anywhere.
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from scaleout_support import PostgresCluster, running_postgres, start_mlflow_server
from serving_support import (
    RunningProcess,
    TrainedHome,
    free_port,
    register_copy_of,
    report,
    settings_env,
    wait_until,
)
from terraops.adapters.alias_history import AliasHistory
from terraops.adapters.registry import ModelRegistry
from terraops.adapters.state_db import PostgresDatabase
from terraops.cli.main import app as cli
from terraops.domain.promotion import CHAMPION, GateResult, HistoryEntry
from terraops.errors import ConflictError
from terraops.pipelines.lifecycle import aliases as lifecycle
from terraops.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WAITING_ON_ADVISORY_LOCKS = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
)


@dataclass(frozen=True)
class Stack:
    cluster: PostgresCluster
    server: RunningProcess
    state_url: str


@dataclass(frozen=True)
class SharedHomes:
    """Two hosts' homes on the same stack, and the version host 1 trained."""

    stack: Stack
    host1: Settings
    host2: Settings
    trained: int


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    start = time.perf_counter()
    with running_postgres() as cluster:
        postgres_s = time.perf_counter() - start
        state_url = cluster.create_database("terraops")
        server = start_mlflow_server(cluster, tmp_path_factory.mktemp("mlflow-server"))
        server_s = time.perf_counter() - start - postgres_s
        report(
            "scaleout_stack",
            {"postgres_start_s": round(postgres_s, 2), "mlflow_server_start_s": round(server_s, 2)},
        )
        try:
            yield Stack(cluster, server, state_url)
        finally:
            server.stop(signal.SIGKILL)  # nothing to flush: its state is in PostgreSQL


def host_settings(stack: Stack, home: Path, user: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": home,
        "user": user,
        "mlflow_tracking_uri": stack.server.url,
        "state_db_url": stack.state_url,
    }
    return Settings(**{**values, **overrides})


def host_env(settings: Settings) -> dict[str, str]:
    """The environment of a terraops process on that host (both URLs, its own home)."""
    env = settings_env(settings)
    assert env["TERRAOPS_STATE_DB_URL"] and env["TERRAOPS_MLFLOW_TRACKING_URI"]
    return env


def terraops(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "terraops.cli.main", *args]
    return subprocess.run(command, env=host_env(settings), capture_output=True, text=True)


@pytest.fixture(scope="module")
def homes(
    stack: Stack, tiny_scenes: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> SharedHomes:
    """Host 1 trains a tiny uhi model through the server (as a trainer host would)."""
    root = tmp_path_factory.mktemp("hosts")
    host1 = host_settings(stack, root / "host1", "host-1")
    host2 = host_settings(stack, root / "host2", "host-2")
    scenes = [str(s) for s in tiny_scenes]
    start = time.perf_counter()
    trained = terraops(
        host1, "train", "uhi", "--scenes", *scenes, "--json",
        "--param", "n_estimators=40", "--param", "cv_folds=2",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    report("scaleout_train", {"cli_train_s": round(time.perf_counter() - start, 2)})
    return SharedHomes(stack, host1, host2, int(json.loads(trained.stdout)["version"]))


def run_cli(settings: Settings, *args: str) -> Any:
    """The CLI in-process with ``settings`` (as that host's TERRAOPS_ env would build)."""
    return CliRunner().invoke(cli, list(args), obj=settings)


def promotions_to(entries: list[HistoryEntry], versions: set[int]) -> list[HistoryEntry]:
    return sorted(
        (e for e in entries if e.action == "promote" and e.to_version in versions),
        key=lambda e: e.id,
    )


def test_promotion_from_one_host_is_in_the_other_hosts_history(homes: SharedHomes) -> None:
    version = homes.trained
    promoted = run_cli(homes.host1, "promote", "uhi", "--challenger")
    assert promoted.exit_code == 0, promoted.output

    shown = run_cli(homes.host2, "models", "history", "uhi", "--json")
    assert shown.exit_code == 0, shown.output
    history = json.loads(shown.stdout)
    assert [(h["action"], h["to_version"], h["actor"], h["status"]) for h in history[:2]] == [
        ("promote", version, "host-1", "committed"),
        ("assign", version, "host-1", "committed"),  # the challenger, set by training
    ]
    # The registry side went through the server: host 2 downloads the champion
    # from the served artifact store, never from host 1's disk.
    registry2 = ModelRegistry(homes.host2)
    assert registry2.get_alias("uhi", CHAMPION) == version
    run_id = registry2.get_version("uhi", version).run_id
    artifact_uri = MlflowClient(homes.stack.server.url).get_run(run_id).info.artifact_uri
    assert artifact_uri.startswith("mlflow-artifacts:"), artifact_uri
    model_dir = registry2.fetch_model("uhi", version)
    assert model_dir.is_relative_to(homes.host2.home_dir) and (model_dir / "MLmodel").is_file()
    for host in (homes.host1, homes.host2):  # registry, artifacts and history are shared
        assert not host.history_db.exists()
        assert not (host.home_dir / "mlflow.db").exists()
        assert not host.artifact_root.exists()


def test_concurrent_promotions_from_two_hosts_serialise(homes: SharedHomes) -> None:
    first, second = (register_copy_of(homes.host1, "uhi", homes.trained) for _ in range(2))
    cluster = homes.stack.cluster
    started: list[subprocess.Popen[str]] = []
    try:
        with lifecycle.lifecycle_lock(homes.host1):  # hold the shared lock: both queue on it
            for host, version in ((homes.host1, first), (homes.host2, second)):
                command = ["promote", "uhi", "--version", str(version)]
                started.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "terraops.cli.main", *command],
                        env=host_env(host),
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        text=True,
                    )
                )
            wait_until(
                lambda: cluster.query("terraops", WAITING_ON_ADVISORY_LOCKS)[0][0] == 2,
                50,  # < the lifecycle's 60 s lock timeout, which would fail the waiters
                "both promotions waiting on the shared lifecycle lock",
            )
        outputs = [p.communicate(timeout=120)[0] for p in started]
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert [p.returncode for p in started] == [0, 0], outputs

    journal = lifecycle.open_history(homes.host2)
    done = promotions_to(journal.entries("uhi"), {first, second})
    assert len(done) == 2 and all(e.status == "committed" for e in done)
    earlier, later = done
    assert earlier.resolved_at is not None
    assert later.created_at >= earlier.resolved_at  # no interleaving: intent after commit
    assert later.from_version == earlier.to_version  # it read the alias the first one set
    between = [e for e in journal.entries("uhi") if earlier.id < e.id < later.id]
    assert between == []
    assert {earlier.actor, later.actor} == {"host-1", "host-2"}
    assert ModelRegistry(homes.host2).get_alias("uhi", CHAMPION) == later.to_version


def test_shared_lock_held_by_one_host_is_busy_for_the_other(homes: SharedHomes) -> None:
    with (
        lifecycle.lifecycle_lock(homes.host1),
        pytest.raises(ConflictError, match="in progress"),
        lifecycle.lifecycle_lock(homes.host2, timeout=0.5),
    ):
        pass
    with lifecycle.lifecycle_lock(homes.host2, timeout=5):  # released: free again
        pass


def test_unreachable_state_db_stops_a_promotion_before_any_write(
    homes: SharedHomes, tmp_path: Path
) -> None:
    candidate = register_copy_of(homes.host1, "uhi", homes.trained)
    cluster = homes.stack.cluster
    rows_before = cluster.query("terraops", "SELECT count(*) FROM alias_history")
    champion_before = ModelRegistry(homes.host1).get_alias("uhi", CHAMPION)
    dead = f"postgresql://terraops:secret@127.0.0.1:{free_port()}/terraops"
    host3 = host_settings(homes.stack, tmp_path / "host3", "host-3", state_db_url=dead)

    result = run_cli(host3, "promote", "uhi", "--version", str(candidate))
    assert result.exit_code == 5, result.output
    text = " ".join(result.output.split())
    assert "shared state database" in text and "TERRAOPS_STATE_DB_URL" in text
    assert "secret" not in text  # the password is never printed
    assert ModelRegistry(homes.host1).get_alias("uhi", CHAMPION) == champion_before
    assert cluster.query("terraops", "SELECT count(*) FROM alias_history") == rows_before
    assert not host3.history_db.exists() and not (host3.home_dir / "lifecycle.lock").exists()
    history = run_cli(host3, "models", "history", "uhi")
    assert history.exit_code == 5, history.output


def journal_story(journal: AliasHistory) -> list[tuple[Any, ...]]:
    """The same write-ahead story on any backend; the entries it leaves, minus clocks/ids."""
    gate = GateResult("loadable", True, "v2 loaded", overridable=False)
    first = journal.begin(
        service="flood", alias=CHAMPION, action="promote", from_version=None,
        to_version=1, actor="a", reason="first", forced=False,
    )  # fmt: skip
    journal.resolve(first.id, "committed")
    journal.resolve(first.id, "aborted")  # idempotent: a resolved row never changes
    second = journal.begin(
        service="flood", alias=CHAMPION, action="rollback", from_version=1,
        to_version=2, actor="b", reason=None, forced=True, gates=(gate,),
    )  # fmt: skip
    journal.resolve(second.id, "aborted")
    journal.begin(
        service="flood", alias="challenger", action="external", from_version=None,
        to_version=3, actor="c", reason="seen", forced=False, status="committed",
    )  # fmt: skip
    assert journal.pending("flood") == []
    return [
        (e.alias, e.action, e.from_version, e.to_version, e.actor, e.reason, e.forced,
         e.status, e.gates, e.resolved_at is not None and e.resolved_at >= e.created_at)
        for e in journal.entries("flood")
    ]  # fmt: skip


def test_journal_in_postgres_behaves_as_in_sqlite(stack: Stack, tmp_path: Path) -> None:
    database = stack.cluster.create_database("journal_parity")
    sqlite_story = journal_story(AliasHistory(tmp_path / "lifecycle.db"))
    postgres_story = journal_story(AliasHistory(PostgresDatabase(database)))
    assert postgres_story == sqlite_story and len(sqlite_story) == 3
    reopened = AliasHistory(PostgresDatabase(database))  # schema creation is idempotent
    assert [e.action for e in reopened.entries("flood")] == ["promote", "rollback", "external"]


def timed_promotions(settings: Settings, versions: tuple[int, int], rounds: int) -> list[float]:
    """Seconds per promotion (gates included), alternating two equally good versions."""
    registry = ModelRegistry(settings)
    for version in versions:  # download once: the timings compare promotions, not downloads
        registry.fetch_model("uhi", version)
    seconds = []
    for i in range(rounds):
        version = versions[(i + 1) % 2]
        if registry.get_alias("uhi", CHAMPION) == version:
            version = versions[i % 2]
        start = time.perf_counter()
        lifecycle.promote(settings, registry, "uhi", version, reason="timing")
        seconds.append(time.perf_counter() - start)
    return seconds


def test_promotion_latency_shared_vs_embedded(
    homes: SharedHomes, home_settings: Settings, trained_home: TrainedHome
) -> None:
    """Measured, not asserted against a figure: both must work; the numbers are reported."""
    rounds = 5
    shared_versions = (homes.trained, register_copy_of(homes.host1, "uhi", homes.trained))
    embedded_versions = trained_home.uhi_versions
    shared = timed_promotions(homes.host1, shared_versions, rounds)
    embedded = timed_promotions(home_settings, (embedded_versions[0], embedded_versions[1]), rounds)
    report(
        "scaleout_promotion",
        {
            "rounds": rounds,
            "shared_median_s": round(statistics.median(shared), 3),
            "embedded_median_s": round(statistics.median(embedded), 3),
            "shared_s": [round(s, 3) for s in shared],
            "embedded_s": [round(s, 3) for s in embedded],
        },
    )
    assert len(shared) == len(embedded) == rounds
