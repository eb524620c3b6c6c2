"""The map in a real browser (Chromium via Playwright); the dashboard is in test_dashboard_browser.

Against a real ``terraops serve`` on a home with trained models and catalogue
layers made by ``predict_raster``: tiles load and are not blank, vectors draw,
a click reads the layers and asks the live API, nothing leaves 127.0.0.1, the
console stays clean. The map screenshots in the README are taken here.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser_support import PageWatch, assert_offline_and_clean, serve
from PIL import Image

from serving_support import RunningProcess, TrainedHome
from terraops.adapters.catalogue import LayerCatalogue
from terraops.domain.layers import Layer
from terraops.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

OpenPage = Callable[[], tuple[Any, PageWatch]]
TILE_WAIT_MS = 30_000


REAL_SCENE = "LC80200392015216LGN00"
"""The real Landsat city of the mapped home; every other layer is the synthetic map city's."""


def of_scene(layer: Layer, scene: str | None) -> bool:
    """Is the layer of ``scene`` (None: the synthetic map city)?"""
    real = layer.lineage.get("scene") == REAL_SCENE
    return real if scene == REAL_SCENE else not real


def layers_of(settings: Settings, group: str, scene: str | None = None) -> dict[str, Layer]:
    """The catalogue's layers of a map group and city, by role."""
    return {
        layer.role
        + (f"@{layer.lineage['params']['rainfall_mm']:g}" if group == "flood" else ""): layer
        for layer in LayerCatalogue(settings.layers_dir).layers()
        if layer.group == group and of_scene(layer, scene)
    }


def is_blank(png: bytes) -> bool:
    """A tile is blank when every pixel is transparent or all pixels are one colour."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))
    seen = pixels[pixels[..., 3] > 0]
    return len(seen) == 0 or len(np.unique(seen.reshape(-1, 4), axis=0)) < 2


def wait_for_tiles(page: Any, layer_ids: list[str]) -> None:
    """Until each layer has loaded tiles and no tile image is still pending."""
    page.wait_for_function(
        """(ids) => {
            const loaded = (id) => document.querySelectorAll(
                '.tiles-' + id + ' img.leaflet-tile-loaded').length;
            const pending = document.querySelectorAll(
                'img.leaflet-tile:not(.leaflet-tile-loaded):not(.tile-error)').length;
            return pending === 0 && ids.every((id) => loaded(id) > 0);
        }""",
        arg=layer_ids,
        timeout=TILE_WAIT_MS,
    )
    page.wait_for_load_state("networkidle")


def assert_tiles_good(watch: PageWatch, layer_ids: list[str]) -> None:
    assert watch.tile_responses, "no tile was requested"
    bad = [f"{r.status} {r.url}" for r in watch.tile_responses if r.status != 200]
    assert not bad, f"tile requests failed: {bad[:5]}"
    for layer_id in layer_ids:
        tiles = [r for r in watch.tile_responses if f"/layers/{layer_id}/tiles/" in r.url]
        assert tiles, f"no tile requested for {layer_id}"
        assert any(not is_blank(r.body()) for r in tiles), f"every tile of {layer_id} is blank"


def point_inside(page: Any, selector: str) -> tuple[float, float]:
    """Screen coordinates inside an element matching ``selector``, nearest the map's centre."""
    found = page.evaluate(
        """(selector) => {
            const map = document.getElementById('map').getBoundingClientRect();
            const cx = map.left + map.width / 2, cy = map.top + map.height / 2;
            const away = (el) => {
                const b = el.getBoundingClientRect();
                return Math.hypot(b.left + b.width / 2 - cx, b.top + b.height / 2 - cy);
            };
            const paths = [...document.querySelectorAll(selector)];
            paths.sort((a, b) => away(a) - away(b));
            for (const path of paths) {
                const box = path.getBoundingClientRect();
                for (let fy = 0.5; fy < 1; fy += 0.05) for (const s of [1, -1]) {
                    const y = box.top + box.height * (s > 0 ? fy : 1 - fy);
                    for (let fx = 0.05; fx < 1; fx += 0.05) {
                        const x = box.left + box.width * fx;
                        if (document.elementFromPoint(x, y) === path) return [x, y];
                    }
                }
            }
            return null;
        }""",
        selector,
    )
    assert found, f"no clickable point inside {selector}"
    return float(found[0]), float(found[1])


