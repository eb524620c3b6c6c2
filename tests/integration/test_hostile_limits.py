"""Hostile inputs, continued: header size and time, feedback abuse, model-cache debris.

Part of the hostile-input catalogue (``test_hostile_inputs.py``), against a
real ``terraops serve`` started here with small limits: 8 KiB of headers, 2 s
to send them, a feedback token and 20 feedback requests a minute per client.
Before it starts, the model cache holds two temporary download folders: one of
a process killed ten minutes ago, and one of a process still running.
Connections that need exact bytes on the wire go over plain sockets; other
clients come from other loopback addresses (127.0.0.x), as other hosts would.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from serving_support import (
    LEGACY_BODY,
    RunningProcess,
    TrainedHome,
    free_port,
    settings_env,
    wait_until,
)
from terraops.adapters.feedback_store import FeedbackStore
from terraops.adapters.registry import ModelRegistry
from terraops.pipelines.lifecycle import aliases as lifecycle
from terraops.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FEEDBACK_TOKEN = "hostile-feedback-token"
MAX_HEADER_KB = 8
HEADER_TIMEOUT_S = 2.0
FEEDBACK_RATE = 20


@dataclass(frozen=True)
class Served:
    settings: Settings
    url: str
    port: int
    log: Path
    orphan: Path
    in_progress: Path


def _download_folder(cache: Path, version: int, pid: int, age_s: float) -> Path:
    """A temporary download named as ``ModelRegistry.fetch_model`` names it, ``age_s`` old."""
    folder = cache / "uhi" / f".{version}.{pid}.5eed5eed.download"
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "model.pkl").write_bytes(os.urandom(4096))
    past = time.time() - age_s
    for path in (folder / "model" / "model.pkl", folder / "model", folder):
        os.utime(path, (past, past))
    return folder


@pytest.fixture(scope="module")
def served(trained_home: TrainedHome, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("hostile-limits")
    home = root / "home"
    shutil.copytree(trained_home.path, home, ignore=shutil.ignore_patterns("*.lock"))
    settings = Settings(home=home, user="tester", services=["uhi"], poll_interval_s=0.5)
    lifecycle.promote(
        settings, ModelRegistry(settings), "uhi", trained_home.uhi_versions[0], reason="hostile"
    )
    killed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    killed.kill()
    killed.wait()
    downloader = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    orphan = _download_folder(settings.model_cache_dir, 90, killed.pid, age_s=600)
    in_progress = _download_folder(settings.model_cache_dir, 91, downloader.pid, age_s=1)
    port = free_port()
    env = settings_env(
        settings,
        TERRAOPS_FEEDBACK_TOKEN=FEEDBACK_TOKEN,
        TERRAOPS_FEEDBACK_RATE_PER_MIN=str(FEEDBACK_RATE),
        TERRAOPS_MAX_HEADER_KB=str(MAX_HEADER_KB),
        TERRAOPS_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S),
    )
    log = root / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "terraops.cli.main", "serve", "--port", str(port)],
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
        yield Served(settings, server.url, port, log, orphan, in_progress)
    finally:
        server.stop()
        downloader.kill()
        downloader.wait()


def client_from(address: str) -> httpx.Client:
    """A client whose connections come from another loopback address (another host)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=10)


