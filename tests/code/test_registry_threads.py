"""The model registry used from several threads at once, on two stores.

Registry calls share no process-wide state: a model download in progress
holds nothing the other calls wait for, two registries with different
tracking URIs in one process each see their own store, nothing writes
``os.environ`` or MLflow's global tracking URI, and a fail-fast registry
gives up on a server that never answers without touching MLflow's
environment-wide HTTP settings.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import mlflow.artifacts
import mlflow.pyfunc
import pytest

from terraops.adapters import tracking
from terraops.adapters.registry import MAX_UNANSWERED_CALLS, ModelRegistry
from terraops.errors import RegistryUnavailableError
from terraops.settings import Settings


def environment() -> dict[str, str]:
    """``os.environ`` less the session id MLflow's own telemetry thread sets and clears."""
    return {k: v for k, v in os.environ.items() if k != "_MLFLOW_TELEMETRY_SESSION_ID"}


class Constant(mlflow.pyfunc.PythonModel):
    """The smallest pyfunc: predicts its ``value`` artifact's first byte."""

    def predict(self, context, model_input, params=None):
        # (no type hints: MLflow would try to derive a signature from them)
        return [Path(context.artifacts["value"]).read_bytes()[0]] * len(model_input)


def register(settings: Settings, name: str, payload: bytes) -> int:
    """Train nothing: log a tiny pyfunc through terraops' own run logging; its version."""
    experiment = tracking.ensure_experiment(settings, name)
    with tracking.owned_run(settings, experiment, f"{name}-train") as run:
        run.log_params({"payload_bytes": len(payload)})
        run.log_metrics({"score": 1.0})
        value = settings.home_dir / f"{name}.bin"
        value.write_bytes(payload)
        _, version = run.log_pyfunc_model(
            name, python_model=Constant(), artifacts={"value": str(value)}, pip_requirements=[]
        )
    return version


@pytest.fixture
def two_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Settings, ...]]:
    """Two homes (two SQLite stores), used from a working folder that must stay empty."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    first, second = Settings(home=tmp_path / "a"), Settings(home=tmp_path / "b")
    ModelRegistry(first).ping()  # creates the empty store: MLflow's migrations take seconds,
    second.ensure_home()  # so the second store starts as a copy of it
    shutil.copyfile(first.home_dir / "mlflow.db", second.home_dir / "mlflow.db")
    yield first, second
    assert list(cwd.iterdir()) == []  # no ./mlruns, no ./mlflow.db: no global default used


def test_calls_run_beside_a_download_on_two_stores(
    two_stores: tuple[Settings, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    environ_before = environment()
    first, second = two_stores
    payload = os.urandom(1 << 20)
    assert register(first, "alpha", payload) == 1
    assert register(second, "beta", b"\x07") == 1
    assert register(second, "beta", b"\x09") == 2
    registry_a, registry_b = ModelRegistry(first), ModelRegistry(second, timeout_s=10)
    registry_b.set_alias("beta", "champion", 2)

    started, release = threading.Event(), threading.Event()
    real_download = mlflow.artifacts.download_artifacts

    def gated_download(**kwargs: Any) -> str:
        started.set()
        assert release.wait(30), "the other registry calls never finished"
        return str(real_download(**kwargs))

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", gated_download)
    calls: list[Callable[[], Any]] = [
        lambda: [v.version for v in registry_a.list_versions("alpha")],
        lambda: registry_a.get_aliases("alpha"),
        lambda: [(v.version, v.aliases) for v in registry_b.list_versions("beta")],
        lambda: registry_b.get_aliases("beta"),
        lambda: registry_b.get_version("beta", 1).params,
        lambda: registry_a.list_versions("beta"),  # the other store's model is not here
    ]
    expected = [
        [1],
        {},
        [(1, []), (2, ["champion"])],
        {"champion": 2},
        {"payload_bytes": "1"},
        [],
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        download = pool.submit(registry_a.fetch_model, "alpha", 1)
        assert started.wait(30)
        answers = [pool.submit(call) for call in calls * 3]
        results = [answer.result(timeout=30) for answer in answers]  # while the download waits
        assert not download.done()
        release.set()
        path = download.result(timeout=30)
    assert results == expected * 3
    assert path == first.model_cache_dir / "alpha" / "1"
    assert (path / "artifacts" / "alpha.bin").read_bytes() == payload
    assert [p.name for p in path.parent.iterdir()] == ["1"]  # no temporary folder left
    assert mlflow.pyfunc.load_model(str(path)).predict([[0]]) == [payload[0]]
    assert environment() == environ_before


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_fail_fast_registry_gives_up_on_a_silent_server(tmp_path: Path, silent_server: str) -> None:
    environ_before = environment()
    settings = Settings(home=tmp_path / "h", mlflow_tracking_uri=silent_server)
    registry = ModelRegistry(settings, timeout_s=0.3)
    for _ in range(MAX_UNANSWERED_CALLS):
        started = time.perf_counter()
        with pytest.raises(RegistryUnavailableError, match=r"no answer within 0\.3 s"):
            registry.get_aliases("uhi")
        assert time.perf_counter() - started < 2
    # the earlier calls still hang: the next one fails at once, without a new thread
    started = time.perf_counter()
    with pytest.raises(RegistryUnavailableError, match="still unanswered"):
        registry.ping()
    assert time.perf_counter() - started < 0.1
    assert environment() == environ_before
