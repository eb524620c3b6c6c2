"""Real Prometheus and Alertmanager servers for the monitoring tests, and a webhook receiver.

Debian's binaries run on loopback with their own temporary storage, each
started through the ``start_process`` fixture (so teardown stops them). Both
are told to look at the test's servers only: Prometheus scrapes one
``terraops serve`` every second, Alertmanager delivers to a
:class:`WebhookReceiver` listening in the test process.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from serving_support import RunningProcess, free_port, wait_until

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"


def start_prometheus(
    start_process: Callable[..., RunningProcess],
    target: str,
    tmp_path: Path,
    *,
    rule_files: tuple[Path, ...] = (),
    alertmanager: str | None = None,
) -> RunningProcess:
    """Prometheus scraping ``target`` (host:port) every second; evaluating ``rule_files``
    every second and sending what fires to ``alertmanager`` (host:port) when given."""
    if not Path(PROMETHEUS).exists():
        pytest.fail("Debian's prometheus is missing: run scripts/install-system-deps.sh")
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "terraops", "static_configs": [{"targets": [target]}]}],
    }
    if rule_files:
        config["rule_files"] = [str(path) for path in rule_files]
    if alertmanager is not None:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    args = [
        PROMETHEUS,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1h",
        "--log.level=warn",
    ]
    server = start_process(args, {"PATH": "/usr/bin:/bin"}, f"http://127.0.0.1:{port}", "prom")
    wait_until(
        lambda: httpx.get(f"{server.url}/-/ready", timeout=2).status_code == 200,
        60,
        "prometheus ready",
        server,
    )
    return server


def start_alertmanager(
    start_process: Callable[..., RunningProcess], config: dict[str, Any], tmp_path: Path
) -> RunningProcess:
    """Alertmanager with ``config`` as its alertmanager.yml; a single node (no gossip port)."""
    config_file = tmp_path / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    args = [
        ALERTMANAGER,
        f"--config.file={config_file}",
        f"--storage.path={tmp_path / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # empty: no cluster, no second port to collide on
        "--log.level=warn",
    ]
    server = start_process(args, {"PATH": "/usr/bin:/bin"}, f"http://127.0.0.1:{port}", "am")
    wait_until(
        lambda: httpx.get(f"{server.url}/-/ready", timeout=2).status_code == 200,
        60,
        "alertmanager ready",
        server,
    )
    return server


def query(prometheus: RunningProcess, promql: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": promql}, timeout=5)
    answer.raise_for_status()
    body = answer.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def by_label(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in result}


def eventually(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """Prometheus scrapes every second: poll until its figures catch up."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        ok, last = check()
        if ok:
            return last
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}; last seen: {last}")


@dataclass
class WebhookReceiver:
    """What Alertmanager POSTed: (path, alert group as JSON), in arrival order."""

    url: str
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def alerts(self, path: str) -> list[dict[str, Any]]:
        """Every alert of every group delivered to ``path`` (a receiver's own URL path)."""
        return [a for p, group in list(self.received) if p == path for a in group["alerts"]]


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A tiny HTTP server in the test process, standing in for a pager or a chat bridge."""
    receiver = WebhookReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            receiver.received.append((self.path, json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            """Quiet: the test reports what arrived, not every request."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="webhook", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