def exchange(port: int, request: bytes) -> bytes:
    """Send ``request``; everything the server answered before closing (sending may fail)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        with suppress(OSError):  # closed on us mid-send: what it wrote is still readable
            sock.sendall(request)
        chunks = []
        try:
            while data := sock.recv(65536):
                chunks.append(data)
        except OSError:
            pass
    return b"".join(chunks)


def get_with_header(size: int) -> bytes:
    return (
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Padding: "
        + b"a" * size
        + b"\r\n\r\n"
    )


# ----- headers ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [64 * 1024, 20 * 1024 * 1024], ids=["64KiB", "20MiB"])
def test_oversized_headers_get_431_or_a_closed_connection(served: Served, size: int) -> None:
    answer = exchange(served.port, get_with_header(size))
    if answer:  # 431 in the error shape, naming the setting
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 431"), answer[:200]
        payload = json.loads(body)
        assert payload["error"] == "request_header_fields_too_large"
        assert "TERRAOPS_MAX_HEADER_KB" in payload["hint"]
    # The limit is on size, not on headers as such: just under it is served.
    fine = exchange(served.port, get_with_header(MAX_HEADER_KB * 1024 - 200))
    assert fine.startswith(b"HTTP/1.1 200"), fine[:200]
    assert httpx.post(f"{served.url}/v1/uhi/predict", json=LEGACY_BODY).status_code == 200


def _dribble(port: int, cut_after: list[tuple[float, bytes]], stop: threading.Event) -> None:
    """Send a request head one byte every 100 ms; note when the server closes on us."""
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 1000
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        try:
            for byte in head:
                if stop.is_set():
                    return
                sock.sendall(bytes([byte]))
                time.sleep(0.1)
        except OSError:
            pass
        try:
            answer = sock.recv(4096)
        except OSError:
            answer = b""
    cut_after.append((time.monotonic() - start, answer))


def test_slow_headers_are_cut_after_the_timeout_while_others_are_served(served: Served) -> None:
    cut_after: list[tuple[float, bytes]] = []
    stop = threading.Event()
    slow = [
        threading.Thread(target=_dribble, args=(served.port, cut_after, stop)) for _ in range(8)
    ]
    idle = socket.create_connection(("127.0.0.1", served.port), timeout=15)  # sends nothing
    for thread in slow:
        thread.start()
    served_meanwhile = []
    try:
        with client_from("127.0.0.3") as client:
            deadline = time.monotonic() + HEADER_TIMEOUT_S + 1.0
            while time.monotonic() < deadline:
                answer = client.post(f"{served.url}/v1/uhi/predict", json=LEGACY_BODY)
                served_meanwhile.append(answer.status_code)
                time.sleep(0.05)
        for thread in slow:
            thread.join(timeout=HEADER_TIMEOUT_S + 10)
        assert idle.recv(1) == b""  # closed by the server, not by us
    finally:
        stop.set()
        idle.close()
    assert len(cut_after) == len(slow), cut_after  # all 100 s of headers were cut
    assert all(HEADER_TIMEOUT_S - 0.2 < t < HEADER_TIMEOUT_S + 3 for t, _ in cut_after), cut_after
    for _, said in cut_after:  # a 408 in the error shape, or just closed
        assert said == b"" or said.startswith(b"HTTP/1.1 408"), said[:200]
        if said:
            assert b"TERRAOPS_HEADER_TIMEOUT_S" in said
    assert served_meanwhile and set(served_meanwhile) == {200}, served_meanwhile


# ----- feedback -----------------------------------------------------------------------------


def feedback_rows(settings: Settings) -> int:
    return len(FeedbackStore(settings.feedback_db).rows("uhi"))


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", f"Bearer {FEEDBACK_TOKEN}x", f"Basic {FEEDBACK_TOKEN}"],
    ids=["none", "wrong", "longer", "basic"],
)
def test_feedback_without_the_token_is_401_and_stores_nothing(
    served: Served, authorization: str | None
) -> None:
    before = feedback_rows(served.settings)
    headers = {"Authorization": authorization} if authorization else {}
    with client_from("127.0.0.4") as client:
        answer = client.post(
            f"{served.url}/v1/uhi/feedback",
            json={"features": LEGACY_BODY, "observed": 99.0},
            headers=headers,
        )
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "auth" and "feedback token" in answer.json()["message"]
    assert feedback_rows(served.settings) == before


def test_feedback_flood_is_429_then_accepted_after_retry_after(served: Served) -> None:
    body = {"features": LEGACY_BODY, "observed": 31.0}
    auth = {"Authorization": f"Bearer {FEEDBACK_TOKEN}"}
    url = f"{served.url}/v1/uhi/feedback"
    with client_from("127.0.0.5") as flooder, client_from("127.0.0.6") as other:
        statuses = []
        for _ in range(FEEDBACK_RATE + 5):  # wrong tokens count too: guessing is limited
            statuses.append(flooder.post(url, json=body, headers={"Authorization": "Bearer x"}))
        limited = statuses[-1]
        assert [r.status_code for r in statuses].count(401) in range(
            FEEDBACK_RATE, FEEDBACK_RATE + 2
        )
        assert limited.status_code == 429, limited.text
        assert limited.json()["error"] == "rate_limited"
        assert "TERRAOPS_FEEDBACK_RATE_PER_MIN" in limited.json()["hint"]
        before = feedback_rows(served.settings)
        assert flooder.post(url, json=body, headers=auth).status_code == 429
        assert feedback_rows(served.settings) == before
        assert other.post(url, json=body, headers=auth).status_code == 201  # its own bucket
        time.sleep(int(limited.headers["Retry-After"]) + 0.2)
        assert flooder.post(url, json=body, headers=auth).status_code == 201


# ----- model cache ------------------------------------------------------------------------


def test_an_orphaned_download_is_removed_at_start_and_a_live_one_kept(served: Served) -> None:
    assert not served.orphan.exists()
    assert (served.in_progress / "model" / "model.pkl").is_file()
    said = "".join(served.log.read_text().split())  # the console wraps long lines
    assert f"removedaninterrupteddownload{served.orphan}" in said
    assert served.in_progress.name not in said
