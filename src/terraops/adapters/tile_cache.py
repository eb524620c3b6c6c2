"""A byte-bounded LRU of rendered map tiles, shared by the threads of one server.

Why a cache at all: a catalogue layer's file never changes in place — a new
prediction is a new file with a new fingerprint, or a new model version — so a
rendered tile is valid for as long as its layer's :attr:`Layer.cache_token`
is. Rendering a tile (read, warp, rescale, colour, PNG-encode) costs
milliseconds of CPU; a dictionary lookup costs microseconds. Panning a map
asks for the same few dozen tiles again and again.

Why bounded in *bytes*: tiles vary from a few hundred bytes (a flat colour) to
~200 kB (noisy RGB imagery at ``@2x``); a count limit would either waste memory
or hold too little. Why a lock: tiles are rendered in the threadpool and read
on the event loop, so two threads may touch the cache at once.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

MEGABYTE = 1024 * 1024


@dataclass(frozen=True)
class TileKey:
    """Everything that decides a tile's bytes.

    ``style`` holds the *normalised* style parameters (colormap name and
    rescale range after defaults are applied), so ``?rescale=20,40`` and the
    layer default ``(20.0, 40.0)`` share one entry.
    """

    token: str
    z: int
    x: int
    y: int
    scale: int
    fmt: str
    style: tuple[Any, ...] = ()

    def etag(self) -> str:
        """A strong HTTP ETag: the same key always gives the same bytes."""
        digest = hashlib.sha256(repr(self).encode("utf-8")).hexdigest()[:32]
        return f'"{digest}"'


class TileCache:
    """Thread-safe LRU of tile bytes, at most ``max_bytes`` in total.

    ``max_bytes == 0`` turns caching off (every ``get`` is a miss, nothing is
    stored) so an operator can measure uncached rendering with one setting.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self._entries: OrderedDict[TileKey, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        self._evictions = 0

    @classmethod
    def from_megabytes(cls, megabytes: float) -> TileCache:
        return cls(int(megabytes * MEGABYTE))

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def get(self, key: TileKey) -> bytes | None:
        """The cached bytes (now most recently used), or ``None``."""
        with self._lock:
            data = self._entries.get(key)
            if data is None:
                self._misses += 1
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            return data

    def put(self, key: TileKey, data: bytes) -> None:
        """Store a tile, evicting least recently used ones to stay under the bound.

        A tile larger than the whole budget is not stored (it would evict
        everything and then itself).
        """
        size = len(data)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            self._entries[key] = data
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= len(evicted)
                self._evictions += 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def stats(self) -> dict[str, int]:
        """Counters for ``/metrics``-style reporting and for tests."""
        with self._lock:
            return {
                "hits": self._hits,
                "misses": self._misses,
                "evictions": self._evictions,
                "entries": len(self._entries),
                "bytes": self._bytes,
                "max_bytes": self.max_bytes,
            }


__all__ = ["TileCache", "TileKey"]
