"""Reading the small state files under the home (reports, status JSON) and its free space.

The server's ``/metrics`` reads these at scrape time, so every worker reports
the same figures without sharing memory. A scrape must never fail because one
file is missing, half-written by hand or unreadable: each reader here answers
``None`` (or skips the file) instead of raising. Writers use
:mod:`terraops.adapters.atomic`, so a file is either the old or the new one.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; ``None`` when it is missing, unreadable or not an object."""
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s: %s", path, exc)
        return None
    return payload if isinstance(payload, dict) else None


def json_files(folder: Path, pattern: str = "*.json") -> Iterator[Path]:
    """The JSON files of ``folder`` matching ``pattern`` (none when the folder is missing)."""
    folder = Path(folder)
    if not folder.is_dir():
        return iter(())
    return folder.glob(pattern)


def free_ratio(path: Path) -> float | None:
    """Free / total bytes of the filesystem holding ``path`` (or its nearest existing parent).

    ``None`` when not even a parent exists or the filesystem cannot be asked.
    """
    existing = next((p for p in (Path(path), *Path(path).parents) if p.exists()), None)
    if existing is None:
        return None
    try:
        usage = shutil.disk_usage(existing)
    except OSError:
        return None
    return usage.free / usage.total if usage.total else None
