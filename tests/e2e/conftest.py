"""Browser-test fixtures: a served home with models *and* map layers, and Chromium.

The serving fixtures (trained home, ``terraops serve`` on a loopback port) come
from ``tests/conftest.py``, shared with the integration tests (one training per
session).

The browser is Debian's Chromium driven by Playwright; Playwright's own browser
download never runs (``executable_path``). Every page gets a guard that aborts
any request to a host other than 127.0.0.1 and records it, and a recorder of
console errors and tile responses, so each test can assert the page stayed
offline and clean.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SCREENSHOTS,
    STORMS_MM,
    VIEWPORT,
    PageWatch,
    guard,
)

from serving_support import TrainedHome
from terraops.settings import Settings

# ----- a home with champions and catalogue layers ----------------------------


@pytest.fixture(scope="session")
def map_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A city no model trained on, big enough to look like one on the map (3 km)."""
    from terraops.pipelines.scenes.generate import generate_scene

    out = tmp_path_factory.mktemp("map-scene") / "city3"
    generate_scene(out, seed=3, size=512, resolution=6.0, morphology="coastal")
    return out


@pytest.fixture(scope="session")
def real_scene(landsat_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Landsat 8 city (its clear strip), imported as the demo does."""
    from serving_support import LANDSAT_SAMPLE_CLEAR_BBOX
    from terraops.pipelines.scenes.importing import import_landsat, parse_bbox

    out = tmp_path_factory.mktemp("real-scene") / "gulf-coast"
    bbox = parse_bbox(LANDSAT_SAMPLE_CLEAR_BBOX)
    import_landsat(landsat_sample, out, bbox=bbox, bbox_crs="product")
    return out


@pytest.fixture(scope="session")
def mapped_home(
    trained_home: TrainedHome,
    map_scene: Path,
    real_scene: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> TrainedHome:
    """A template home: layers predicted by uhi v1 and flood v1, then uhi v2 champion.

    Two cities: the synthetic map city first, then the real Landsat one (heat only).

    So the map shows layers made by an earlier version than the live champion
    (the point read-out compares both), and the dashboard has a champion to roll
    back from. Tests copy it (``map_settings``); catalogue paths point here and
    are only read.
    """
    from terraops.adapters.registry import ModelRegistry
    from terraops.pipelines.lifecycle import aliases as lifecycle
    from terraops.pipelines.maps.raster_predict import predict_raster
    from terraops.services import get_service

    home = tmp_path_factory.mktemp("mapped") / "home"
    shutil.copytree(trained_home.path, home, ignore=shutil.ignore_patterns("*.lock"))
    settings = Settings(home=home, user="e2e-setup")
    registry = ModelRegistry(settings)
    first_uhi, second_uhi = trained_home.uhi_versions
    lifecycle.promote(settings, registry, "uhi", first_uhi, reason="first release")
    lifecycle.promote(settings, registry, "flood", trained_home.flood_versions[0], reason="first")
    predict_raster(settings, get_service("uhi"), map_scene)
    for rainfall in STORMS_MM:
        predict_raster(settings, get_service("flood"), map_scene, params={"rainfall_mm": rainfall})
    predict_raster(settings, get_service("uhi"), real_scene)
    lifecycle.promote(settings, registry, "uhi", second_uhi, reason="retrained release")
    return TrainedHome(home, trained_home.uhi_versions, trained_home.flood_versions)


@pytest.fixture
def map_settings(mapped_home: TrainedHome, tmp_path: Path) -> Settings:
    """Settings on a private copy of the mapped home (tests may move aliases)."""
    home = tmp_path / "home"
    shutil.copytree(mapped_home.path, home, ignore=shutil.ignore_patterns("*.lock"))
    return Settings(home=home, user="e2e", poll_interval_s=0.3, registry_timeout_s=1.0)


# ----- the browser ------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} missing: run `bash scripts/install-system-deps.sh` (as root)")
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    try:
        yield chromium
    finally:
        chromium.close()
        playwright.stop()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[[], tuple[Any, PageWatch]]]:
    """A fresh 1280×800 page with the offline guard and recorders attached."""
    contexts: list[Any] = []

    def open_() -> tuple[Any, PageWatch]:
        watch = PageWatch()
        context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        contexts.append(context)
        context.route("**/*", guard(watch))
        page = context.new_page()
        page.on(
            "console",
            lambda msg: watch.console_errors.append(msg.text) if msg.type == "error" else None,
        )
        page.on("pageerror", lambda exc: watch.console_errors.append(f"pageerror: {exc}"))
        page.on(
            "response",
            lambda r: watch.tile_responses.append(r) if "/tiles/" in r.url else None,
        )
        return page, watch

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where the README's screenshots are written (committed)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
