"""Hostile inputs against a real ``terraops serve``: one test per kind of abuse.

The server runs as its own process on loopback (uvicorn, one worker) on a copy
of the session's trained home, with the admin API on, a small batch limit and
body limit, a catalogued raster layer, and a symlink in the layer store that
points at ``/etc/passwd``. Requests that need exact bytes on the wire (raw
``..`` in a path, headers sent one byte at a time) go over plain sockets.

Every test checks the answer (a 4xx whose JSON body says what was wrong) and,
through the autouse ``state_unchanged`` fixture, that the registry aliases, the
alias history and the files of the layer store are exactly as before.

The catalogue continues in ``test_hostile_limits.py`` (its own server, with small
limits): oversized and slow request headers, feedback without its token or over its
rate, and model-cache debris of killed processes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving_support import (
    LEGACY_BODY,
    RunningProcess,
    TrainedHome,
    free_port,
    report,
    settings_env,
    wait_until,
)
from terraops.adapters.catalogue import LayerCatalogue
from terraops.adapters.raster_io import read_scene
from terraops.adapters.registry import ModelRegistry
from terraops.pipelines.lifecycle import aliases as lifecycle
from terraops.pipelines.maps.layer_products import scene_imagery_layer
from terraops.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "hostile-admin-token"
MAX_BATCH = 50
MAX_BODY_MB = 0.25
SERVICES = ("uhi", "flood")


@dataclass(frozen=True)
class Served:
    settings: Settings
    url: str
    port: int
    layer_id: str


@pytest.fixture(scope="module")
def served(
    trained_home: TrainedHome,
    tiny_scenes: list[Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("hostile")
    home = root / "home"
    shutil.copytree(trained_home.path, home, ignore=shutil.ignore_patterns("*.lock"))
    settings = Settings(home=home, user="tester", poll_interval_s=0.5, registry_timeout_s=2.0)
    registry = ModelRegistry(settings)
    lifecycle.promote(settings, registry, "uhi", trained_home.uhi_versions[0], reason="hostile")
    lifecycle.promote(settings, registry, "flood", trained_home.flood_versions[0], reason="hostile")
    layer = LayerCatalogue(settings.layers_dir).add(
        scene_imagery_layer(settings, read_scene(tiny_scenes[0]))
    )
    (settings.layers_dir / "passwd.tif").symlink_to("/etc/passwd")
    port = free_port()
    env = settings_env(
        settings,
        TERRAOPS_ADMIN_TOKEN=TOKEN,
        TERRAOPS_MAX_BATCH_SIZE=str(MAX_BATCH),
        TERRAOPS_MAX_BODY_MB=str(MAX_BODY_MB),
    )
    args = [sys.executable, "-m", "terraops.cli.main", "serve", "--host", "127.0.0.1"]
    log = root / "serve.log"

    with log.open("wb") as out:
        process = subprocess.Popen(
            [*args, "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = RunningProcess(process, f"http://127.0.0.1:{port}", log)
    try:
        wait_until(
            lambda: httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200,
            120,
            "server ready",
            server,
        )
        yield Served(settings, server.url, port, layer.id)
    finally:
        server.stop()


def stored_state(settings: Settings) -> dict[str, Any]:
    """Registry aliases, alias-history rows and the layer store's files (hashes)."""
    registry = ModelRegistry(settings)
    files = {
        str(path.relative_to(settings.layers_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(settings.layers_dir.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }
    return {
        "aliases": {s: registry.get_aliases(s) for s in SERVICES},
        "history": {s: [e.as_dict() for e in lifecycle.history(settings, s)] for s in SERVICES},
        "layer_files": files,
    }


@pytest.fixture(autouse=True)
def state_unchanged(served: Served) -> Iterator[None]:
    before = stored_state(served.settings)
    yield
    assert stored_state(served.settings) == before


# ----- helpers --------------------------------------------------------------------------


def raw_exchange(port: int, request: bytes, timeout: float = 15.0) -> tuple[int, bytes]:
    """Send exact bytes (``Connection: close``); the status and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def raw_get(port: int, target: str) -> tuple[int, bytes]:
    request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    return raw_exchange(port, request.encode("latin-1"))


def assert_clear_error(status: int, body: bytes, expected: Callable[[int], bool]) -> dict[str, Any]:
    assert expected(status), (status, body[:300])
    payload: dict[str, Any] = json.loads(body)
    assert isinstance(payload.get("error"), str) and payload["error"], payload
    assert isinstance(payload.get("message"), str) and len(payload["message"]) > 10, payload
    return payload


def is_4xx(status: int) -> bool:
    return 400 <= status < 500


def feature_row(**changes: Any) -> dict[str, Any]:
    return {**LEGACY_BODY, **changes}


# ----- bodies -----------------------------------------------------------------------------


def test_oversized_body_gets_a_json_413_naming_the_setting(served: Served) -> None:
    limit = int(MAX_BODY_MB * 1024 * 1024)
    big = json.dumps({"instances": [LEGACY_BODY] * (limit // 40)}).encode()
    assert len(big) > limit
    declared = httpx.post(
        f"{served.url}/v1/uhi/predict/batch",
        content=big,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    payload = assert_clear_error(declared.status_code, declared.content, lambda s: s == 413)
    assert payload["error"] == "payload_too_large" and "TERRAOPS_MAX_BODY_MB" in payload["hint"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while reading
        for start in range(0, len(big), 16384):
            yield big[start : start + 16384]

    streamed = httpx.post(
        f"{served.url}/v1/uhi/predict/batch",
        content=chunks(),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert_clear_error(streamed.status_code, streamed.content, lambda s: s == 413)
    assert streamed.json()["error"] == "payload_too_large"


def test_oversized_batch_is_refused_naming_the_limit(served: Served) -> None:
    response = httpx.post(
        f"{served.url}/v1/uhi/predict/batch",
        json={"instances": [LEGACY_BODY] * (MAX_BATCH + 1)},
        timeout=30,
    )
    payload = assert_clear_error(response.status_code, response.content, lambda s: s == 422)
    assert str(MAX_BATCH) in payload["message"] and str(MAX_BATCH + 1) in payload["message"]


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 50_000 + b"]" * 50_000,
        b'{"instances": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b'{"ndvi": ' + b'{"a": ' * 20_000 + b"1" + b"}" * 20_001,
    ],
    ids=["array", "batch", "object"],
)
def test_deeply_nested_json_is_a_clear_4xx(served: Served, body: bytes) -> None:
    for path in ("/v1/uhi/predict", "/v1/uhi/predict/batch"):
        response = httpx.post(
            f"{served.url}{path}", content=body, headers={"content-type": "application/json"}
        )
        assert_clear_error(response.status_code, response.content, lambda s: s == 422)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e309", "-1e308", "1e400"])
def test_non_finite_and_huge_numbers_are_refused_naming_the_field(
    served: Served, token: str
) -> None:
    row = json.dumps(LEGACY_BODY).replace('"ndvi": 0.5', f'"ndvi": {token}')
    headers = {"content-type": "application/json"}
    single = httpx.post(f"{served.url}/v1/uhi/predict", content=row, headers=headers)
    payload = assert_clear_error(single.status_code, single.content, lambda s: s == 422)
    assert "ndvi" in payload["message"]
    good = json.dumps(LEGACY_BODY)
    batch_body = '{"instances": [' + ", ".join([good, good, row]) + "]}"
    batch = httpx.post(f"{served.url}/v1/uhi/predict/batch", content=batch_body, headers=headers)
    payload = assert_clear_error(batch.status_code, batch.content, lambda s: s == 422)
    assert "2" in payload["message"] and "ndvi" in payload["message"], payload


@pytest.mark.parametrize(
    "body",
    [
        b'{"ndvi": 0.5, "building_density": 0.7, "water_distance": 1000, "\xff\xfe": 1}',
        b'{"ndvi": "\xc3\x28", "building_density": 0.7, "water_distance": 1000}',
        b"\x80\x81\x82",
    ],
    ids=["key", "value", "garbage"],
)
def test_non_utf8_body_is_a_clear_4xx(served: Served, body: bytes) -> None:
    for path in ("/v1/uhi/predict", "/v1/flood/predict/batch"):
        response = httpx.post(
            f"{served.url}{path}", content=body, headers={"content-type": "application/json"}
        )
        payload = assert_clear_error(response.status_code, response.content, lambda s: s == 422)
        assert "UTF-8" in payload["message"] or "JSON" in payload["message"], payload


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/xml",
        None,
    ],
)
def test_wrong_content_type_is_a_clear_4xx(served: Served, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    body = json.dumps(LEGACY_BODY).encode()
    for path in ("/v1/uhi/predict", "/v1/uhi/predict/batch", "/v1/admin/uhi/promote"):
        response = httpx.post(
            f"{served.url}{path}",
            content=body,
            headers={**headers, "Authorization": f"Bearer {TOKEN}"},
        )
        payload = assert_clear_error(response.status_code, response.content, is_4xx)
        assert "application/json" in payload["message"] or "JSON" in payload["message"], payload


# ----- slow clients ----------------------------------------------------------------------


def _latencies(url: str, n: int) -> list[float]:
    out = []
    with httpx.Client(timeout=10) as client:
        for _ in range(n):
            start = time.perf_counter()
            response = client.post(f"{url}/v1/uhi/predict", json=LEGACY_BODY)
            out.append(time.perf_counter() - start)
            assert response.status_code == 200, response.text
    return out


def _dribble(port: int, payload: bytes, stop: threading.Event, pause_s: float) -> None:
    """Send ``payload`` one byte at a time until it is sent or ``stop`` is set."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            for byte in payload:
                if stop.is_set():
                    return
                sock.sendall(bytes([byte]))
                time.sleep(pause_s)
    except OSError:
        return  # the server may close a slow connection: that is allowed


def test_slow_clients_do_not_stall_other_requests(served: Served) -> None:
    """Slowloris: 40 connections send their headers, 10 their body, one byte every 50 ms."""
    baseline = _latencies(served.url, 30)
    body = json.dumps(LEGACY_BODY).encode()
    headers_only = b"POST /v1/uhi/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 400
    with_body = (
        f"POST /v1/uhi/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body) + 400}\r\n\r\n".encode()
        + body
    )
    stop = threading.Event()
    threads = [
        threading.Thread(target=_dribble, args=(served.port, headers_only, stop, 0.05))
        for _ in range(40)
    ] + [
        threading.Thread(target=_dribble, args=(served.port, with_body, stop, 0.05))
        for _ in range(10)
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)  # every slow connection is open and mid-request
        during = _latencies(served.url, 30)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    figures = {
        "baseline_p50_ms": round(statistics.median(baseline) * 1000, 2),
        "baseline_max_ms": round(max(baseline) * 1000, 2),
        "slowloris_p50_ms": round(statistics.median(during) * 1000, 2),
        "slowloris_max_ms": round(max(during) * 1000, 2),
        "slow_connections": len(threads),
    }
    report("hostile_slow_clients", figures)
    # Normal latency: the same order as without slow clients (generous for a loaded CI box).
    assert statistics.median(during) < 5 * statistics.median(baseline) + 0.05, figures
    assert max(during) < 2.0, figures


# ----- admin ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer wrong-token",
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN}x",
        f"Basic {TOKEN}",
        f"bearer{TOKEN}",
        "Bearer " + "\u00e9" * 10,
    ],
    ids=lambda v: "none" if v is None else (repr(v)[:20] if v else "empty"),
)
def test_admin_without_the_right_token_is_401(served: Served, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    calls = [
        ("POST", "/v1/admin/uhi/promote", {"version": 2, "force": True, "reason": "x"}),
        ("POST", "/v1/admin/uhi/rollback", {}),
        ("GET", "/v1/admin/uhi/history", None),
    ]
    with httpx.Client(base_url=served.url, timeout=10) as client:
        for method, path, body in calls:
            encoded = {k.encode(): v.encode("utf-8") for k, v in headers.items()}
            response = client.request(method, path, json=body, headers=encoded)
            payload = assert_clear_error(response.status_code, response.content, lambda s: s == 401)
            assert payload["error"] == "auth" and "token" in payload["message"], payload
            assert response.headers.get("www-authenticate") == "Bearer"


# ----- paths and URLs ------------------------------------------------------------------------

#: Every route that names a file, with ``{id}`` where the layer id goes.
FILE_ROUTES = [
    "/layers/{id}",
    "/layers/{id}/tilejson.json",
    "/layers/{id}/tiles/0/0/0.png",
    "/layers/{id}/point?lon=0&lat=0",
    "/layers/{id}/cog.tif",
    "/layers/{id}/data.geojson",
    "/stac/items/{id}.json",
    "/titiler/layers/{id}/info",
    "/titiler/layers/{id}/statistics",
    "/titiler/layers/{id}/preview.png",
    "/titiler/layers/{id}/tiles/WebMercatorQuad/0/0/0.png",
    "/titiler/layers/{id}/point/0,0",
    "/static/{id}",
    "/leaflet/{id}",
]

TRICKS = [
    "../../../../../../etc/passwd",
    "..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "%252e%252e%252f%252e%252e%252fetc%252fpasswd",
    "/etc/passwd",
    "%2Fetc%2Fpasswd",
    "file:%2F%2F%2Fetc%2Fpasswd",
    "file:///etc/passwd",
    "%2Fvsicurl%2Fhttp:%2F%2F127.0.0.1%2Fx.tif",
    "passwd",
    "passwd.tif",
    "..%5C..%5C..%5Cetc%5Cpasswd",
    "{layer}%00.tif",
    "{layer}%2F..%2F..%2F..%2Fetc%2Fpasswd",
]

URL_PARAMS = [
    "url=file:///etc/passwd",
    "url=/etc/passwd",
    "url=%2Fetc%2Fpasswd",
    "path=../../etc/passwd",
    "url=http://127.0.0.1:1/x.tif",
]


def _refused_without_leak(port: int, target: str) -> None:
    status, body = raw_get(port, target)
    assert b"root:" not in body, target
    assert 400 <= status < 500, (target, status, body[:200])
    if body.startswith(b"{"):
        assert_clear_error(status, body, is_4xx)


@pytest.mark.parametrize("trick", TRICKS)
def test_file_routes_refuse_path_tricks(served: Served, trick: str) -> None:
    for route in FILE_ROUTES:
        _refused_without_leak(
            served.port, route.replace("{id}", trick.replace("{layer}", served.layer_id))
        )


def test_file_routes_refuse_url_and_path_parameters(served: Served) -> None:
    """TiTiler's ``url=`` (and any ``path=``) never reaches a reader, even on a real layer."""
    for route in [r for r in FILE_ROUTES if not r.startswith(("/static", "/leaflet"))]:
        target = route.replace("{id}", served.layer_id)
        joiner = "&" if "?" in target else "?"
        for param in URL_PARAMS:
            _refused_without_leak(served.port, f"{target}{joiner}{param}")
    for bare in ("/titiler/info", "/cog/info", "/titiler/cog/info", "/titiler/tiles/0/0/0"):
        _refused_without_leak(served.port, f"{bare}?url=file:///etc/passwd")


def test_the_real_layer_is_still_served(served: Served) -> None:
    """The guards refuse tricks, not the catalogue: the layer itself answers."""
    response = httpx.get(f"{served.url}/titiler/layers/{served.layer_id}/info", timeout=30)
    assert response.status_code == 200, response.text
    assert httpx.get(f"{served.url}/layers/{served.layer_id}", timeout=30).status_code == 200
