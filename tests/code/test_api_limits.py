"""The body limit and the framework-refusal handler, in-process (fast; the real-server
versions of these are in tests/integration/test_hostile_inputs.py).

Every refusal must come in the terraops error shape (``error``, ``message``,
``hint``), never as the framework's bare ``Content Too Large`` / ``{"detail": ...}``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from terraops.api.app import body_limit_bytes, create_app
from terraops.settings import Settings

TOKEN = "limits-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(home=tmp_path / "home", admin_token=SecretStr(TOKEN), max_body_mb=0.01)
    app = create_app(settings, holders={}, watch=False)
    yield TestClient(app, raise_server_exceptions=False)


def test_default_limit_grows_with_the_batch_size(tmp_path: Path) -> None:
    small = body_limit_bytes(Settings(home=tmp_path, max_batch_size=10))
    large = body_limit_bytes(Settings(home=tmp_path, max_batch_size=10_000))
    assert small < large
    assert body_limit_bytes(Settings(home=tmp_path, max_body_mb=2)) == 2 * 1024 * 1024


def test_declared_oversized_body_is_a_json_413(client: TestClient) -> None:
    response = client.post("/v1/admin/uhi/promote", content=b" " * 20_000, headers=AUTH)
    assert response.status_code == 413
    body = response.json()
    assert body["error"] == "payload_too_large"
    assert "10,485 bytes" in body["message"] and "TERRAOPS_MAX_BODY_MB" in body["hint"]


def test_streamed_oversized_body_is_cut_off_with_a_json_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b" " * 1000

    response = client.post("/v1/admin/uhi/promote", content=chunks(), headers=AUTH)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_segment_upload_keeps_its_own_limit(client: TestClient) -> None:
    """/v1/segment streams uploads under TERRAOPS_SEGMENT_MAX_UPLOAD_MB, not the JSON limit."""
    response = client.post(
        "/v1/segment",
        files={"image": ("x.tif", b"\0" * 20_000, "image/tiff")},
    )
    assert response.status_code != 413, response.text
    assert response.json()["error"] != "payload_too_large"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"[" * 5_000 + b"]" * 5_000, "nested too deeply"),
        (b'{"version": "\xff"}', "UTF-8"),
    ],
    ids=["nested", "non-utf8"],
)
def test_unparsable_bodies_say_why(client: TestClient, body: bytes, words: str) -> None:
    response = client.post("/v1/admin/uhi/promote", content=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert words in response.json()["message"]


def test_unknown_route_and_wrong_method_use_the_error_shape(client: TestClient) -> None:
    missing = client.get("/no/such/route")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found" and "/no/such/route" in missing.json()["message"]
    wrong = client.get("/v1/admin/uhi/promote", headers=AUTH)
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "method_not_allowed" and "POST" in wrong.json()["hint"]
