"""The layer catalogue: one JSON file under ``TERRAOPS_HOME/layers``.

Writers (the CLI's ``predict-raster``, ``layers add-scene``...) take a file
lock and replace the file atomically, so a reader never sees half a catalogue
and two writers never lose each other's entries. Readers (every API worker)
re-read the file only when its modification time or size changes, so a layer
added by the CLI appears on a running map without a restart and a request
costs one ``stat``.

A layer whose file was removed from disk stays listed with
``available: false`` and a reason: reported, never a crash.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from terraops.adapters import atomic
from terraops.domain.layers import Layer, is_layer_id
from terraops.errors import InvalidInputError, NotFoundError

CATALOGUE_NAME = "catalogue.json"
CATALOGUE_FORMAT = 1
_LOCK_TIMEOUT_S = 30.0


def file_fingerprint(path: Path) -> str:
    """First 16 hex digits of the file's SHA-256 (what keys the tile cache)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class LayerStatus:
    """A layer and whether its file is there."""

    layer: Layer
    available: bool
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.layer.to_dict(), "available": self.available, "problem": self.problem}


class LayerCatalogue:
    """Catalogue of map layers stored in ``root/catalogue.json``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = self.root / CATALOGUE_NAME
        self._lock_path = self.root / f".{CATALOGUE_NAME}.lock"
        self._cached_key: tuple[int, int] | None = None
        self._cached: dict[str, Layer] = {}
        self._read_lock = threading.Lock()

    # ----- reading ------------------------------------------------------------
    def _stat_key(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _load(self) -> dict[str, Layer]:
        key = self._stat_key()
        if key is None:
            return {}
        with self._read_lock:
            if key != self._cached_key:
                self._cached = self._parse(self.path.read_text(encoding="utf-8"))
                self._cached_key = key
            return self._cached

    def _parse(self, text: str) -> dict[str, Layer]:
        try:
            data = json.loads(text)
            entries = data["layers"]
            layers = [Layer.from_dict(entry) for entry in entries]
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInputError(
                f"layer catalogue {self.path} is unreadable: {exc}",
                hint="restore it from a backup or remove it and re-run predict-raster",
            ) from exc
        return {layer.id: layer for layer in layers}

    def layers(self) -> list[Layer]:
        """Every layer, sorted by group then id."""
        return sorted(self._load().values(), key=lambda layer: (layer.group, layer.id))

    def statuses(self) -> list[LayerStatus]:
        return [self.status(layer) for layer in self.layers()]

    @staticmethod
    def status(layer: Layer) -> LayerStatus:
        path = Path(layer.path)
        if not path.is_file():
            return LayerStatus(layer, False, f"file missing: {path}")
        return LayerStatus(layer, True)

    def get(self, layer_id: str) -> Layer:
        """The layer with this id; ``NotFoundError`` for an unknown or malformed id."""
        layer = self._load().get(layer_id) if is_layer_id(layer_id) else None
        if layer is None:
            raise NotFoundError(
                f"no layer {layer_id[:100]!r} in the catalogue",
                hint="GET /layers (or `terraops layers list`) lists the layers",
            )
        return layer

    def get_available(self, layer_id: str) -> Layer:
        """Like :meth:`get`, but a layer whose file is gone is ``NotFoundError`` too."""
        layer = self.get(layer_id)
        status = self.status(layer)
        if not status.available:
            raise NotFoundError(
                f"layer {layer_id!r} is catalogued but its file is missing",
                hint="re-create it (e.g. terraops predict-raster) or remove it: "
                f"terraops layers remove {layer_id}",
            )
        return layer

    # ----- writing --------------------------------------------------------------
    @contextmanager
    def _editing(self) -> Iterator[dict[str, Layer]]:
        """Lock, load, let the caller edit the dict, write back atomically."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidInputError(
                f"cannot create the layer catalogue folder {self.root}: {exc.strerror or exc}",
                hint="check TERRAOPS_HOME is writable",
            ) from exc
        with FileLock(str(self._lock_path), timeout=_LOCK_TIMEOUT_S):
            layers = (
                self._parse(self.path.read_text(encoding="utf-8")) if self.path.is_file() else {}
            )
            yield layers
            self._write(layers)

    def _write(self, layers: dict[str, Layer]) -> None:
        body = {
            "format": CATALOGUE_FORMAT,
            "layers": [layers[k].to_dict() for k in sorted(layers)],
        }
        atomic.atomic_write_json(self.path, body, indent=2, sort_keys=True)

    def add(self, *new: Layer) -> Layer:
        """Add or replace layers (same id = same product, newer file) in one write.

        Returns the last one given.
        """
        with self._editing() as layers:
            layers.update((layer.id, layer) for layer in new)
        return new[-1]

    def remove(self, layer_id: str) -> Layer:
        with self._editing() as layers:
            if layer_id not in layers:
                raise NotFoundError(f"no layer {layer_id!r} in the catalogue")
            return layers.pop(layer_id)
