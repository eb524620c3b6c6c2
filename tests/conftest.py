"""Fixtures shared by every test folder.

Tests never touch the developer's ``.terraops``: each gets a home under pytest's
tmp folder. Scenes are tiny and made by code (seeded), so every fixture is
deterministic and fast.

The serving fixtures (a trained home, real ``terraops serve`` processes) live
here too, so integration and browser tests share one session's training:
training is the expensive part, so uhi and flood are trained once into a
template home; each test works on its own copy (the MLflow SQLite store, the
history and the model cache are copied; artifacts are read from the template,
whose absolute paths the store records — tests never modify them). uhi gets a
second version registered from the same run, so promote/rollback cycles have
two equally good candidates without a second training.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from samples_support import cached_sample
from serving_support import (
    FAST_TRAINING,
    RunningProcess,
    TrainedHome,
    free_port,
    register_copy_of,
    settings_env,
    wait_until,
)
from terraops.settings import Settings

# Keep MLflow from writing ./mlruns or phoning home from any test.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with a private, empty home."""
    return Settings(home=tmp_path / "home")


@pytest.fixture(scope="session")
def tiny_scenes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two small synthetic cities (different seeds and morphologies)."""
    from terraops.pipelines.scenes.generate import generate_scene

    root = tmp_path_factory.mktemp("scenes")
    dirs = []
    for seed, morphology in ((1, "dense"), (2, "sprawl")):
        out = root / f"city{seed}"
        generate_scene(out, seed=seed, size=256, resolution=4.0, morphology=morphology)
        dirs.append(out)
    return dirs


@pytest.fixture(scope="session")
def landsat_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Landsat 8 product crop, copied once per session from the samples cache that
    set-up fills (skipped, with the command that fetches it, when it is not there)."""
    from terraops.adapters.samples import LANDSAT8_SAMPLE

    return cached_sample(LANDSAT8_SAMPLE, tmp_path_factory.mktemp("samples"))


@pytest.fixture(scope="session")
def solaris_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real 0.5 m building sample of the solaris 0.4.0 wheel, like ``landsat_sample``."""
    from terraops.adapters.samples import SOLARIS_SAMPLE

    return cached_sample(SOLARIS_SAMPLE, tmp_path_factory.mktemp("samples"))


@pytest.fixture(scope="session")
def trained_home(tiny_scenes: list[Path], tmp_path_factory: pytest.TempPathFactory) -> TrainedHome:
    from terraops.pipelines.training.train import train_service
    from terraops.services import get_service

    settings = Settings(home=tmp_path_factory.mktemp("trained") / "home")
    uhi = train_service(settings, get_service("uhi"), tiny_scenes, FAST_TRAINING, progress=False)
    flood = train_service(
        settings, get_service("flood"), tiny_scenes, FAST_TRAINING, progress=False
    )
    second = register_copy_of(settings, "uhi", uhi.version)
    return TrainedHome(settings.home_dir, (uhi.version, second), (flood.version,))


@pytest.fixture
def home_settings(trained_home: TrainedHome, tmp_path: Path) -> Settings:
    """Settings on a private copy of the trained home."""
    home = tmp_path / "home"
    shutil.copytree(trained_home.path, home, ignore=shutil.ignore_patterns("*.lock"))
    return Settings(home=home, user="tester", poll_interval_s=0.3, registry_timeout_s=1.0)


@pytest.fixture
def start_process(tmp_path: Path) -> Iterator[Callable[..., RunningProcess]]:
    """Start a command in its own process group; stopped at teardown."""
    started: list[RunningProcess] = []

    def start(args: list[str], env: dict[str, str], url: str, name: str) -> RunningProcess:
        log = tmp_path / f"{name}-{len(started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        running = RunningProcess(process, url, log)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def start_server(
    start_process: Callable[..., RunningProcess],
) -> Callable[..., RunningProcess]:
    """``terraops serve`` on a free loopback port; returns once /readyz is 200."""

    def start(
        settings: Settings, *, workers: int = 1, ready: bool = True, **env: str
    ) -> RunningProcess:
        port = free_port()
        args = [sys.executable, "-m", "terraops.cli.main", "serve", "--host", "127.0.0.1"]
        args += ["--port", str(port), "--workers", str(workers)]
        server = start_process(
            args, settings_env(settings, **env), f"http://127.0.0.1:{port}", "serve"
        )
        if ready:
            wait_until(
                lambda: httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200,
                90,
                "server ready",
                server,
            )
        return server

    return start
