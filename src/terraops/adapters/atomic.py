"""The one way terraops replaces a file or folder: write aside, then rename into place.

A reader (the API serving a layer, a second CLI run, a crash-restarted
server) must find either the previous complete file or the new complete
file, never half of one. So every writer puts its bytes into a temporary
sibling in the *same folder* (a rename is only atomic within one file
system), flushes them to the disk (``fsync``), renames the sibling onto the
target with :func:`os.replace`, and then flushes the folder entry too, so a
power cut right after the rename does not bring back the old name.

The temporary name carries the process id *and* a random token
(``.{name}.{pid}.{token}.tmp``): two processes, or two threads of one server,
writing the same target never share a temporary file, and the leading dot
keeps the debris of a killed process out of folder listings. On any error the
temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

TEMP_TOKEN_BYTES = 4
"""Random bytes in a temporary name: with the pid, enough that threads never collide."""


def temp_sibling(target: Path, *, label: str = "tmp", suffix: str = "") -> Path:
    """A fresh, hidden name next to ``target``: ``.{name}.{pid}.{token}.{label}{suffix}``.

    ``suffix`` is for libraries that pick a format from the file name
    (matplotlib, GDAL): ``suffix=".png"`` keeps the temporary file a ``.png``.
    """
    token = secrets.token_hex(TEMP_TOKEN_BYTES)
    return target.with_name(f".{target.name}.{os.getpid()}.{token}.{label}{suffix}")


def fsync_file(path: Path) -> None:
    """Flush a closed file's bytes to the disk (writers done through a library)."""
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def fsync_directory(folder: Path) -> None:
    """Flush a folder's entries (a rename) to the disk, where the platform allows it.

    Windows cannot open a folder for reading and some file systems refuse the
    fsync; the rename has happened either way, so those are not errors.
    """
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


def commit(temporary: Path, target: Path) -> None:
    """Make a fully written ``temporary`` file the new ``target``: fsync, rename, fsync folder."""
    fsync_file(temporary)
    os.replace(temporary, target)
    fsync_directory(target.parent)


@contextmanager
def atomic_path(
    target: Path, *, label: str = "tmp", suffix: str = "", parents: bool = False
) -> Iterator[Path]:
    """Yield a temporary sibling path to write; it replaces ``target`` when the block ends.

    For writers that need a path rather than bytes (parquet, GeoTIFF, HTML
    reports, plots). An exception inside the block removes the temporary file
    and leaves ``target`` untouched; ``parents`` creates the folder first.
    """
    target = Path(target)
    if parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    temporary = temp_sibling(target, label=label, suffix=suffix)
    try:
        yield temporary
        commit(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write_bytes(target: Path, data: bytes, *, parents: bool = False) -> None:
    """Replace ``target`` with ``data`` in one step."""
    with atomic_path(target, parents=parents) as temporary:
        temporary.write_bytes(data)


def atomic_write_text(
    target: Path, text: str, *, encoding: str = "utf-8", parents: bool = False
) -> None:
    """Replace ``target`` with ``text`` in one step."""
    atomic_write_bytes(target, text.encode(encoding), parents=parents)


def atomic_write_json(
    target: Path,
    payload: Any,
    *,
    indent: int | None = 2,
    sort_keys: bool = False,
    separators: tuple[str, str] | None = None,
    default: Callable[[Any], Any] | None = None,
    parents: bool = False,
) -> None:
    """Replace ``target`` with ``payload`` as JSON plus a final newline, in one step."""
    text = json.dumps(
        payload, indent=indent, sort_keys=sort_keys, separators=separators, default=default
    )
    atomic_write_text(target, text + "\n", parents=parents)


def atomic_write_feature_collection(
    target: Path, features: Iterable[dict[str, Any]], *, parents: bool = False
) -> int:
    """Replace ``target`` with a compact GeoJSON FeatureCollection written feature by
    feature (the same bytes as :func:`atomic_write_json` of the whole collection
    with ``separators=(",", ":")``): a whole scene's hot spots never sit in memory
    as one document. Returns how many features were written."""
    written = 0
    with atomic_path(target, parents=parents) as staging, staging.open("w") as out:
        out.write('{"type":"FeatureCollection","features":[')
        for feature in features:
            out.write(("," if written else "") + json.dumps(feature, separators=(",", ":")))
            written += 1
        out.write("]}\n")
    return written


@contextmanager
def temp_sibling_directory(target: Path, *, label: str = "tmp") -> Iterator[Path]:
    """Yield a new empty folder next to ``target``, removed with what is left in it at the end.

    For writers that fill a folder and then move it (or a folder inside it,
    as a model download does) onto ``target`` themselves. The parent of
    ``target`` must exist.
    """
    temporary = temp_sibling(Path(target), label=label)
    temporary.mkdir()
    try:
        yield temporary
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


@contextmanager
def atomic_directory_path(target: Path, *, label: str = "tmp") -> Iterator[Path]:
    """Yield a new empty sibling folder that replaces the folder ``target`` on success.

    A folder cannot be renamed over a non-empty one, so an existing ``target``
    is first renamed aside (under its own unique name) and removed after the
    new one is in place; between the two renames the name is briefly absent,
    never half written, and a failed second rename puts the old folder back.
    On an error the new folder is removed and ``target`` is untouched. The
    parent folder must exist.
    """
    target = Path(target)
    with temp_sibling_directory(target, label=label) as temporary:
        yield temporary
        _swap_directory(temporary, target)


def _swap_directory(new: Path, target: Path) -> None:
    previous = temp_sibling(target, label="old")
    if target.exists():
        target.rename(previous)
    try:
        new.rename(target)
    except OSError:
        if previous.exists():
            previous.rename(target)
        raise
    fsync_directory(target.parent)
    shutil.rmtree(previous, ignore_errors=True)
