"""Real faults, injected from outside the process: SIGKILL of the CLI at random points,
a tracking server killed with SIGKILL mid-operation, a full disk and a read-only home.

Nothing in ``src/`` knows about these tests: the CLI runs as a child process, is
killed by the kernel (``SIGKILL``), and the disk faults are real file systems (a
size-limited tmpfs / a read-only bind mount in a private mount namespace made
by ``unshare``). After each fault the state is checked from outside and the next
real command must succeed.

Kill points are drawn from a seeded RNG, stratified over the operation's measured
duration (one point per equal slice), so each run covers the whole operation and
a failure can be replayed with the same seed (``TERRAOPS_FAULT_SEED``).
"""

from __future__ import annotations

import json
import os
import random
import resource
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from test_registry_outage import start_mlflow

from serving_support import RunningProcess, TrainedHome, free_port, report, settings_env, wait_until
from terraops.adapters import tracking
from terraops.adapters.registry import ModelRegistry
from terraops.domain.promotion import CHALLENGER, CHAMPION, champion_lineage
from terraops.pipelines.lifecycle import aliases as lifecycle
from terraops.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEED = int(os.environ.get("TERRAOPS_FAULT_SEED", "20261127"))
PROMOTE_KILLS = 6
TRAIN_KILLS = 4
TINY_TRAINING = ["--param", "n_estimators=20", "--param", "cv_folds=2", "--no-progress"]
EXIT_REGISTRY_UNAVAILABLE = 5
EXIT_STORAGE = 6


# ----- running and killing the real CLI ----------------------------------------------


def terraops(*args: str) -> list[str]:
    return [sys.executable, "-m", "terraops.cli.main", *args]


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(terraops(*args), env=env, capture_output=True, text=True, timeout=timeout)


def run_killed_at(env: dict[str, str], args: list[str], delay: float) -> tuple[bool, int]:
    """Start the CLI, SIGKILL it after ``delay`` s; (was it killed, exit status)."""
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            terraops(*args), env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            return True, process.returncode
        stderr.seek(0)
        assert process.returncode == 0, stderr.read()[-3000:].decode()
    return False, 0


def kill_points(start: float, end: float, count: int, rng: random.Random) -> list[float]:
    """One random point in each of ``count`` equal slices of ``[start, end]``."""
    return [start + (i + rng.random()) * (end - start) / count for i in range(count)]


def timed(check: Callable[[], subprocess.CompletedProcess[str]], code: int = 0) -> float:
    started = time.monotonic()
    done = check()
    assert done.returncode == code, done.stderr[-3000:]
    return time.monotonic() - started


def assert_clean_failure(done: subprocess.CompletedProcess[str], code: int, words: str) -> None:
    """A fault is reported as one clear message with its exit code, never a traceback."""
    assert done.returncode == code, (done.returncode, done.stderr[-3000:])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert words in one_line(done.stderr), done.stderr[-3000:]


def one_line(text: str) -> str:
    """The CLI's message without the line breaks the terminal width put in."""
    return " ".join(text.split())


# ----- what "consistent" means -------------------------------------------------------


def assert_versions_load(settings: Settings, service: str) -> list[int]:
    """Every registered version is READY and its artifacts fetch, load and predict."""
    registry = ModelRegistry(settings)
    definition = lifecycle.model_service(service)
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    versions = [v.version for v in registry.list_versions(service)]
    for version in versions:
        assert client.get_model_version(service, str(version)).status == "READY", version
        lifecycle.load_verified_predictor(registry, definition, version)
    return versions


def assert_lock_free(settings: Settings) -> None:
    """A killed holder never leaves the lifecycle lock held."""
    with lifecycle.lifecycle_lock(settings, timeout=0.5):
        pass


def assert_history_reconciled(history: list[dict[str, Any]], settings: Settings) -> None:
    """No pending row; each tracked alias points where its last committed row says."""
    assert all(row["status"] in ("committed", "aborted") for row in history), history[:3]
    assert all(row["action"] != "external" for row in history), history[:3]  # all journalled
    aliases = ModelRegistry(settings).get_aliases("uhi")
    entries = lifecycle.history(settings, "uhi")
    assert len(entries) == len(history)  # a second reconcile finds nothing left to fix
    lineage = champion_lineage(reversed(entries))
    assert (lineage[-1] if lineage else None) == aliases.get(CHAMPION)
    for alias in (CHAMPION, CHALLENGER):
        committed = [e for e in entries if e.alias == alias and e.status == "committed"]
        assert (committed[0].to_version if committed else None) == aliases.get(alias), alias