# ----- the map ------------------------------------------------------------------------


def test_heat_map_tiles_vectors_and_a_click_with_the_live_prediction(
    map_settings: Settings,
    mapped_home: TrainedHome,
    start_server: Callable[..., RunningProcess],
    open_page: OpenPage,
    screenshots: Path,
) -> None:
    heat = layers_of(map_settings, "heat")
    imagery = layers_of(map_settings, "imagery")["imagery"]
    server = serve(start_server, map_settings)
    page, watch = open_page()
    page.goto(f"{server.url}/map?view=heat")

    shown = [imagery.id, heat["prediction"].id]
    wait_for_tiles(page, shown)
    assert_tiles_good(watch, shown)
    # Every layer of the city is in the switcher (one city at a time); the defaults are on.
    listed = page.locator("[data-layer-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.layerId)"
    )
    catalogue = LayerCatalogue(map_settings.layers_dir).layers()
    assert set(listed) == {layer.id for layer in catalogue if of_scene(layer, None)}
    assert page.locator(f"#layer-{heat['prediction'].id}").is_checked()
    assert not page.locator(f"#layer-{heat['derived'].id}").is_checked()
    page.wait_for_selector("path.leaflet-interactive", timeout=10_000)
    assert page.locator("path.leaflet-interactive").count() >= 1, "hot spots not drawn"
    legend = page.locator(".map-legend")
    assert "Land-surface temperature" in legend.inner_text()
    assert "uhi v1" in legend.inner_text()  # the layer's model version is shown

    x, y = point_inside(page, "path.leaflet-interactive")
    page.mouse.click(x, y)
    live = page.locator(".leaflet-popup [data-testid=live-prediction]")
    live.wait_for(timeout=10_000)
    popup = page.locator(".leaflet-popup").inner_text()
    assert "Land-surface temperature" in popup and "layer (uhi v1):" in popup
    assert "live API (uhi v2 champion)" in popup
    assert "°C" in page.locator(".leaflet-popup [data-testid=point-value]").first.inner_text()
    assert "°C" in live.inner_text()
    assert page.locator(".leaflet-popup [data-testid=vector-properties]").count() == 1
    assert "live API" in page.locator("#point-info").inner_text()  # mirrored for screen readers

    # Switching a layer on requests its tiles too (UHI intensity).
    page.locator(f"#layer-{heat['derived'].id}").check()
    wait_for_tiles(page, [heat["derived"].id])
    assert_tiles_good(watch, [heat["derived"].id])
    page.locator(f"#layer-{heat['derived'].id}").uncheck()
    page.wait_for_timeout(300)
    page.screenshot(path=str(screenshots / "map-heat.png"))
    assert_offline_and_clean(watch)


def test_the_city_picker_shows_the_real_landsat_city_alone(
    map_settings: Settings,
    start_server: Callable[..., RunningProcess],
    open_page: OpenPage,
    screenshots: Path,
) -> None:
    real = layers_of(map_settings, "heat", REAL_SCENE)
    real_imagery = layers_of(map_settings, "imagery", REAL_SCENE)["imagery"]
    synthetic = layers_of(map_settings, "heat")["prediction"]
    server = serve(start_server, map_settings)
    page, watch = open_page()
    page.goto(f"{server.url}/map?view=heat")
    wait_for_tiles(page, [synthetic.id])
    page.locator("#scene-select").select_option(REAL_SCENE)
    shown = [real_imagery.id, real["prediction"].id]
    wait_for_tiles(page, shown)
    assert_tiles_good(watch, shown)
    assert f"scene={REAL_SCENE}" in page.url  # a link to this city
    listed = page.locator("[data-layer-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.layerId)"
    )
    assert real["prediction"].id in listed and synthetic.id not in listed
    assert page.locator(f".tiles-{synthetic.id}").count() == 0  # the other city is off
    box = page.locator("#map").bounding_box()  # the map is fitted to this city
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.locator(".leaflet-popup [data-testid=live-prediction]").wait_for(timeout=10_000)
    assert "°C" in page.locator(".leaflet-popup [data-testid=point-value]").first.inner_text()
    page.keyboard.press("Escape")
    page.wait_for_timeout(300)
    page.screenshot(path=str(screenshots / "map-real-city.png"))
    # Opening the link itself shows the same city.
    page.goto(f"{server.url}/map?view=heat&scene={REAL_SCENE}")
    wait_for_tiles(page, shown)
    assert page.locator("#scene-select").input_value() == REAL_SCENE
    assert_offline_and_clean(watch)


