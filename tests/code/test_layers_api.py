"""Map layers over HTTP: tiles, points, downloads and STAC, all by catalogue id.

Tiny COGs are made by code in tmp (a 128×128 float32 prediction in EPSG:32632
and a 3-band uint8 RGB image), registered in a catalogue under a tmp home, and
served by the real router. The security tests spy on every file open: a path
or URL smuggled into a request must be refused *before* anything is read.
"""

from __future__ import annotations

import io
import json
import pathlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import morecantile
import numpy as np
import pandas as pd
import pytest
import rasterio
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from PIL import Image
from rasterio.transform import from_origin
from rasterio.warp import transform as warp_transform
from rasterio.warp import transform_bounds

from terraops.adapters.catalogue import LayerCatalogue, file_fingerprint
from terraops.adapters.cog import convert_to_cog
from terraops.adapters.tile_cache import TileCache, TileKey
from terraops.api.errors import install_error_handlers
from terraops.api.routes_layers import layers_router
from terraops.api.routes_stac import stac_router
from terraops.domain.layers import Layer
from terraops.settings import Settings

SIZE = 128
ORIGIN = (500_000.0, 5_000_000.0)  # UTM 32N, ~45° N 9° E
RES = 20.0
NODATA = -9999.0
LST = "uhi-lst-city1"
RGB = "scene-city1-rgb"
HOT = "uhi-hotspots-city1"


def _values() -> np.ndarray:
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    values = (20.0 + 0.1 * rows + 0.05 * cols).astype(np.float32)
    values[:8, :8] = NODATA  # a nodata corner
    return values


def _write_cog(tmp: Path, name: str, data: np.ndarray, nodata: float | None) -> Path:
    plain = tmp / f"{name}.plain.tif"
    profile = {
        "driver": "GTiff",
        "width": SIZE,
        "height": SIZE,
        "count": data.shape[0],
        "dtype": str(data.dtype),
        "crs": "EPSG:32632",
        "transform": from_origin(*ORIGIN, RES, RES),
        "nodata": nodata,
    }
    with rasterio.open(plain, "w", **profile) as dst:
        dst.write(data)
    out = tmp / "layers" / f"{name}.tif"
    convert_to_cog(plain, out)
    plain.unlink()
    return out


def _wgs84_bounds(path: Path) -> tuple[float, float, float, float]:
    with rasterio.open(path) as src:
        w, s, e, n = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    return (w, s, e, n)


def _layer(lid: str, path: Path, **extra: Any) -> Layer:
    values: dict[str, Any] = {
        "id": lid,
        "title": lid,
        "kind": "raster",
        "group": "heat",
        "role": "prediction",
        "path": str(path),
        "unit": "°C",
        "legend": "Land-surface temperature",
        "bounds": (9.0, 45.0, 9.1, 45.1),
        "crs": "EPSG:32632",
        "fingerprint": file_fingerprint(path),
        "created_at": "2026-11-27T10:00:00+00:00",
        "colormap": "rdylbu_r",
        "rescale": (20.0, 40.0),
        "lineage": {
            "model": {"name": "uhi", "version": 3, "run_id": "run123"},
            "scene": "city1",
            "scene_dir": "/secret/scenes/city1",
            "params": {},
        },
    }
    if path.suffix == ".tif" and "bounds" not in extra:
        values["bounds"] = _wgs84_bounds(path)
    values.update(extra)
    return Layer(**values)


@pytest.fixture
def home(tmp_path: Path) -> tuple[Settings, LayerCatalogue]:
    settings = Settings(home=tmp_path / "home", tile_cache_mb=4)
    layers_dir = settings.layers_dir
    layers_dir.mkdir(parents=True)
    catalogue = LayerCatalogue(layers_dir)
    lst = _write_cog(settings.home_dir, "lst", _values()[None], NODATA)
    features = settings.home_dir / "cells.parquet"
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    pd.DataFrame(
        {
            "row": rows.ravel(),
            "col": cols.ravel(),
            "ndvi": (rows.ravel() / SIZE).astype(float),
            "water_distance": np.where(cols.ravel() == 3, np.nan, 100.0 * cols.ravel()),
        }
    ).to_parquet(features, index=False)
    catalogue.add(_layer(LST, lst, features_path=str(features)))
    rng = np.random.default_rng(0)
    rgb = _write_cog(settings.home_dir, "rgb", rng.integers(1, 255, (3, SIZE, SIZE), np.uint8), 0)
    catalogue.add(
        _layer(RGB, rgb, group="imagery", role="imagery", colormap=None, rescale=None, lineage={})
    )
    vector = layers_dir / "hot.geojson"
    vector.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    catalogue.add(_layer(HOT, vector, kind="vector", colormap=None, rescale=None))
    return settings, catalogue


