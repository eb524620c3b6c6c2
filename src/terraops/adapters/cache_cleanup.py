"""Removing what killed processes left in the model cache.

A model download goes into a hidden temporary sibling of its target
(``.{version}.{pid}.{token}.download``, see ``atomic.temp_sibling``) and is
renamed into place when complete. A process killed mid-download (a promote
interrupted, a server OOM-killed) never renames nor removes it, and nothing
else ever looks there again: the folder stays forever, often hundreds of MB.

``terraops serve`` calls :func:`remove_orphaned_temporaries` at start. A
temporary is removed only when no one can still be writing it: its process is
gone from this host and nothing in it changed for ``grace_s``, or nothing in
it changed for ``stale_after_s`` whatever its pid says (a pid from another
host sharing the home, or one reused since). A download in progress in another
process keeps writing, so it is always fresh, and is left alone.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)\.(?P<token>[0-9a-f]{8})\.[a-z]+")
"""The names ``atomic.temp_sibling`` makes: ``.{name}.{pid}.{token}.{label}{suffix}``."""

GRACE_S = 120.0
"""A temporary of a dead process is left this long after its last change (another host?)."""
STALE_AFTER_S = 3600.0
"""A temporary unchanged this long is debris whatever its pid says."""


@dataclass(frozen=True)
class Removed:
    path: Path
    pid: int
    reason: str


def process_is_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (signal 0 checks, sends nothing)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    except OSError:
        return False
    return True


def last_change(path: Path) -> float:
    """The newest modification time in ``path`` (a download writes deep inside its folder)."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for folder, dirs, files in os.walk(path):
            for name in (*dirs, *files):
                try:
                    newest = max(newest, os.lstat(os.path.join(folder, name)).st_mtime)
                except OSError:  # removed while we walk: its owner is alive
                    return time.time()
    return newest


def _orphan_reason(path: Path, pid: int, grace_s: float, stale_after_s: float) -> str | None:
    if pid == os.getpid():
        return None
    idle_s = time.time() - last_change(path)
    if idle_s >= stale_after_s:
        return f"unchanged for {idle_s / 60:.0f} min"
    if idle_s >= grace_s and not process_is_alive(pid):
        return f"process {pid} is gone"
    return None


def remove_orphaned_temporaries(
    cache_dir: Path, *, grace_s: float = GRACE_S, stale_after_s: float = STALE_AFTER_S
) -> list[Removed]:
    """Remove the orphaned temporaries under ``cache_dir`` and one level of folders below.

    Returns what was removed (for the server's start-up message). Errors on one
    entry (permissions, a race with its owner) skip it: cleaning never stops a start.
    """
    if not cache_dir.is_dir():
        return []
    candidates = [*cache_dir.glob(".*"), *cache_dir.glob("*/.*")]
    removed = []
    for path in sorted(candidates):
        match = TEMP_NAME.match(path.name)
        if match is None:
            continue
        pid = int(match["pid"])
        try:
            reason = _orphan_reason(path, pid, grace_s, stale_after_s)
            if reason is None:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            continue
        removed.append(Removed(path, pid, reason))
    return removed


__all__ = ["Removed", "last_change", "process_is_alive", "remove_orphaned_temporaries"]
