"""``segment predict --dask``: the model on real Dask workers, the same mask as in-process.

A tiny U-Net is trained and promoted through the CLI; a real ``dask scheduler``
and two ``dask worker`` processes run on loopback; the 512 × 512 scene's mask
predicted through them (and through ``--dask local``) must equal the
in-process mask exactly, with the same polygons. An unreachable scheduler is a
clear error (exit 5) and writes nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from dask_support import dask_cluster
from segmentation_support import invoke, train_tiny
from serving_support import free_port, report
from terraops.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def trained(tiny_scenes: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A home whose segmentation champion is a tiny U-Net, and a 512 × 512 scene."""
    from terraops.pipelines.scenes.generate import generate_scene

    root = tmp_path_factory.mktemp("seg-dask")
    settings = Settings(home=root / "home", user="tester")
    train_dir, val_dir = tiny_scenes
    train_tiny(settings, train_dir, val_dir, promote=True)
    scene = root / "scene512"
    generate_scene(scene, seed=3, size=512, resolution=4.0, morphology="dense")
    return {"settings": settings, "scene": scene, "root": root}


def predict(settings: Settings, scene: Path, out: Path, *extra: str) -> tuple[Any, dict[str, Any]]:
    result = invoke(
        settings,
        "segment", "predict", "--scene", str(scene), "--out-mask", str(out / "mask.tif"),
        "--out-vector", str(out / "polygons.geojson"), "--no-layers", "--json", *extra,
    )  # fmt: skip
    return result, (json.loads(result.stdout) if result.exit_code == 0 else {})


def read_mask(path: str | Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def n_polygons(path: str | Path) -> int:
    return len(json.loads(Path(path).read_text())["features"])


@pytest.fixture(scope="module")
def single(trained: dict[str, Any]) -> dict[str, Any]:
    """The in-process prediction every cluster run is compared with."""
    out = trained["root"] / "single"
    result, body = predict(trained["settings"], trained["scene"], out)
    assert result.exit_code == 0, result.output
    assert "dask" not in body
    return body


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``dask scheduler`` and two single-threaded ``dask worker`` processes."""
    with dask_cluster(tmp_path_factory.mktemp("dask-logs")) as cluster:
        yield cluster.address


def test_remote_workers_give_the_in_process_mask(
    trained: dict[str, Any], single: dict[str, Any], scheduler: str
) -> None:
    out = trained["root"] / "remote"
    result, body = predict(trained["settings"], trained["scene"], out, "--dask", scheduler)
    assert result.exit_code == 0, result.output
    assert body["dask"] == {"scheduler": scheduler, "workers": 2}
    assert np.array_equal(read_mask(body["mask"]), read_mask(single["mask"]))
    assert body["class_pixels"] == single["class_pixels"]
    assert body["polygons"] == single["polygons"]
    assert n_polygons(body["vector"]) == n_polygons(single["vector"])


def test_the_setting_is_the_default_and_none_turns_it_off(
    trained: dict[str, Any], single: dict[str, Any], scheduler: str
) -> None:
    settings = trained["settings"].model_copy(update={"dask_scheduler": scheduler})
    result, body = predict(settings, trained["scene"], trained["root"] / "setting")
    assert result.exit_code == 0, result.output
    assert body["dask"]["scheduler"] == scheduler
    assert np.array_equal(read_mask(body["mask"]), read_mask(single["mask"]))
    result, body = predict(settings, trained["scene"], trained["root"] / "off", "--dask", "none")
    assert result.exit_code == 0, result.output
    assert "dask" not in body


def test_local_cluster_gives_the_in_process_mask(
    trained: dict[str, Any], single: dict[str, Any]
) -> None:
    out = trained["root"] / "local"
    result, body = predict(trained["settings"], trained["scene"], out, "--dask", "local")
    assert result.exit_code == 0, result.output
    assert body["dask"] == {"scheduler": "local", "workers": 2}
    assert np.array_equal(read_mask(body["mask"]), read_mask(single["mask"]))
    assert body["polygons"] == single["polygons"]
    assert n_polygons(body["vector"]) == n_polygons(single["vector"])
    report(
        "segment_dask_512",
        {
            "single_inference_s": single["seconds"]["inference"],
            "single_total_s": single["seconds"]["total"],
            "local2_inference_s": body["seconds"]["inference"],
            "local2_total_s": body["seconds"]["total"],
        },
    )


def test_map_batches_keeps_order_and_bounds_what_is_in_flight(scheduler: str) -> None:
    from terraops.adapters.dask_runner import connect

    drawn: list[int] = []

    def batches() -> Iterator[int]:
        for i in range(12):
            drawn.append(i)
            yield i

    with connect(scheduler) as runner:
        seen: list[int] = []
        for result in runner.map_batches(lambda x: x * x, batches(), max_in_flight=3):
            assert len(drawn) <= len(seen) + 3  # never more than 3 submitted and not yielded
            seen.append(result)
    assert seen == [i * i for i in range(12)]


def test_unreachable_scheduler_is_a_clear_error_and_writes_nothing(
    trained: dict[str, Any],
) -> None:
    out = trained["root"] / "unreachable"
    started = time.monotonic()
    address = f"tcp://127.0.0.1:{free_port()}"
    result, _ = predict(trained["settings"], trained["scene"], out, "--dask", address)
    assert result.exit_code == 5, result.output
    assert "cannot reach the Dask scheduler" in result.output and "hint" in result.output
    assert time.monotonic() - started < 40
    assert not (out / "mask.tif").exists() and not (out / "polygons.geojson").exists()