def cli_history(env: dict[str, str]) -> list[dict[str, Any]]:
    done = run_cli(env, "models", "history", "uhi", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def running_runs(settings: Settings) -> list[Any]:
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    experiment = client.get_experiment_by_name(tracking.experiment_name(settings, "uhi"))
    assert experiment is not None
    return list(client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'"))


def cpu_seconds() -> float:
    """CPU time (user + sys) of this process and its finished children: what a test
    costs on an idle machine, whatever the load on this one."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


# ----- 1. SIGKILL of the CLI during promotion and training ---------------------------


def test_sigkill_at_random_points_of_promotion(
    home_settings: Settings, trained_home: TrainedHome
) -> None:
    """Kill points fall between the end of the CLI's start-up (imports, settings, registry
    client: measured with a promote refused for its missing --version) and the end of a
    whole promotion (measured), where the lock, journal, gates and alias move happen."""
    cpu = cpu_seconds()
    v1, v2 = trained_home.uhi_versions
    env = settings_env(home_settings)
    registry = ModelRegistry(home_settings)
    for version in (v1, v2):  # every promotion below then costs the same (cached files)
        registry.fetch_model("uhi", version)
    startup = timed(lambda: run_cli(env, "promote", "uhi"), code=2)
    duration = timed(lambda: run_cli(env, "promote", "uhi", "--version", str(v1)))
    outcomes = []
    for delay in kill_points(startup, duration, PROMOTE_KILLS, random.Random(SEED)):
        target = v2 if registry.get_alias("uhi", CHAMPION) == v1 else v1
        killed, _ = run_killed_at(env, ["promote", "uhi", "--version", str(target)], delay)
        assert_lock_free(home_settings)
        pending = lifecycle.open_history(home_settings).pending("uhi")
        assert [p.to_version for p in pending] in ([], [target]), pending
        assert registry.get_alias("uhi", CHAMPION) in (v1, v2)
        if pending:  # the intent survived the kill: the next command must resolve it
            assert_history_reconciled(cli_history(env), home_settings)
        outcomes.append(
            {
                "at_s": round(delay, 2),
                "killed": killed,
                "left_pending": bool(pending),
                "champion": registry.get_alias("uhi", CHAMPION),
            }
        )
    assert_history_reconciled(cli_history(env), home_settings)
    target = v2 if registry.get_alias("uhi", CHAMPION) == v1 else v1
    timed(lambda: run_cli(env, "promote", "uhi", "--version", str(target)))
    assert registry.get_alias("uhi", CHAMPION) == target
    assert_versions_load(home_settings, "uhi")
    report(
        "faults_promote_sigkill",
        {
            "seed": SEED,
            "cpu_s": round(cpu_seconds() - cpu, 1),
            "startup_s": round(startup, 2),
            "duration_s": round(duration, 2),
            "kills": outcomes,
        },
    )
    assert any(o["killed"] for o in outcomes)


def test_sigkill_at_random_points_of_training(
    home_settings: Settings, tiny_scenes: list[Path]
) -> None:
    cpu = cpu_seconds()
    env = settings_env(home_settings)
    args = ["train", "uhi", "--scenes", str(tiny_scenes[0]), *TINY_TRAINING]
    registry = ModelRegistry(home_settings)
    before = len(registry.list_versions("uhi"))
    startup = timed(lambda: run_cli(env, *args, "--param", "no_such_knob=1"), code=2)
    duration = timed(lambda: run_cli(env, *args))
    outcomes = []
    for delay in kill_points(startup, duration, TRAIN_KILLS, random.Random(SEED + 1)):
        killed, _ = run_killed_at(env, args, delay)
        versions = assert_versions_load(home_settings, "uhi")  # no half-registered version
        challenger = registry.get_alias("uhi", CHALLENGER)
        assert challenger in versions
        outcomes.append(
            {
                "at_s": round(delay, 2),
                "killed": killed,
                "versions": len(versions),
                "left_running": len(running_runs(home_settings)),
            }
        )
    done = run_cli(env, *args, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    trained = json.loads(done.stdout)
    assert registry.get_alias("uhi", CHALLENGER) == trained["version"]
    assert running_runs(home_settings) == []  # runs of killed trainings were closed
    client = MlflowClient(tracking_uri=home_settings.tracking_uri)
    experiment = client.get_experiment_by_name(tracking.experiment_name(home_settings, "uhi"))
    assert experiment is not None
    killed_runs = client.search_runs([experiment.experiment_id], "attributes.status = 'KILLED'")
    assert all(tracking.ABANDONED_TAG in r.data.tags for r in killed_runs)
    assert len(killed_runs) >= max(o["left_running"] for o in outcomes)
    logged = client.search_logged_models([experiment.experiment_id])
    assert [m.model_id for m in logged if str(m.status) == "PENDING"] == []
    entries = lifecycle.history(home_settings, "uhi")  # the final train reconciled already
    assert_history_reconciled([e.as_dict() for e in entries], home_settings)
    assert len(assert_versions_load(home_settings, "uhi")) >= before + 2
    report(
        "faults_train_sigkill",
        {
            "seed": SEED + 1,
            "cpu_s": round(cpu_seconds() - cpu, 1),
            "startup_s": round(startup, 2),
            "duration_s": round(duration, 2),
            "kills": outcomes,
        },
    )
    assert any(o["killed"] for o in outcomes)


# ----- 2. the tracking server killed mid-operation -----------------------------------


def test_tracking_server_sigkilled_mid_promotion(
    home_settings: Settings,
    trained_home: TrainedHome,
    start_process: Callable[..., RunningProcess],
) -> None:
    cpu = cpu_seconds()
    v1, _ = trained_home.uhi_versions
    port = free_port()
    server = start_mlflow(start_process, home_settings, port)
    remote = home_settings.model_copy(update={"mlflow_tracking_uri": server.url})
    # MLflow's own client knobs: fail after one try instead of ~4 min of retries
    env = settings_env(
        remote, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="10"
    )
    seen = len(server.log.read_bytes())
    promote = subprocess.Popen(
        terraops("promote", "uhi", "--version", str(v1)),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: b"/api/" in server.log.read_bytes()[seen:], 60, "first CLI request")
    time.sleep(random.Random(SEED + 2).uniform(0, 0.3))
    assert promote.poll() is None, "the promotion ended before the server was killed"
    server.stop(signal.SIGKILL)
    _, stderr = promote.communicate(timeout=120)
    failed = subprocess.CompletedProcess(promote.args, promote.returncode, "", stderr)
    assert_clean_failure(failed, EXIT_REGISTRY_UNAVAILABLE, "unavailable")
    assert "TERRAOPS_MLFLOW_TRACKING_URI" in one_line(stderr)  # the hint says what to check
    assert integrity(home_settings.home_dir / "mlflow.db") == "ok"

    start_mlflow(start_process, home_settings, port)  # same store, same address
    assert_history_reconciled(cli_history(env), remote)
    if ModelRegistry(remote).get_alias("uhi", CHAMPION) != v1:
        done = run_cli(env, "promote", "uhi", "--version", str(v1))
        assert done.returncode == 0, done.stderr[-3000:]
    assert ModelRegistry(remote).get_alias("uhi", CHAMPION) == v1
    assert_history_reconciled([e.as_dict() for e in lifecycle.history(remote, "uhi")], remote)
    assert_versions_load(remote, "uhi")
    report("faults_tracking_server_sigkill", {"cpu_s": round(cpu_seconds() - cpu, 1)})


# ----- 3. a full disk / a read-only home ---------------------------------------------


@cache
def mount_namespace() -> tuple[str, ...] | None:
    """An ``unshare`` prefix in which this process may mount (as root in CI: maybe not)."""
    probe = Path(os.environ.get("TMPDIR", "/tmp"))
    for prefix in (("unshare", "--user", "--map-root-user", "--mount"), ("unshare", "--mount")):
        if shutil.which(prefix[0]) is None:
            return None
        script = 'mount -t tmpfs -o size=64k tmpfs "$1"'
        done = subprocess.run([*prefix, "sh", "-c", script, "sh", str(probe)], capture_output=True)
        if done.returncode == 0:
            return prefix
    return None


def run_faulted(
    mount: str,
    home: Path,
    snapshot: Path,
    out: Path,
    commands: dict[str, list[str]],
    env: dict[str, str],
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run CLI commands in a private mount namespace where ``home`` is ``mount``
    (a full tmpfs holding a copy of ``snapshot`` / a read-only bind mount); the
    home as the commands left it is copied to ``out`` for inspection.

    Where no mount namespace can be made (a container without user namespaces or
    CAP_SYS_ADMIN), a full disk falls back to a zero file-size limit
    (``prlimit --fsize=0``: every growing write fails, EFBIG) on the home itself;
    a read-only home has no stand-in as root, so that case is skipped.
    """
    prefix: tuple[str, ...] | None = mount_namespace()
    command_prefix: list[str] = []
    results = out.with_name(out.name + "-results")
    results.mkdir()
    h, snap = shlex.quote(str(home)), shlex.quote(str(snapshot))
    lines = ["set -e"]
    if prefix is None:
        if mount != "full" or shutil.which("prlimit") is None:
            pytest.skip("no mount namespace (unshare --mount refused here): no read-only home")
        prefix, command_prefix = (), ["prlimit", "--fsize=0", "--"]
    elif mount == "full":
        size_kb = sum(f.stat().st_size for f in snapshot.rglob("*") if f.is_file()) // 1024 + 512
        lines += [
            f"mount -t tmpfs -o size={size_kb}k tmpfs {h}",
            f"cp -a {snap}/. {h}/",
            f"avail=$(df -k --output=avail {h} | tail -1)",
            f'fallocate -l "${{avail}}k" {h}/.filler ||'
            f' dd if=/dev/zero of={h}/.filler bs=1k count="$avail" 2>/dev/null || true',
            f"test $(df -k --output=avail {h} | tail -1) -eq 0",
        ]
    else:
        lines += [f"mount --bind {h} {h}", f"mount -o remount,bind,ro {h}"]
    lines.append("set +e")
    for name, args in commands.items():
        r = shlex.quote(str(results / name))
        command = shlex.join([*command_prefix, *terraops(*args)])
        lines.append(f"{command} >{r}.out 2>{r}.err; echo $? >{r}.rc")
    lines += [f"rm -f {h}/.filler", f"cp -a {h}/. {shlex.quote(str(out))}/"]
    done = subprocess.run(
        [*prefix, "bash", "-c", "\n".join(lines)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {
        name: subprocess.CompletedProcess(
            args,
            int((results / f"{name}.rc").read_text()),
            (results / f"{name}.out").read_text(),
            (results / f"{name}.err").read_text(),
        )
        for name, args in commands.items()
    }


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_full_or_read_only_home_fails_cleanly_and_loses_nothing(
    fault: str,
    home_settings: Settings,
    trained_home: TrainedHome,
    tiny_scenes: list[Path],
    tmp_path: Path,
) -> None:
    cpu = cpu_seconds()
    v1, v2 = trained_home.uhi_versions
    registry = ModelRegistry(home_settings)
    lifecycle.promote(home_settings, registry, "uhi", v1)
    journal_before = [e.as_dict() for e in lifecycle.history(home_settings, "uhi")]
    versions_before = assert_versions_load(home_settings, "uhi")
    home = home_settings.home_dir
    snapshot = tmp_path / "snapshot"
    shutil.copytree(home, snapshot)
    after = tmp_path / "after"
    after.mkdir()
    commands = {"promote": ["promote", "uhi", "--version", str(v2)]}
    if fault == "full":  # the same mapping, reached from other writers
        commands["train"] = ["train", "uhi", "--scenes", str(tiny_scenes[0]), *TINY_TRAINING]
        commands["scene"] = [
            "scene",
            "generate",
            "--seed",
            "5",
            "--size",
            "128",
            "--out",
            str(home / "scenes" / "new"),
        ]
    results = run_faulted(fault, home, snapshot, after, commands, settings_env(home_settings))
    words = {"full": "the disk is full", "read-only": "the file system is read-only"}[fault]
    where = f"cannot write {home}"
    if mount_namespace() is None:  # the fallback: a file-size limit, /tmp included
        words, where = "cannot write", "cannot write /"
    for done in results.values():
        assert_clean_failure(done, EXIT_STORAGE, words)
        assert where in one_line(done.stderr), done.stderr  # says where
    assert not (after / "scenes" / "new").exists()  # no half-written scene

    state = after if fault == "full" else home  # what the failed commands left behind
    left = home_settings.model_copy(update={"home": state})
    for db in ("mlflow.db", "lifecycle.db"):
        assert integrity(state / db) == "ok", db
    assert [e.as_dict() for e in lifecycle.history(left, "uhi")] == journal_before
    assert assert_versions_load(left, "uhi") == versions_before
    assert running_runs(left) == []
    # with room again, the same store takes the next operation
    assert lifecycle.promote(left, ModelRegistry(left), "uhi", v2).entry.status == "committed"
    mechanism = " ".join(mount_namespace() or ("prlimit", "--fsize=0"))
    report(f"faults_{fault}_home", {"mechanism": mechanism, "cpu_s": round(cpu_seconds() - cpu, 1)})