def make_app(settings: Settings, catalogue: LayerCatalogue) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app, {})
    cache = TileCache.from_megabytes(settings.tile_cache_mb)
    app.state.tile_cache = cache
    app.include_router(layers_router(settings, catalogue, cache))
    app.include_router(stac_router(catalogue))
    return app


@pytest.fixture
def client(home: tuple[Settings, LayerCatalogue]) -> Iterator[TestClient]:
    with TestClient(make_app(*home)) as test_client:
        yield test_client


def _centre_lonlat(row: int, col: int) -> tuple[float, float]:
    x, y = from_origin(*ORIGIN, RES, RES) @ (col + 0.5, row + 0.5)
    lons, lats = warp_transform("EPSG:32632", "EPSG:4326", [x], [y])
    return lons[0], lats[0]


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    tile = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, z)
    return tile.x, tile.y


def _png(body: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGBA"))


def _middle_tile(client: TestClient, lid: str = LST, z: int = 14) -> str:
    lon, lat = _centre_lonlat(SIZE // 2, SIZE // 2)
    x, y = _tile_of(lon, lat, z)
    return f"/layers/{lid}/tiles/{z}/{x}/{y}.png"


# ----- catalogue listing ------------------------------------------------------------


def test_listing_has_links_and_legend_and_no_server_paths(client: TestClient, home: Any) -> None:
    response = client.get("/layers")
    assert response.status_code == 200
    layers = {entry["id"]: entry for entry in response.json()}
    assert set(layers) == {LST, RGB, HOT}
    lst = layers[LST]
    assert lst["links"]["tiles"].endswith(f"/layers/{LST}/tiles/{{z}}/{{x}}/{{y}}.png")
    assert lst["links"]["download"].endswith(f"/layers/{LST}/cog.tif")
    assert layers[HOT]["links"]["download"].endswith(f"/layers/{HOT}/data.geojson")
    stops = lst["legend_stops"]
    assert stops[0][0] == 20.0 and stops[-1][0] == 40.0
    assert all(len(color) == 7 and color.startswith("#") for _, color in stops)
    assert layers[RGB]["legend_stops"] == []
    text = response.text
    assert str(home[0].home_dir) not in text and "/secret/" not in text
    assert "path" not in lst and "features_path" not in lst and lst["has_features"] is True
    one = client.get(f"/layers/{LST}").json()
    assert one["id"] == LST and one["links"] == lst["links"]


def test_unknown_layer_is_a_clear_404(client: TestClient) -> None:
    for url in (
        "/layers/nope",
        "/layers/nope/tiles/1/0/0.png",
        "/layers/nope/point?lon=9&lat=45",
        "/layers/nope/cog.tif",
        "/layers/nope/tilejson.json",
        "/stac/items/nope.json",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "nope" in response.json()["message"]


# ----- security: ids only, never a path or URL, never a read ---------------------------

ATTACKS = [
    f"/layers/{LST}/tiles/14/0/0.png?url={{canary}}",
    f"/layers/{LST}/tilejson.json?url=file://{{canary}}",
    "/layers?path={canary}",
    f"/layers/{LST}/point?lon=9&lat=45&file={{canary}}",
    f"/layers/{LST}/cog.tif?url=/vsicurl/http://example.com/x.tif",
    "/stac/catalog.json?url={canary}",
    "/layers/..%2F..%2F{canary}/tiles/1/0/0.png",
    "/layers/%2e%2e/tiles/1/0/0.png",
    "/layers/file:%2F%2F{canary}/tilejson.json",
    "/layers/%2Fvsicurl%2Fhttp:%2F%2Fexample.com%2Fx.tif/tiles/1/0/0.png",
    "/layers/canary.vrt/tiles/1/0/0.png",
    "/layers/x.tif/cog.tif",
    "/stac/items/..%2Fcanary.json",
    "/layers/UPPER/point?lon=9&lat=45",
]


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path given to rasterio.open or Path.open while a test runs."""
    calls: list[str] = []
    real_rasterio_open, real_path_open = rasterio.open, pathlib.Path.open

    def spy_rasterio(fp: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(f"rasterio:{fp}")
        return real_rasterio_open(fp, *args, **kwargs)

    def spy_path(self: pathlib.Path, *args: Any, **kwargs: Any) -> Any:
        calls.append(f"path:{self}")
        return real_path_open(self, *args, **kwargs)

    monkeypatch.setattr(rasterio, "open", spy_rasterio)
    monkeypatch.setattr(pathlib.Path, "open", spy_path)
    return calls


@pytest.mark.parametrize("attack", ATTACKS)
def test_paths_and_urls_are_refused_before_any_read(
    client: TestClient, tmp_path: Path, opened: list[str], attack: str
) -> None:
    canary = tmp_path / "canary.tif"
    _write_cog(tmp_path, "canary", _values()[None], NODATA).replace(canary)
    opened.clear()
    response = client.get(attack.format(canary=canary))
    assert 400 <= response.status_code < 500, response.text
    body = response.json()
    assert body["message"] and body["error"]
    assert opened == [], f"{attack} opened {opened}"


def test_an_undeclared_parameter_names_the_allowed_ones(client: TestClient) -> None:
    response = client.get(f"/layers/{LST}/tiles/14/0/0.png?url=http://x/y.tif")
    assert response.status_code == 422
    assert "'url'" in response.json()["message"] and "rescale" in response.json()["hint"]


def test_a_vrt_planted_in_the_catalogue_is_never_read_through(
    client: TestClient, home: Any, tmp_path: Path, opened: list[str]
) -> None:
    settings, catalogue = home
    canary = _write_cog(tmp_path, "canary", _values()[None], NODATA)
    vrt = settings.layers_dir / "evil.tif"  # a VRT wearing a .tif name
    with rasterio.open(canary) as src:
        vrt.write_text(
            f'<VRTDataset rasterXSize="{SIZE}" rasterYSize="{SIZE}"><VRTRasterBand '
            f'dataType="Float32" band="1"><SimpleSource><SourceFilename>{canary}'
            f"</SourceFilename><SourceBand>1</SourceBand></SimpleSource></VRTRasterBand>"
            f"</VRTDataset>"
        )
        bounds = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    catalogue.add(_layer("evil", vrt, bounds=bounds))
    opened.clear()
    for url in (
        "/layers/evil/tiles/14/0/0.png",
        "/layers/evil/cog.tif",
        "/layers/evil/tilejson.json",
        "/layers/evil/point?lon=9&lat=45",
    ):
        response = client.get(url)
        assert response.status_code == 404 and "not a GeoTIFF" in response.json()["message"]
    assert not any(str(canary) in call for call in opened)
    assert f"rasterio:{vrt}" not in opened  # refused from its first bytes


@hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(min_size=1, max_size=40))
def test_any_id_is_answered_without_a_server_error(client: TestClient, text: str) -> None:
    from urllib.parse import quote

    lid = quote(text, safe="")
    for url in (f"/layers/{lid}", f"/layers/{lid}/tiles/3/1/1.png", f"/stac/items/{lid}.json"):
        response = client.get(url)
        assert response.status_code < 500, (url, response.text)


# ----- tiles -------------------------------------------------------------------------


def test_a_tile_is_a_coloured_png_with_lineage_headers(client: TestClient) -> None:
    response = client.get(_middle_tile(client))
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.headers["X-Layer-Id"] == LST
    assert response.headers["X-Model-Name"] == "uhi"
    assert response.headers["X-Model-Version"] == "3"
    assert response.headers["X-Model-Run-Id"] == "run123"
    assert response.headers["Cache-Control"] == "public, max-age=3600"
    pixels = _png(response.content)
    assert pixels.shape == (256, 256, 4)
    opaque = pixels[..., 3] == 255
    assert opaque.mean() > 0.1  # the raster covers part of the tile
    assert pixels[opaque][:, :3].std() > 5  # a gradient, not one flat colour


def test_retina_tiles_and_rgb_imagery(client: TestClient) -> None:
    retina = client.get(_middle_tile(client).replace(".png", "@2x.png"))
    assert retina.status_code == 200 and _png(retina.content).shape == (512, 512, 4)
    rgb = client.get(_middle_tile(client, RGB))
    assert rgb.status_code == 200 and "X-Model-Name" not in rgb.headers
    pixels = _png(rgb.content)
    opaque = pixels[..., 3] == 255
    assert opaque.mean() > 0.1 and pixels[opaque][:, :3].std() > 20


def test_second_request_is_served_from_the_cache(client: TestClient) -> None:
    url = _middle_tile(client)
    first, second = client.get(url), client.get(url)
    assert first.headers["X-Tile-Cache"] == "miss" and second.headers["X-Tile-Cache"] == "hit"
    assert first.content == second.content and first.headers["ETag"] == second.headers["ETag"]
    stats = client.app.state.tile_cache.stats()  # type: ignore[attr-defined]
    assert stats["hits"] == 1 and stats["misses"] == 1 and stats["entries"] == 1


def test_a_known_etag_gets_304_without_a_body(client: TestClient) -> None:
    url = _middle_tile(client)
    etag = client.get(url).headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    again = client.get(url, headers={"If-None-Match": f'"other", W/{etag}'})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == etag and again.headers["X-Model-Version"] == "3"


def test_style_overrides_are_validated_and_change_the_tile(client: TestClient) -> None:
    url = _middle_tile(client)
    default = client.get(url)
    styled = client.get(url + "?colormap=viridis&rescale=25,30")
    assert styled.status_code == 200 and styled.headers["ETag"] != default.headers["ETag"]
    assert styled.content != default.content
    for query, words in (
        ("colormap=nope", "unknown colormap"),
        ("rescale=5", "lo,hi"),
        ("rescale=9,1", "lo < hi"),
        ("rescale=nan,1", "finite"),
    ):
        response = client.get(f"{url}?{query}")
        assert response.status_code == 422 and words in response.json()["message"], query
    rgb = client.get(_middle_tile(client, RGB) + "?colormap=viridis")
    assert rgb.status_code == 422 and "RGB" in rgb.json()["message"]


def test_tiles_outside_the_layer_or_the_grid(client: TestClient) -> None:
    outside = client.get(f"/layers/{LST}/tiles/14/0/0.png")
    assert outside.status_code == 404
    assert outside.json()["error"] == "outside_bounds"
    assert "outside layer" in outside.json()["message"]
    assert client.get(f"/layers/{LST}/tiles/2/4/0.png").status_code == 422
    assert client.get(f"/layers/{LST}/tiles/2/0/0.jpg").status_code == 422
    assert client.get(f"/layers/{LST}/tiles/31/0/0.png").status_code == 422


def test_a_tile_in_the_envelope_but_off_the_data_is_transparent_not_an_error(
    home: tuple[Settings, LayerCatalogue],
) -> None:
    """A UTM raster sits tilted in web mercator: its lon/lat envelope has empty corners a
    map will ask for. Those tiles are an empty part of the layer (200, transparent)."""
    settings, catalogue = home
    lst = catalogue.get(LST)
    west, south, east, north = lst.bounds
    wide = replace(lst, id="uhi-lst-wide", bounds=(west, south, east + 0.05, north))
    catalogue.add(wide)
    x, y = _tile_of(east + 0.03, (south + north) / 2, 14)
    with TestClient(make_app(settings, catalogue)) as client:
        empty = client.get(f"/layers/uhi-lst-wide/tiles/14/{x}/{y}.png")
        assert empty.status_code == 200
        assert _png(empty.content)[..., 3].max() == 0
        beyond = client.get(f"/layers/uhi-lst-wide/tiles/14/{x + 3}/{y}.png")
        assert beyond.status_code == 404 and beyond.json()["error"] == "outside_bounds"


def test_tilejson_describes_the_cog(client: TestClient) -> None:
    body = client.get(f"/layers/{LST}/tilejson.json?rescale=20,30").json()
    assert body["tilejson"] == "3.0.0"
    assert body["tiles"] == [
        f"http://testserver/layers/{LST}/tiles/{{z}}/{{x}}/{{y}}.png?rescale=20,30"
    ]
    assert 0 <= body["minzoom"] <= body["maxzoom"] <= 24
    west, south, east, north = body["bounds"]
    assert west < body["center"][0] < east and south < body["center"][1] < north
    assert "uhi v3" in body["attribution"]
    assert client.get(f"/layers/{HOT}/tilejson.json").status_code == 404


# ----- point query ---------------------------------------------------------------------


def test_point_value_is_the_cell_value_with_its_model_inputs(client: TestClient) -> None:
    row, col = 70, 40
    lon, lat = _centre_lonlat(row, col)
    body = client.get(f"/layers/{LST}/point", params={"lon": lon, "lat": lat}).json()
    assert body["value"] == pytest.approx(float(_values()[row, col]))
    assert (body["row"], body["col"]) == (row, col)
    assert body["unit"] == "°C" and body["lineage"]["model"]["version"] == 3
    assert "scene_dir" not in body["lineage"]
    assert body["features"] == {"ndvi": pytest.approx(row / SIZE), "water_distance": 4000.0}
    nan_input = client.get(
        f"/layers/{LST}/point",
        params=dict(zip(("lon", "lat"), _centre_lonlat(row, 3), strict=True)),
    ).json()
    assert "water_distance" not in nan_input["features"]  # NaN inputs are left out


def test_point_on_nodata_outside_or_out_of_range(client: TestClient) -> None:
    lon, lat = _centre_lonlat(2, 2)
    nodata = client.get(f"/layers/{LST}/point", params={"lon": lon, "lat": lat})
    assert nodata.status_code == 200 and nodata.json()["value"] is None
    far = client.get(f"/layers/{LST}/point", params={"lon": 0.0, "lat": 0.0})
    assert far.status_code == 404 and "outside layer" in far.json()["message"]
    bad = client.get(f"/layers/{LST}/point", params={"lon": 200, "lat": 45})
    assert bad.status_code == 422 and "lon" in bad.json()["message"]
    rgb = client.get(
        f"/layers/{RGB}/point",
        params=dict(zip(("lon", "lat"), _centre_lonlat(60, 60), strict=True)),
    ).json()
    assert len(rgb["values"]) == 3 and rgb["features"] is None


# ----- missing files, downloads ---------------------------------------------------------


def test_a_removed_file_is_listed_unavailable_and_tiles_404(client: TestClient, home: Any) -> None:
    _, catalogue = home
    Path(catalogue.get(LST).path).unlink()
    listed = {entry["id"]: entry for entry in client.get("/layers").json()}
    assert listed[LST]["available"] is False
    assert "missing" in listed[LST]["problem"] and "/" not in listed[LST]["problem"]
    tile = client.get(_middle_tile(client))
    assert tile.status_code == 404 and "missing" in tile.json()["message"]
    item = client.get(f"/stac/items/{LST}.json")
    assert item.status_code == 200 and item.json()["properties"]["terraops:available"] is False


def test_cog_download_supports_http_range(client: TestClient, home: Any) -> None:
    whole = client.get(f"/layers/{LST}/cog.tif")
    assert whole.status_code == 200 and whole.headers["content-type"] == "image/tiff"
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["X-Model-Version"] == "3"
    assert whole.content == Path(home[1].get(LST).path).read_bytes()
    part = client.get(f"/layers/{LST}/cog.tif", headers={"Range": "bytes=0-15"})
    assert part.status_code == 206 and part.content == whole.content[:16]
    assert part.headers["content-range"] == f"bytes 0-15/{len(whole.content)}"
    assert client.head(f"/layers/{LST}/cog.tif").status_code == 200
    assert client.get(f"/layers/{HOT}/cog.tif").status_code == 404


def test_vector_layers_are_served_as_geojson(client: TestClient) -> None:
    response = client.get(f"/layers/{HOT}/data.geojson")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geo+json"
    assert response.json()["type"] == "FeatureCollection"
    assert response.headers["X-Model-Version"] == "3"
    assert client.get(f"/layers/{LST}/data.geojson").status_code == 404


# ----- STAC ------------------------------------------------------------------------------


def test_stac_catalog_links_resolve_to_items_with_projection_and_cog(
    client: TestClient,
) -> None:
    import pystac.validation

    catalog = client.get("/stac/catalog.json").json()
    assert catalog["type"] == "Catalog" and catalog["id"] == "terraops"
    items = [link["href"] for link in catalog["links"] if link["rel"] == "item"]
    assert len(items) == 3 and all(
        href.startswith("http://testserver/stac/items/") for href in items
    )
    by_id = {}
    for href in items:
        response = client.get(href.removeprefix("http://testserver"))
        assert response.status_code == 200
        by_id[response.json()["id"]] = response.json()
    lst = by_id[LST]
    props = lst["properties"]
    assert props["proj:code"] == "EPSG:32632" and props["proj:shape"] == [SIZE, SIZE]
    assert props["proj:transform"] == [RES, 0.0, ORIGIN[0], 0.0, -RES, ORIGIN[1]]
    assert props["proj:bbox"] == [
        ORIGIN[0],
        ORIGIN[1] - SIZE * RES,
        ORIGIN[0] + SIZE * RES,
        ORIGIN[1],
    ]
    assert props["terraops:model"] == {"name": "uhi", "version": 3, "run_id": "run123"}
    assert props["terraops:scene"] == "city1" and props["datetime"].startswith("2026-11-27")
    asset = lst["assets"]["data"]
    assert asset["href"] == f"http://testserver/layers/{LST}/cog.tif"
    assert asset["type"] == "image/tiff; application=geotiff; profile=cloud-optimized"
    assert asset["roles"] == ["data"]
    rels = {link["rel"]: link["href"] for link in lst["links"]}
    assert rels["xyz"].endswith("/tiles/{z}/{x}/{y}.png") and rels["root"].endswith("catalog.json")
    assert by_id[HOT]["assets"]["data"]["type"] == "application/geo+json"
    # The core schema ships with pystac (offline); extension schemas would need the network.
    pystac.validation.validate_dict({**lst, "stac_extensions": []})
    pystac.validation.validate_dict({**catalog, "stac_extensions": []})


# ----- the tile cache itself -----------------------------------------------------------------


def test_tile_cache_is_an_lru_bounded_in_bytes() -> None:
    cache = TileCache(max_bytes=100)
    keys = [TileKey("layer:1:abc", 5, i, 0, 1, "png") for i in range(4)]
    for key in keys[:3]:
        cache.put(key, b"x" * 40)  # the third one evicts the first
    assert cache.get(keys[0]) is None and cache.get(keys[1]) is not None
    cache.put(keys[3], b"y" * 40)  # evicts keys[2]: keys[1] was used more recently
    assert cache.get(keys[2]) is None and cache.get(keys[1]) is not None
    cache.put(keys[0], b"z" * 500)  # larger than the budget: not stored
    stats = cache.stats()
    assert stats["bytes"] <= 100 and stats["evictions"] == 2 and stats["entries"] == 2
    off = TileCache(0)
    off.put(keys[0], b"x")
    assert off.get(keys[0]) is None and not off.enabled


def test_create_app_serves_the_layers(home: Any) -> None:
    from terraops.api.app import create_app

    settings, _ = home
    with TestClient(create_app(settings, holders={}, watch=False)) as test_client:
        assert {entry["id"] for entry in test_client.get("/layers").json()} == {LST, RGB, HOT}
        assert test_client.get(_middle_tile(test_client)).status_code == 200


# ----- TiTiler's own endpoints, by id ------------------------------------------------------


@pytest.fixture
def titiler_client(home: Any) -> Iterator[TestClient]:
    from terraops.api.routes_titiler import install_titiler

    app = make_app(*home)
    install_titiler(app, home[1])
    with TestClient(app) as test_client:
        yield test_client


def test_titiler_answers_by_layer_id(titiler_client: TestClient) -> None:
    info = titiler_client.get(f"/titiler/layers/{LST}/info")
    assert info.status_code == 200 and info.json()["dtype"] == "float32"
    stats = titiler_client.get(f"/titiler/layers/{LST}/statistics").json()
    assert stats["b1"]["max"] == pytest.approx(float(_values().max()))
    outside = titiler_client.get(f"/titiler/layers/{LST}/tiles/WebMercatorQuad/14/0/0.png")
    assert outside.status_code == 404 and outside.json()["error"] == "outside_bounds"
    assert titiler_client.get("/titiler/layers/nope/info").status_code == 404
    assert titiler_client.get(f"/titiler/layers/{HOT}/info").status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        f"/titiler/layers/{LST}/info?url={{canary}}",
        f"/titiler/layers/{LST}/statistics?url=file://{{canary}}",
        "/titiler/info?url={canary}",
        "/titiler/cog/info?url={canary}",
        "/titiler/layers/..%2F{canary}/info",
    ],
)
def test_titiler_never_reads_a_url_or_path(
    titiler_client: TestClient, tmp_path: Path, opened: list[str], url: str
) -> None:
    canary = _write_cog(tmp_path, "canary", _values()[None], NODATA)
    opened.clear()
    response = titiler_client.get(url.format(canary=canary))
    assert 400 <= response.status_code < 500 and response.json()["message"]
    assert opened == []
