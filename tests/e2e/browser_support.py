"""Shared by the browser tests: Chromium, the token, the page recorder, the server."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from serving_support import RunningProcess
from terraops.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
ADMIN_TOKEN = "e2e-admin-token-7f3a"  # the server's TERRAOPS_ADMIN_TOKEN in these tests
STORMS_MM = (50.0, 100.0)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
LOOPBACK = {"127.0.0.1"}


@dataclass
class PageWatch:
    """What a page did that a test checks: console errors, foreign hosts, tiles."""

    console_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    tile_responses: list[Any] = field(default_factory=list)

    def errors_except(self, *allowed: str) -> list[str]:
        """Console errors, less those containing one of ``allowed`` (expected refusals)."""
        return [e for e in self.console_errors if not any(a in e for a in allowed)]


def guard(watch: PageWatch) -> Callable[[Any], None]:
    """Route handler: loopback requests go through, anything else is recorded and aborted."""

    def handle(route: Any) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob") or parts.hostname in LOOPBACK:
            route.continue_()
            return
        watch.foreign_requests.append(url)
        route.abort()

    return handle


def serve(start_server: Callable[..., RunningProcess], settings: Settings) -> RunningProcess:
    """``terraops serve`` (one worker) with the tests' admin token."""
    return start_server(settings, workers=1, TERRAOPS_ADMIN_TOKEN=ADMIN_TOKEN)


def assert_offline_and_clean(watch: PageWatch, *allowed: str) -> None:
    assert watch.foreign_requests == [], f"requests left 127.0.0.1: {watch.foreign_requests}"
    assert watch.errors_except(*allowed) == [], f"console errors: {watch.console_errors}"
