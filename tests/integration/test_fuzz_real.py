"""Fuzzing against the real app: real LightGBM champions, a real MLflow store.

* Schemathesis walks every operation of the OpenAPI document — admin routes
  included, with a valid bearer token — in positive and negative mode, and
  checks each answer: no 5xx, body and status code as documented, declared
  content type.
* Hypothesis throws random bytes, truncated TIFFs and GeoTIFFs with the wrong
  bands, dtypes and sizes (written by rasterio in memory) at ``POST /v1/segment``:
  each must get a 4xx (or the clear 503 "no segmentation champion" once the
  upload itself is valid) whose message says what was wrong, never a 5xx.
* Hypothesis-generated ``scene.json`` manifests must give a domain error with
  a message, never a traceback of a Python exception.

The app runs in-process (ASGI) on a private copy of the session's trained home;
its champion watcher is the real one. Promote/rollback requests can succeed:
uhi's two registered versions are the same model (conftest ``trained_home``),
so any accepted alias move leaves a working champion for the rest of the run.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import SecretStr
from rasterio.io import MemoryFile
from rasterio.transform import from_origin
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from serving_support import TrainedHome
from terraops.adapters import raster_io
from terraops.adapters.catalogue import LayerCatalogue
from terraops.adapters.raster_io import read_scene
from terraops.adapters.registry import ModelRegistry
from terraops.api.app import create_app
from terraops.errors import TerraopsError
from terraops.pipelines.lifecycle import aliases as lifecycle
from terraops.pipelines.maps.layer_products import scene_imagery_layer
from terraops.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADMIN_TOKEN = "fuzz-admin-token"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]
EXAMPLES_PER_OPERATION = 5
BANDS = ("red", "green", "blue", "nir", "swir")


@pytest.fixture(scope="module")
def real_app(
    trained_home: TrainedHome, tiny_scenes: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FastAPI]:
    """The production app factory on a private copy of the trained home (uhi + flood champions)."""
    home = tmp_path_factory.mktemp("fuzz-real") / "home"
    shutil.copytree(trained_home.path, home, ignore=shutil.ignore_patterns("*.lock"))
    settings = Settings(
        home=home,
        user="fuzzer",
        admin_token=SecretStr(ADMIN_TOKEN),
        max_batch_size=50,
        poll_interval_s=60.0,
        registry_timeout_s=5.0,
        prediction_log=False,
    )
    registry = ModelRegistry(settings)
    lifecycle.promote(settings, registry, "uhi", trained_home.uhi_versions[0], reason="fuzz")
    lifecycle.promote(settings, registry, "flood", trained_home.flood_versions[0], reason="fuzz")
    LayerCatalogue(settings.layers_dir).add(
        scene_imagery_layer(settings, read_scene(tiny_scenes[0]))
    )
    app = create_app(settings)
    with TestClient(app) as client:  # runs the lifespan: the watcher loads both champions
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        yield app


@pytest.fixture(scope="module")
def real_schema(real_app: FastAPI) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", real_app)


def _operations() -> list[tuple[str, str, GenerationMode]]:
    """Every (method, path) of the document; the same app factory, no model or registry."""
    home = Path(tempfile.mkdtemp(prefix="terraops-fuzz-ops-")) / "home"
    try:
        document = create_app(
            Settings(home=home, admin_token=SecretStr(ADMIN_TOKEN)), watch=False
        ).openapi()
    finally:
        shutil.rmtree(home.parent, ignore_errors=True)
    cases = []
    for path, item in sorted(document["paths"].items()):
        for method, operation in item.items():
            cases.append((method.upper(), path, GenerationMode.POSITIVE))
            if _negatable(operation):
                cases.append((method.upper(), path, GenerationMode.NEGATIVE))
    return cases


def _negatable(operation: dict[str, Any]) -> bool:
    """Whether some input can break the document: a body, or a parameter that is more than
    any string (every string is a valid plain-string path or query value)."""
    if "requestBody" in operation:
        return True
    for parameter in operation.get("parameters", []):
        schema = {k: v for k, v in parameter.get("schema", {}).items() if k not in _DOC_ONLY}
        if schema != {"type": "string"}:
            return True
    return False


_DOC_ONLY = frozenset({"title", "description", "examples", "example"})


@pytest.mark.parametrize(("method", "path", "mode"), _operations())
def test_every_operation_answers_as_documented(
    real_schema: Any, method: str, path: str, mode: GenerationMode
) -> None:
    """No request the document allows, or its negative mode breaks, gets a 5xx or an
    undocumented answer (admin routes reached with a valid token)."""
    operation = real_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=AUTH, checks=CHECKS)

    check()


# ----- POST /v1/segment -------------------------------------------------------------


def _geotiff(count: int, dtype: str, width: int, height: int, *, crs: bool = True) -> bytes:
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": dtype,
        "transform": from_origin(500_000.0, 5_000_000.0, 1.0, 1.0),
    }
    if crs:
        profile["crs"] = "EPSG:32632"
    with MemoryFile() as memory:
        with memory.open(**profile) as dst:
            dst.write(np.ones((count, height, width), dtype=dtype))
            if count == len(BANDS):
                dst.descriptions = BANDS
        return bytes(memory.read())


def _huge_declared(width: int, height: int) -> bytes:
    """A tiny sparse GeoTIFF whose header declares ``width`` × ``height`` pixels."""
    with MemoryFile() as memory:
        profile = {
            "driver": "GTiff",
            "width": width,
            "height": height,
            "count": 5,
            "dtype": "uint8",
            "crs": "EPSG:32632",
            "transform": from_origin(500_000.0, 5_000_000.0, 1.0, 1.0),
            "tiled": True,
            "sparse_ok": True,
        }
        with memory.open(**profile):
            pass
        return bytes(memory.read())


VALID_TIFF = _geotiff(5, "uint16", 32, 32)

uploads = st.one_of(
    st.just(("valid", VALID_TIFF)),  # well formed: the route gets as far as the model
    st.binary(max_size=2048).map(lambda b: ("random", b)),
    st.integers(0, len(VALID_TIFF) - 1).map(lambda n: ("truncated", VALID_TIFF[:n])),
    st.builds(
        lambda count, dtype, side, crs: ("bands", _geotiff(count, dtype, side, side, crs=crs)),
        st.sampled_from([1, 2, 3, 4, 6]),
        st.sampled_from(["uint8", "int16", "float32", "complex64", "float64"]),
        st.integers(1, 16),
        st.booleans(),
    ),
    st.builds(
        lambda w, h: ("huge", _huge_declared(w, h)),
        st.integers(20_000, 1_000_000),
        st.integers(20_000, 1_000_000),
    ),
)


@given(upload=uploads, band_order=st.one_of(st.none(), st.text(max_size=40)))
@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
def test_segment_refuses_bad_uploads_clearly(
    real_app: FastAPI, upload: tuple[str, bytes], band_order: str | None
) -> None:
    kind, data = upload
    form = {"band_order": band_order} if band_order is not None else None
    client = TestClient(real_app, raise_server_exceptions=False)  # lifespan already running
    response = client.post(
        "/v1/segment", files={"image": ("upload.tif", data, "image/tiff")}, data=form
    )
    assert 400 <= response.status_code < 500 or response.status_code == 503, (
        kind,
        response.status_code,
        response.text[:300],
    )
    body = response.json()
    assert body["error"] and len(body["message"]) > 10, body
    if response.status_code == 503:  # only a valid upload may get as far as the champion
        assert kind in ("valid", "bands") and "champion" in body["message"], body
    assert "Traceback" not in response.text and "/tmp/" not in body["message"], body


def test_valid_upload_without_a_champion_is_a_clear_503(real_app: FastAPI) -> None:
    """No segmentation model is registered in this home: the answer says so and how to fix it."""
    client = TestClient(real_app, raise_server_exceptions=False)
    response = client.post("/v1/segment", files={"image": ("ok.tif", VALID_TIFF, "image/tiff")})
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "model_not_ready" and "champion" in body["message"], body
    assert "promote" in body["hint"], body


# ----- scene.json ---------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
manifests = st.one_of(
    json_values.map(json.dumps),
    st.dictionaries(
        st.sampled_from(["layers", "size", "crs", "seed", "name"]), json_values, max_size=4
    ).map(json.dumps),
    st.dictionaries(
        st.just("layers"),
        st.dictionaries(
            st.text(max_size=10),
            st.sampled_from(["", ".", "..", "/etc/passwd", "scene.json", "../x.tif", "a.tif"])
            | json_values,
            max_size=3,
        ),
    ).map(json.dumps),
    st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
)


@given(text=manifests)
@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
def test_scene_manifest_errors_are_domain_errors(tmp_path: Path, text: str) -> None:
    scene = tmp_path  # one folder for every example: each rewrites scene.json
    (scene / "a.tif").write_bytes(b"not a tiff")
    (scene / raster_io.MANIFEST_NAME).write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        record = raster_io.read_scene(scene)
        layers = raster_io.read_layers(record)
    except TerraopsError as exc:
        assert exc.message, text
        return
    assert isinstance(record.to_manifest(), dict) and isinstance(layers, dict)
