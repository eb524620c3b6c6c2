"""``POST /v1/segment`` in-process against a real MLflow store and a tiny trained U-Net.

A tiny model (one short epoch, as in ``test_segmentation_pipeline``) is
trained and promoted through the CLI; the app is built with ``create_app``
and called with FastAPI's ``TestClient``. The model is far too small to be
good: the checks are the contract (GeoJSON in EPSG:4326, lineage, statuses
and messages), and that the route gives the same polygons as
``terraops segment predict --image`` on the same file.
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
from fastapi.testclient import TestClient

from segmentation_support import invoke, train_tiny
from terraops.api.app import create_app
from terraops.api.model_holder import ChampionWatcher, ModelHolder
from terraops.api.routes_segment import SegmenterSource, load_segmenter
from terraops.errors import RegistryUnavailableError
from terraops.services.segmentation import SEGMENTATION
from terraops.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BANDS = ("red", "green", "blue", "nir", "swir")


@pytest.fixture(scope="module")
def home(tiny_scenes: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A home whose segmentation champion is a tiny U-Net (v1), and a GeoTIFF to upload."""
    settings = Settings(home=tmp_path_factory.mktemp("segapi") / "home", user="tester")
    train_dir, val_dir = tiny_scenes
    train_tiny(settings, train_dir, val_dir, promote=True)
    files = tmp_path_factory.mktemp("uploads")
    return {"settings": settings, "scene": val_dir, "files": files}


def _write_tif(
    path: Path,
    scene_dir: Path,
    *,
    bands: int = 5,
    described: bool = True,
    crs: bool = True,
    size: int | None = None,
) -> Path:
    from terraops.pipelines.segmentation.data import load_scene

    scene = load_scene(scene_dir)
    image = scene.image[:bands]
    if size is not None:
        image = image[:, :size, :size]
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": image.shape[2],
        "height": image.shape[1],
        "count": bands,
        "dtype": "float32",
        "transform": scene.transform,
    }
    if crs:
        profile["crs"] = scene.crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(image.astype(np.float32))
        if described:
            for i, name in enumerate(BANDS[:bands], start=1):
                dst.set_band_description(i, name)
    return path


def _client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, holders={}, watch=False)) as client:
        yield client


@pytest.fixture(scope="module")
def client(home: dict[str, Any]) -> Iterator[TestClient]:
    yield from _client(home["settings"])


def _upload(client: TestClient, path: Path, query: str = "", **form: str) -> Any:
    with path.open("rb") as f:
        return client.post(
            f"/v1/segment{query}", files={"image": (path.name, f, "image/tiff")}, data=form
        )


def _layer_files(settings: Settings) -> list[str]:
    root = settings.layers_dir
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_geotiff_gives_wgs84_polygons_with_lineage(
    home: dict[str, Any], client: TestClient
) -> None:
    settings = home["settings"]
    layers_before = _layer_files(settings)
    tif = _write_tif(home["files"] / "city.tif", home["scene"])
    response = _upload(client, tif)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/geo+json")
    assert response.headers["X-Model-Name"] == "segmentation"
    assert response.headers["X-Model-Version"] == "1"
    assert response.headers["X-Model-Alias"] == "champion"
    body = response.json()
    assert body["type"] == "FeatureCollection"
    assert body["model"]["name"] == "segmentation" and body["model"]["version"] == 1
    features = body["features"]
    assert features, "no polygon predicted"
    from pyproj import Transformer
    from shapely.geometry import shape

    with rasterio.open(tif) as src:
        west, south, east, north = Transformer.from_crs(
            src.crs, "EPSG:4326", always_xy=True
        ).transform_bounds(*src.bounds)
    for feature in features:
        props = feature["properties"]
        assert props["class"] in {"building", "water", "tree"}
        assert props["model_name"] == "segmentation" and props["model_version"] == 1
        assert props["area_m2"] >= 8.0 and 0.0 <= props["score"] <= 1.0
        geometry = shape(feature["geometry"])
        assert geometry.is_valid
        lon, lat = geometry.representative_point().coords[0]
        assert west - 1e-4 <= lon <= east + 1e-4 and south - 1e-4 <= lat <= north + 1e-4

    # The same polygons as the CLI on the same file (the one sliding-window path).
    out = home["files"] / "cli"
    cli = invoke(
        settings,
        "segment", "predict", "--image", str(tif), "--engine", "onnx", "--no-layers",
        "--out-mask", str(out / "mask.tif"), "--out-vector", str(out / "poly.geojson"),
    )  # fmt: skip
    assert cli.exit_code == 0, cli.output
    expected = json.loads((out / "poly.geojson").read_text())["features"]
    key = lambda f: (f["properties"]["class"], round(f["properties"]["area_m2"], 3))  # noqa: E731
    assert sorted(map(key, features)) == sorted(map(key, expected))
    # An upload is not a catalogue layer: nothing new under the home's layers.
    assert _layer_files(settings) == layers_before


