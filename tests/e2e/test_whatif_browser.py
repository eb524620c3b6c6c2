"""What-if on the map in a real browser: draw an area, run it, read the table, swipe, and why.

Against a real ``terraops serve`` on a home with a trained UHI champion and the
synthetic map city's layers: a polygon is drawn with real mouse clicks through
the offline drawing tool, ``POST /v1/uhi/whatif`` recomputes the city with
trees planted there, the table and the Δ layer's tiles come back, the swipe
compares today's map with the change, and a click on the map shows the cell's
explanation. Nothing leaves 127.0.0.1 and the console stays clean. The README's
what-if screenshot and animation are taken here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from browser_support import PageWatch, Recording, assert_offline_and_clean, serve
from playwright.sync_api import expect
from test_pages_browser import assert_tiles_good, layers_of, wait_for_tiles

from serving_support import RunningProcess
from terraops.adapters.catalogue import LayerCatalogue
from terraops.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

OpenPage = Callable[[], tuple[Any, PageWatch]]
RUN_WAIT_MS = 90_000
SQUARE_PX = 140
"""Side of the drawn area on screen: about 20 ha of the 3 km map city at the fitted zoom."""


def open_heat_map(page: Any, server: RunningProcess, settings: Settings) -> None:
    """The heat view with its tiles loaded and the what-if panel shown."""
    page.goto(f"{server.url}/map?view=heat")
    heat = layers_of(settings, "heat")["prediction"]
    wait_for_tiles(page, [heat.id])
    page.locator("#whatif").wait_for(state="visible", timeout=10_000)


def draw_square(page: Any, recording: Recording | None = None) -> None:
    """Draw a square on the map city's land with real clicks (clear of the legend);
    a ``recording`` gets a frame per corner."""
    box = page.locator("#map").bounding_box()
    assert box is not None
    cx, cy = box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.38
    half = SQUARE_PX / 2
    corners = [(cx + sx * half, cy + sy * half) for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    page.locator("#whatif-draw").click()
    for x, y in corners:
        page.mouse.click(x, y)
        page.wait_for_timeout(150)
        if recording is not None:
            recording.frame(500)
    page.mouse.click(*corners[0])  # clicking the first corner closes the shape


def wait_for_run(page: Any) -> None:
    """Until the run has answered: its table is shown or the status says why not."""
    page.wait_for_function(
        """() => document.querySelector('[data-testid=whatif-table]') !== null
            || document.getElementById('whatif-status').textContent.includes('not run')""",
        timeout=RUN_WAIT_MS,
    )


def whatif_layers(settings: Settings) -> dict[str, Any]:
    """The catalogue's what-if layers, by role."""
    return {
        layer.role: layer
        for layer in LayerCatalogue(settings.layers_dir).layers()
        if layer.role.startswith("whatif")
    }


