"""ChampionWatcher: follows the champion alias, survives outages and bad models."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from terraops.api.model_holder import ChampionWatcher, ModelHolder
from terraops.errors import RegistryUnavailableError
from terraops.services import get_service
from terraops.services.base import ServiceDefinition


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.champion: int | None = None
        self.down = False
        self.fetches: list[int] = []

    def get_alias(self, service: str, alias: str) -> int | None:
        return self.get_aliases(service).get(alias)

    def get_aliases(self, service: str) -> dict[str, int]:
        if self.down:
            raise RegistryUnavailableError("down")
        return {} if self.champion is None else {"champion": self.champion}

    def fetch_model(self, service: str, version: int) -> Path:
        if self.down:
            raise RegistryUnavailableError("down")
        self.fetches.append(version)
        path = self.root / str(version)
        path.mkdir(parents=True, exist_ok=True)
        return path


class Predictor:
    feature_names: ClassVar[list[str]] = ["ndvi", "building_density", "water_distance"]

    def __init__(self, path: Path) -> None:
        self.path = path


def loader(path: Path, definition: ServiceDefinition) -> Any:
    if (path / "BAD").exists():
        raise ValueError("corrupt model")
    return Predictor(path)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "store")


def watcher(registry: Registry, tmp_path: Path) -> ChampionWatcher:
    holders = {"uhi": ModelHolder(get_service("uhi"))}
    return ChampionWatcher(
        holders, registry, loader, cache_dir=tmp_path / "cache", poll_interval_s=0.05
    )


def version_of(w: ChampionWatcher) -> int | None:
    current = w.holders["uhi"].current
    return current.version if current else None


def test_follows_the_champion_and_loads_each_version_once(
    registry: Registry, tmp_path: Path
) -> None:
    w = watcher(registry, tmp_path)
    w.poll_once()
    assert version_of(w) is None and w.registry_status == "ok"
    registry.champion = 1
    w.poll_once()
    first = w.holders["uhi"].current
    w.poll_once()
    assert w.holders["uhi"].current is first and registry.fetches == [1]
    registry.champion = 2
    w.poll_once()
    assert version_of(w) == 2 and w.holders["uhi"].aliases["champion"] == 2


def test_outage_keeps_the_last_good_model_then_recovers(registry: Registry, tmp_path: Path) -> None:
    w = watcher(registry, tmp_path)
    registry.champion = 1
    w.poll_once()
    registry.down = True
    registry.champion = 2
    w.poll_once()
    assert version_of(w) == 1 and w.registry_status == "unreachable"
    registry.down = False
    w.poll_once()
    assert version_of(w) == 2 and w.registry_status == "ok"


def test_cold_start_during_outage_serves_the_cached_champion(
    registry: Registry, tmp_path: Path
) -> None:
    registry.champion = 3
    watcher(registry, tmp_path).poll_once()  # a previous run of the server
    registry.down = True
    restarted = watcher(registry, tmp_path)
    restarted.poll_once()
    model = restarted.holders["uhi"].current
    assert model is not None and (model.version, model.source) == (3, "cache")


def test_unloadable_version_is_skipped_not_retried(registry: Registry, tmp_path: Path) -> None:
    w = watcher(registry, tmp_path)
    registry.champion = 1
    w.poll_once()
    (registry.root / "2").mkdir(parents=True)
    (registry.root / "2" / "BAD").touch()
    registry.champion = 2
    w.poll_once()
    w.poll_once()
    assert version_of(w) == 1 and registry.fetches == [1, 2]
    assert "v2 could not be loaded: corrupt model" in (w.holders["uhi"].last_error or "")


def test_background_thread_polls_and_stops(registry: Registry, tmp_path: Path) -> None:
    import time

    w = watcher(registry, tmp_path)
    w.start()
    try:
        registry.champion = 5
        deadline = time.monotonic() + 5
        while version_of(w) != 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert version_of(w) == 5
    finally:
        w.stop()
    assert w._thread is not None and not w._thread.is_alive()