def test_band_order_field_and_torch_engine(home: dict[str, Any], client: TestClient) -> None:
    tif = _write_tif(home["files"] / "plain.tif", home["scene"], described=False)
    missing = _upload(client, tif)
    assert missing.status_code == 422
    assert "cannot find bands" in missing.json()["message"]
    assert "band_order" in missing.json()["hint"]
    onnx = _upload(client, tif, band_order="red, green, blue, nir, swir")
    assert onnx.status_code == 200, onnx.text
    torch = _upload(client, tif, "?engine=torch", band_order="red,green,blue,nir,swir")
    assert torch.status_code == 200, torch.text
    assert torch.headers["X-Segment-Engine"] == "torch"
    assert abs(len(torch.json()["features"]) - len(onnx.json()["features"])) <= 2
    bad = _upload(client, tif, "?engine=tensorflow")
    assert bad.status_code == 422 and "engine" in bad.text


def test_three_band_geotiff_is_422_naming_the_missing_bands(
    home: dict[str, Any], client: TestClient
) -> None:
    tif = _write_tif(home["files"] / "rgb.tif", home["scene"], bands=3)
    response = _upload(client, tif)
    assert response.status_code == 422
    body = response.json()
    assert "cannot find bands" in body["message"] and "nir" in body["message"]
    assert "swir" in body["message"] and "'rgb.tif'" in body["message"]
    assert str(home["files"]) not in body["message"]  # no server paths in messages


def test_geotiff_without_crs_is_422(home: dict[str, Any], client: TestClient) -> None:
    tif = _write_tif(home["files"] / "nocrs.tif", home["scene"], crs=False)
    response = _upload(client, tif)
    assert response.status_code == 422
    assert "has no CRS" in response.json()["message"]


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_png_garbage_and_non_multipart_are_415(home: dict[str, Any], client: TestClient) -> None:
    png = home["files"] / "picture.png"
    with rasterio.open(png, "w", driver="PNG", width=16, height=16, count=3, dtype="uint8") as dst:
        dst.write(np.zeros((3, 16, 16), dtype=np.uint8))
    response = _upload(client, png)
    assert response.status_code == 415
    assert "PNG" in response.json()["message"] and "not a GeoTIFF" in response.json()["message"]

    garbage = home["files"] / "garbage.tif"
    garbage.write_bytes(b"this is not an image at all" * 10)
    response = _upload(client, garbage)
    assert response.status_code == 415
    assert "not a readable GeoTIFF" in response.json()["message"]

    # A VRT names other files (or URLs) for GDAL to read: it must be refused unparsed.
    secret = home["files"] / "elsewhere.tif"
    secret.write_bytes(garbage.read_bytes())
    vrt = home["files"] / "pointer.tif"
    vrt.write_text(
        f'<VRTDataset rasterXSize="16" rasterYSize="16"><VRTRasterBand dataType="Byte" band="1">'
        f"<SimpleSource><SourceFilename>{secret}</SourceFilename></SimpleSource>"
        "</VRTRasterBand></VRTDataset>"
    )
    response = _upload(client, vrt)
    assert response.status_code == 415
    assert "GDAL VRT" in response.json()["message"]

    response = client.post("/v1/segment", json={"image": "scene.tif"})
    assert response.status_code == 415
    assert "multipart/form-data" in response.json()["message"]

    only_bands = {"band_order": (None, "red,green,blue,nir,swir")}
    response = client.post("/v1/segment", files=only_bands)  # multipart without the file
    assert response.status_code == 422
    assert "form field 'image'" in response.json()["message"] and "missing" in response.text


def _chunked_form(path: Path, boundary: str) -> Iterator[bytes]:
    """A multipart body with the file as form field ``image``, sent without a length."""
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
        f'filename="{path.name}"\r\nContent-Type: image/tiff\r\n\r\n'
    ).encode()
    payload = path.read_bytes()
    for i in range(0, len(payload), 16384):
        yield payload[i : i + 16384]
    yield f"\r\n--{boundary}--\r\n".encode()