def test_the_map_opens_on_the_city_the_server_is_set_to(
    map_settings: Settings,
    start_server: Callable[..., RunningProcess],
    open_page: OpenPage,
) -> None:
    """TERRAOPS_MAP_SCENE picks the opening city where it has layers of the view (the
    demo opens on a real city); the flood view, which it has none of, keeps the first."""
    real = layers_of(map_settings, "heat", REAL_SCENE)["prediction"]
    flood = layers_of(map_settings, "flood")
    server = start_server(
        map_settings, workers=1, TERRAOPS_ADMIN_TOKEN="t" * 24, TERRAOPS_MAP_SCENE=REAL_SCENE
    )
    page, watch = open_page()
    page.goto(f"{server.url}/map?view=heat")
    wait_for_tiles(page, [real.id])
    assert page.locator("#scene-select").input_value() == REAL_SCENE
    page.goto(f"{server.url}/map?view=flood")
    wait_for_tiles(page, [flood["prediction@50"].id])
    assert page.locator("#scene-select").input_value() != REAL_SCENE
    assert_offline_and_clean(watch)


def test_flood_map_storm_selector_flooded_areas_and_live_probability(
    map_settings: Settings,
    start_server: Callable[..., RunningProcess],
    open_page: OpenPage,
    screenshots: Path,
) -> None:
    flood = layers_of(map_settings, "flood")
    imagery = layers_of(map_settings, "imagery")["imagery"]
    server = serve(start_server, map_settings)
    page, watch = open_page()
    page.goto(f"{server.url}/map?view=flood")

    wait_for_tiles(page, [imagery.id, flood["prediction@50"].id])
    storms = page.locator("#storm-select option").all_inner_texts()
    assert storms == ["50 mm", "100 mm"]
    assert page.locator(f"#layer-{flood['prediction@50'].id}").is_checked()
    assert not page.locator(f"#layer-{flood['prediction@100'].id}").is_checked()

    page.select_option("#storm-select", "100")
    assert page.locator(f"#layer-{flood['prediction@100'].id}").is_checked()
    assert not page.locator(f"#layer-{flood['prediction@50'].id}").is_checked()
    wait_for_tiles(page, [imagery.id, flood["prediction@100"].id])
    assert_tiles_good(watch, [imagery.id, flood["prediction@50"].id, flood["prediction@100"].id])
    flooded = flood["flooded@100"]
    if flooded.stats.get("polygons"):
        page.wait_for_selector("path.leaflet-interactive", timeout=10_000)

    box = page.locator("#map").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.55)
    live = page.locator(".leaflet-popup [data-testid=live-prediction]")
    live.wait_for(timeout=10_000)
    popup = page.locator(".leaflet-popup").inner_text()
    assert "live API (flood v1 champion)" in popup
    assert "Flood probability" in popup and "layer (flood v1):" in popup
    assert "%" in live.inner_text()
    page.wait_for_timeout(300)
    page.screenshot(path=str(screenshots / "map-flood.png"))
    assert_offline_and_clean(watch)


def test_map_without_layers_says_so_without_errors(
    map_settings: Settings,
    start_server: Callable[..., RunningProcess],
    open_page: OpenPage,
) -> None:
    (map_settings.layers_dir / "catalogue.json").unlink()
    server = serve(start_server, map_settings)
    page, watch = open_page()
    page.goto(f"{server.url}/map?view=heat")
    message = page.locator(".map-empty")
    message.wait_for(timeout=10_000)
    assert "No map layers yet" in message.inner_text()
    assert "terraops predict-raster" in page.locator("#map-status").inner_text()
    page.wait_for_load_state("networkidle")
    assert watch.tile_responses == []
    assert_offline_and_clean(watch)
