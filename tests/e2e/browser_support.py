"""Shared by the browser tests: Chromium, the token, the page recorder, the server, the
screenshot and animation writers."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from PIL import Image

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


#: The README's images stay small: a still is at most this many bytes, an animation this many.
STILL_MAX_BYTES = 250_000
ANIMATION_MAX_BYTES = 1_000_000


def save_still(
    png: bytes, path: Path, *, width: int = 1100, crop: tuple[int, int] | None = None
) -> Path:
    """A page screenshot as a small PNG: cropped to ``crop`` (width, height) from the top
    left, scaled down to ``width`` and palette-reduced until it is under the limit."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    if crop is not None:
        image = image.crop((0, 0, min(crop[0], image.width), min(crop[1], image.height)))
    for scale_width, colours in ((width, 256), (width, 128), (int(width * 0.8), 96)):
        scaled = (
            image.resize(
                (scale_width, round(image.height * scale_width / image.width)),
                Image.Resampling.LANCZOS,
            )
            if image.width > scale_width
            else image
        )
        buffer = io.BytesIO()
        scaled.quantize(colors=colours, method=Image.Quantize.MEDIANCUT).save(
            buffer, format="PNG", optimize=True
        )
        if buffer.tell() <= STILL_MAX_BYTES:
            break
    path.write_bytes(buffer.getvalue())
    assert path.stat().st_size <= STILL_MAX_BYTES, f"{path.name}: {path.stat().st_size} bytes"
    return path


@dataclass
class Recording:
    """Frames of a real run in the browser: one ``page.screenshot`` per step, each held
    on screen for its own time, written as one animated WebP (what the README plays)."""

    page: Any
    width: int = 880
    frames: list[Image.Image] = field(default_factory=list)
    durations_ms: list[int] = field(default_factory=list)

    def frame(self, hold_ms: int = 1200) -> None:
        """The page as it is now, shown for ``hold_ms`` in the animation."""
        shot = Image.open(io.BytesIO(self.page.screenshot())).convert("RGB")
        height = round(shot.height * self.width / shot.width)
        self.frames.append(shot.resize((self.width, height), Image.Resampling.LANCZOS))
        self.durations_ms.append(hold_ms)

    def save(self, path: Path) -> Path:
        """Write the animation, lowering the quality until it fits the README's budget."""
        assert len(self.frames) >= 2, "an animation needs at least two frames"
        for quality in (70, 55, 40, 25):
            buffer = io.BytesIO()
            first, *rest = self.frames
            first.save(
                buffer, format="WEBP", save_all=True, append_images=rest,
                duration=self.durations_ms, loop=0, quality=quality, method=4,
            )  # fmt: skip
            if buffer.tell() <= ANIMATION_MAX_BYTES:
                break
        path.write_bytes(buffer.getvalue())
        assert path.stat().st_size <= ANIMATION_MAX_BYTES, f"{path.name}: {path.stat().st_size}"
        return path