def test_limits_are_413_and_422_naming_the_settings(home: dict[str, Any], tmp_path: Path) -> None:
    settings = home["settings"].model_copy(
        update={"segment_max_upload_mb": 0.1, "segment_max_pixels": 1000}
    )
    big = _write_tif(tmp_path / "big.tif", home["scene"])  # 256² × 5 float32 ≈ 1.3 MB
    small = _write_tif(tmp_path / "small.tif", home["scene"], size=40)  # 1600 px, ≈ 33 kB
    for client in _client(settings):
        response = _upload(client, big)  # Content-Length says it all
        assert response.status_code == 413
        body = response.json()
        assert "0.1 MB" in body["message"]
        assert "TERRAOPS_SEGMENT_MAX_UPLOAD_MB" in body["hint"]

        # No Content-Length (chunked): the limit holds while reading.
        boundary = "terraopsboundary"
        response = client.post(
            "/v1/segment",
            content=_chunked_form(big, boundary),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert response.status_code == 413, response.text
        assert "0.1 MB" in response.json()["message"]

        response = _upload(client, small)
        assert response.status_code == 422
        message = response.json()["message"]
        assert "1,600 pixels" in message and "1,000" in message
        assert "TERRAOPS_SEGMENT_MAX_PIXELS" in response.json()["hint"]


def test_no_champion_is_503(home: dict[str, Any], tmp_path: Path) -> None:
    empty = Settings(home=tmp_path / "empty", user="tester")
    tif = _write_tif(tmp_path / "city.tif", home["scene"], size=64)
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"\x00not a tiff" * 50)
    for client in _client(empty):
        response = _upload(client, tif)
        assert response.status_code == 503
        body = response.json()
        assert body["error"] == "model_not_ready" and "segmentation" in body["message"]
        assert "terraops promote segmentation" in body["hint"]
        # A bad upload is the caller's error whether or not a model is there.
        assert _upload(client, garbage).status_code == 415
    assert _layer_files(empty) == []


def test_openapi_documents_the_upload(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/segment"]["post"]
    form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["image"] and set(form["properties"]) == {"image", "band_order"}
    assert {"200", "413", "415", "422", "503"} <= set(operation["responses"])


class FlakyRegistry:
    """The real registry, with an outage switch and a count of alias reads."""

    def __init__(self, real: Any) -> None:
        self.real, self.down, self.alias_reads = real, False, 0

    def get_aliases(self, name: str) -> dict[str, int]:
        self.alias_reads += 1
        if self.down:
            raise RegistryUnavailableError("registry down (test)")
        return self.real.get_aliases(name)

    def fetch_model(self, name: str, version: int) -> Path:
        return self.real.fetch_model(name, version)

    def get_version(self, name: str, version: int) -> Any:
        return self.real.get_version(name, version)


def _segmenters(registry: FlakyRegistry, cache: Path) -> SegmenterSource:
    """The segmenter as the app wires it: an on-demand holder of the one watcher."""
    holder = ModelHolder(SEGMENTATION, loader=load_segmenter)
    watcher = ChampionWatcher({}, registry, load_segmenter, cache_dir=cache, poll_interval_s=3600)
    watcher.follow_on_demand(holder)
    return SegmenterSource(holder, watcher)


def test_segmenter_follows_the_watcher_and_survives_an_outage(
    home: dict[str, Any], tmp_path: Path
) -> None:
    from terraops.adapters.registry import ModelRegistry

    registry = FlakyRegistry(ModelRegistry(home["settings"]))
    segmenters = _segmenters(registry, tmp_path / "cache")
    segmenters.watcher.poll_once()
    assert registry.alias_reads == 0  # on demand: nothing asked before the first request
    first, lineage = segmenters.get("onnx")
    assert segmenters.get("onnx")[0] is first and registry.alias_reads == 1  # alias read once
    assert lineage["version"] == 1 and lineage["run_id"]

    registry.down = True
    segmenters.watcher.poll_once()
    assert segmenters.get("onnx")[0] is first  # keeps serving the last good champion
    with pytest.raises(RegistryUnavailableError):  # → 503: nothing loaded yet
        _segmenters(registry, tmp_path / "other").get("onnx")


def test_champion_change_is_picked_up(home: dict[str, Any]) -> None:
    """Run last: moves the champion to v2 (same weights) and back."""
    from mlflow.tracking import MlflowClient

    settings = home["settings"].model_copy(update={"poll_interval_s": 0.05})
    tif = _write_tif(home["files"] / "swap.tif", home["scene"], size=96)
    for client in _client(settings):
        assert _upload(client, tif).headers["X-Model-Version"] == "1"
        uri = settings.tracking_uri
        mlflow = MlflowClient(tracking_uri=uri, registry_uri=uri)
        original = mlflow.get_model_version("segmentation", "1")
        assert original.source is not None
        v2 = mlflow.create_model_version("segmentation", original.source, original.run_id).version
        promoted = invoke(settings, "promote", "segmentation", "--version", str(v2), "--force")
        assert promoted.exit_code == 0, promoted.output
        deadline = time.monotonic() + 30  # the watcher's next poll (every 0.05 s) fetches v2
        response = _upload(client, tif)
        while response.headers.get("X-Model-Version") != str(v2) and time.monotonic() < deadline:
            time.sleep(0.05)
            response = _upload(client, tif)
        assert response.status_code == 200, response.text
        assert response.headers["X-Model-Version"] == str(v2)
        assert {f["properties"]["model_version"] for f in response.json()["features"]} <= {int(v2)}
        assert invoke(settings, "rollback", "segmentation", "--reason", "test").exit_code == 0