def test_draw_plant_trees_run_and_see_the_change_the_table_and_why(
    map_settings: Settings,
    start_server: Callable[..., RunningProcess],
    open_page: OpenPage,
    screenshots: Path,
) -> None:
    server = serve(start_server, map_settings)
    page, watch = open_page()
    open_heat_map(page, server, map_settings)
    # The drawing tool is served by this server, like Leaflet.
    assert page.evaluate("typeof L.Draw.Polygon") == "function"
    recording = Recording(page)  # the README's animation: one frame per step
    recording.frame(1500)

    page.select_option("#whatif-kind", "tree_planting")
    page.fill("#whatif-param-canopy", "0.8")
    draw_square(page, recording)
    areas = page.locator("#whatif-areas li")
    areas.first.wait_for(timeout=5_000)
    assert areas.count() == 1
    assert "Plant trees" in areas.first.inner_text() and "canopy 0.8" in areas.first.inner_text()
    assert page.locator(".leaflet-popup").count() == 0, "a click that draws must not read the map"
    drawn = page.locator("path.leaflet-interactive")
    assert drawn.count() >= 1
    recording.frame(1200)

    page.locator("#whatif-run").click()
    recording.frame(800)
    wait_for_run(page)
    table = page.locator("[data-testid=whatif-table]")
    assert table.count() == 1, page.locator("#whatif-status").inner_text()
    text = (table.text_content() or "").replace("\u00a0", " ")
    assert "area-1" in text and "Plant trees" in text
    for label in ("Mean Δ inside", "90 % interval", "Ring 0–100 m", "Ring 100–250 m", "Drivers"):
        assert label in text
    assert " K" in text  # the Δ of a temperature is in kelvin
    assert "Done in" in page.locator("#whatif-status").inner_text()

    made = whatif_layers(map_settings)
    delta = made["whatif"]
    assert page.locator(f"#layer-{delta.id}").is_checked()
    wait_for_tiles(page, [delta.id])
    assert_tiles_good(watch, [delta.id])
    assert "after − before" in page.locator(".map-legend").inner_text()
    recording.frame(2500)  # the cooling on the map

    page.locator("#whatif-swipe").check()
    page.locator("[data-testid=swipe]").wait_for(timeout=5_000)
    swiped = made.get("whatif-after", delta)  # the map after the change, else the Δ
    clip = page.evaluate("(id) => document.querySelector('.tiles-' + id).style.clip", swiped.id)
    assert clip.startswith("rect("), "the after layer is not clipped to the right of the divider"
    page.locator(".swipe-range").fill("350")  # the divider left of the drawn area
    moved = page.evaluate("(id) => document.querySelector('.tiles-' + id).style.clip", swiped.id)
    assert moved != clip, "moving the divider does not move the clip"
    recording.frame(2500)  # before | after

    # Why is it hot here: a click left of the divider (today's map) explains the cell.
    box = page.locator("#map").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.85)
    waterfall = page.locator(".leaflet-popup [data-testid=waterfall]")
    waterfall.wait_for(timeout=10_000)
    assert waterfall.locator(".wf-row").count() >= 4  # typical cell, drivers, this cell
    assert "Vegetation" in waterfall.inner_text()  # grouped into the drivers a planner reads
    sentence = page.locator(".leaflet-popup [data-testid=explain-sentence]").inner_text()
    assert len(sentence) > 20 and sentence.endswith(".")
    recording.frame(3000)  # why this cell is hot
    table.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    page.screenshot(path=str(screenshots / "map-whatif.png"))
    recording.frame(3500)  # the cooling in numbers: interval, spillover rings, drivers
    recording.save(screenshots / "demo-whatif.webp")
    assert_offline_and_clean(watch)


def test_an_uploaded_scenario_with_a_mistake_is_refused_by_feature_and_field(
    map_settings: Settings,
    start_server: Callable[..., RunningProcess],
    open_page: OpenPage,
) -> None:
    server = serve(start_server, map_settings)
    page, watch = open_page()
    open_heat_map(page, server, map_settings)
    centre = page.evaluate("(({lng, lat}) => [lng, lat])(terraops.mapPage.map.getCenter())")
    lon, lat, d = centre[0], centre[1], 0.001
    signs = ((-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1))
    ring = [[lon + sx * d, lat + sy * d] for sx, sy in signs]
    scenario = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"intervention": "paint_it_green"},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        ],
    }
    page.set_input_files(
        "#whatif-file",
        files=[
            {
                "name": "plan.geojson",
                "mimeType": "application/geo+json",
                "buffer": json.dumps(scenario).encode(),
            }
        ],
    )
    # The page reads the file asynchronously: wait for it to say so (5 s at most).
    expect(page.locator("#whatif-status")).to_contain_text("1 area loaded", timeout=5_000)
    page.locator("#whatif-run").click()
    wait_for_run(page)
    message = page.locator("#whatif-status").inner_text()
    assert "422" in message and "feature 0" in message and "intervention" in message
    assert page.locator("[data-testid=whatif-table]").count() == 0
    assert whatif_layers(map_settings) == {}, "a refused scenario must write nothing"
    # The browser logs the refused request itself; nothing else may be in the console.
    assert_offline_and_clean(watch, "422")
