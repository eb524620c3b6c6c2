"""Footprints on the map in a real browser: a U-Net champion's polygons over the map city.

A small U-Net is trained and made champion on a copy of the mapped home, then
``segment_image`` (the code of ``terraops segment predict``) turns the map
city into a mask and polygons registered as map layers, as ``make demo`` does.
The page lists them with the other layers, draws the polygons from the
server's GeoJSON, and stays offline and clean. The README's footprints
animation is recorded here.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from browser_support import PageWatch, Recording, assert_offline_and_clean, serve
from test_pages_browser import layers_of, wait_for_tiles

from segmentation_support import invoke
from serving_support import RunningProcess, TrainedHome
from terraops.adapters.catalogue import LayerCatalogue
from terraops.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

OpenPage = Callable[[], tuple[Any, PageWatch]]
#: Enough training for water and trees (and some buildings) to come out as polygons,
#: in well under a minute: the demo's model is bigger, this one only has to draw.
SMALL_UNET = [
    "--epochs", "3",
    "--param", "block=standard",  # as in segmentation_support.TINY_TRAINING
    "--param", "base_width=8",
    "--param", "depth=2",
    "--param", "chips_per_epoch=24",
    "--param", "chip=96",
    "--param", "batch_size=4",
]  # fmt: skip


@pytest.fixture(scope="module")
def footprints_home(
    mapped_home: TrainedHome,
    map_scene: Path,
    tiny_scenes: list[Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    """The mapped home with a U-Net champion and its footprints of the map city."""
    from terraops.pipelines.segmentation.scene_predict import segment_image

    home = tmp_path_factory.mktemp("footprints") / "home"
    shutil.copytree(mapped_home.path, home, ignore=shutil.ignore_patterns("*.lock"))
    settings = Settings(home=home, user="e2e", poll_interval_s=0.3, registry_timeout_s=1.0)
    train = ["segment", "train", "--scenes", str(map_scene), "--val-scenes", str(tiny_scenes[0])]
    trained = invoke(settings, *train, *SMALL_UNET, "--device", "cpu", "--json")
    assert trained.exit_code == 0, trained.output
    promoted = invoke(settings, "promote", "segmentation", "--challenger", "--force")
    assert promoted.exit_code == 0, promoted.output
    segment_image(settings, scene=map_scene, progress=False)
    return settings


def test_the_footprints_layer_draws_the_champions_polygons_on_the_map(
    footprints_home: Settings,
    start_server: Callable[..., RunningProcess],
    open_page: OpenPage,
    screenshots: Path,
) -> None:
    made = {
        layer.kind: layer
        for layer in LayerCatalogue(footprints_home.layers_dir).layers()
        if layer.group == "footprints"
    }
    assert set(made) == {"raster", "vector"}, made  # the class mask and its polygons
    layer, classes = made["vector"], made["raster"]
    heat = layers_of(footprints_home, "heat")
    server = serve(start_server, footprints_home)
    page, watch = open_page()
    page.goto(f"{server.url}/map?view=heat")
    wait_for_tiles(page, [heat["prediction"].id])
    recording = Recording(page)
    recording.frame(1500)

    page.locator("details.other-layers summary").click()
    checkbox = page.locator(f"#layer-{layer.id}")
    checkbox.wait_for(timeout=10_000)
    recording.frame(1200)
    shapes = "document.querySelectorAll('#map path.leaflet-interactive').length"
    before = page.evaluate(shapes)
    checkbox.check()
    page.wait_for_function(  # the polygons are drawn as SVG paths on the map
        f"(n) => {shapes} > n + 10", arg=before, timeout=30_000
    )
    page.wait_for_load_state("networkidle")
    recording.frame(2000)
    for heat_layer in heat.values():  # the footprints over the imagery alone, then classes
        if page.locator(f"#layer-{heat_layer.id}").is_checked():
            page.locator(f"#layer-{heat_layer.id}").uncheck()
    page.wait_for_load_state("networkidle")
    recording.frame(2000)
    page.locator(f"#layer-{classes.id}").check()
    wait_for_tiles(page, [classes.id])
    recording.frame(2500)
    for _ in range(2):  # closer, to see single footprints
        page.evaluate("terraops.mapPage.map.zoomIn(1, {animate: false})")
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(400)
        recording.frame(2000)
    recording.save(screenshots / "demo-footprints.webp")
    assert_offline_and_clean(watch)
