"""STAC Items and their assets, local or remote (pystac, httpx, rasterio).

An item is read with pystac (a local JSON file or a URL) and every asset href
made absolute against the item's own location. Local assets are used where
they are; remote ones (http/https) are read by GDAL in ranges (Sentinel-2
COGs) or downloaded into a staging folder (the files of a Landsat product,
which the Landsat importer reads as one folder). An asset that cannot be
reached fails with its key and href named, before anything is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import httpx
import pystac
import rasterio
from pystac.errors import STACError, STACTypeError
from rasterio.errors import RasterioIOError

from terraops.errors import InvalidInputError, NotFoundError

REMOTE_SCHEMES = ("http", "https")
DOWNLOAD_TIMEOUT_S = 120.0
_OFFLINE_HINT = (
    "without a network, download the item's assets and point its hrefs at the local files "
    "(relative hrefs are read next to the item's JSON)"
)


@dataclass(frozen=True)
class StacItem:
    """An item as a plain mapping, with every asset href absolute."""

    item: dict[str, Any]
    hrefs: dict[str, str]  # asset key → absolute local path or URL
    location: str  # where the item was read from


def is_remote(href: str) -> bool:
    return urlparse(href).scheme in REMOTE_SCHEMES


def _refuse_other_schemes(key: str, href: str) -> None:
    scheme = urlparse(href).scheme
    if len(scheme) > 1 and scheme not in (*REMOTE_SCHEMES, "file"):
        raise InvalidInputError(
            f"asset {key!r} has a {scheme}:// href ({href}): terraops reads local files and "
            "http(s) URLs",
            hint="use the asset's https alternate, or download it and point the href at the file",
        )


def _local_path(href: str) -> Path:
    parsed = urlparse(href)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(href)


def read_item(location: str) -> StacItem:
    """A STAC Item from a JSON file or URL; a clear error for anything else."""
    if not is_remote(location) and not Path(location).is_file():
        raise NotFoundError(f"STAC item not found: {location}")
    try:
        item = pystac.Item.from_file(location)
    except STACTypeError as exc:
        raise InvalidInputError(
            f"{location} is not a STAC Item ({exc})",
            hint="save one item of a search (item.to_dict()) to a JSON file",
        ) from exc
    except (json.JSONDecodeError, UnicodeDecodeError, STACError, KeyError, ValueError) as exc:
        raise InvalidInputError(f"{location} is not a valid STAC Item: {exc}") from exc
    except OSError as exc:
        raise InvalidInputError(
            f"cannot read the STAC item {location}: {exc}", hint=_OFFLINE_HINT
        ) from exc
    hrefs: dict[str, str] = {}
    for key, asset in item.assets.items():
        href = asset.get_absolute_href() or asset.href
        scheme = urlparse(href).scheme
        local = scheme in ("", "file") or len(scheme) == 1  # a Windows drive letter
        hrefs[key] = str(_local_path(href)) if local else href
    where = location if is_remote(location) else str(Path(location).absolute())
    return StacItem(item.to_dict(include_self_link=False, transform_hrefs=False), hrefs, where)


def check_asset(key: str, href: str) -> None:
    """A local asset must exist; a remote raster must open (GDAL reads its header)."""
    _refuse_other_schemes(key, href)
    if not is_remote(href):
        if not Path(href).is_file():
            raise NotFoundError(
                f"asset {key!r} of the STAC item not found: {href}", hint=_OFFLINE_HINT
            )
        return
    try:
        with rasterio.open(href):
            pass
    except RasterioIOError as exc:
        raise InvalidInputError(
            f"asset {key!r} could not be read from {href}: {exc}", hint=_OFFLINE_HINT
        ) from exc


def read_text(key: str, href: str) -> str:
    """A small text asset (an MTL, an MTD_MSIL2A.xml), local or remote."""
    _refuse_other_schemes(key, href)
    if not is_remote(href):
        path = Path(href)
        if not path.is_file():
            raise NotFoundError(
                f"asset {key!r} of the STAC item not found: {href}", hint=_OFFLINE_HINT
            )
        return path.read_text(encoding="utf-8", errors="replace")
    try:
        response = httpx.get(href, timeout=DOWNLOAD_TIMEOUT_S, follow_redirects=True)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise InvalidInputError(
            f"asset {key!r} could not be fetched from {href}: {exc}", hint=_OFFLINE_HINT
        ) from exc
    return response.text


def stage(key: str, href: str, target: Path) -> None:
    """Make ``target`` the asset: a link to a local file, or the downloaded remote one."""
    _refuse_other_schemes(key, href)
    if not is_remote(href):
        source = Path(href)
        if not source.is_file():
            raise NotFoundError(
                f"asset {key!r} of the STAC item not found: {href}", hint=_OFFLINE_HINT
            )
        target.symlink_to(source.absolute())
        return
    partial = target.with_name(target.name + ".part")
    try:
        with httpx.stream(
            "GET", href, timeout=DOWNLOAD_TIMEOUT_S, follow_redirects=True
        ) as response:
            response.raise_for_status()
            with open(partial, "wb") as handle:
                for chunk in response.iter_bytes(1 << 20):
                    handle.write(chunk)
    except httpx.HTTPError as exc:
        partial.unlink(missing_ok=True)
        raise InvalidInputError(
            f"asset {key!r} could not be fetched from {href}: {exc}", hint=_OFFLINE_HINT
        ) from exc
    partial.rename(target)
