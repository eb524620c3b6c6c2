"""Sample files carried by a Debian package: fetched by URL (or ``apt-get download``), read
without dpkg.

The Olinda/Recife sample is two GeoTIFFs that Debian's ``r-cran-stars`` package
(bookworm, 0.6-0-4; the R package ``stars``, Apache-2.0) ships as test data:
``L7_ETMs.tif``, a 349×352 px, 28.5 m crop of a Landsat 7 ETM+ scene over Olinda
and Recife, Brazil (bands 1, 2, 3, 4, 5 and 7 as 8-bit Level-1 digital numbers,
SIRGAS 2000 / UTM 25S, no thermal band, no MTL, no QA band), and
``olinda_dem_utm25s.tif``, a 90 m elevation model of the same area. The package's
``copyright`` file is kept beside them.

A ``.deb`` is an ``ar`` archive whose ``data.tar.*`` member holds the installed
files, so it is opened with the standard library (``ar`` read here, ``tarfile``
with ``lzma``): nothing is installed and dpkg is not needed. The package's sha256
is pinned and checked before it is opened, and each file taken from it is checked
against its own pinned sha256. Where it comes from, in order: a samples mirror
folder holding the ``.deb`` (a copy with the wrong checksum is refused, never
replaced), the Debian archive's pool over HTTPS (the standard library honours
``https_proxy``), then ``apt-get download`` where apt is installed (it uses the
machine's own Debian mirror and proxy settings).
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from terraops.errors import InvalidInputError, NotFoundError

AR_MAGIC = b"!<arch>\n"
DEBIAN_POOL = "https://deb.debian.org/debian/pool"
_AR_HEADER = 60
_TAR_MODES = {".xz": "r:xz", ".gz": "r:gz", ".bz2": "r:bz2", "": "r:"}


@dataclass(frozen=True)
class DebSample:
    """Some files inside a pinned Debian binary package, each with its pinned sha256."""

    name: str  # the folder they are unpacked into
    package: str
    version: str
    deb_file: str
    deb_sha256: str
    urls: tuple[str, ...]
    members: tuple[tuple[str, str], ...]  # (path inside the package, sha256)
    description: str
    licence: str


OLINDA_SAMPLE = DebSample(
    name="olinda-recife-landsat7-r-cran-stars",
    package="r-cran-stars",
    version="0.6-0-4",
    deb_file="r-cran-stars_0.6-0-4_all.deb",
    deb_sha256="a273913b84ce428c8a6f5eb3538776c8bcefb5756d473f0c4c2fd2a914e98a53",
    urls=(f"{DEBIAN_POOL}/main/r/r-cran-stars/r-cran-stars_0.6-0-4_all.deb",),
    members=(
        (
            "usr/lib/R/site-library/stars/tif/L7_ETMs.tif",
            "3b722bf4470144b6691bf720bac08f47c99464acff4dd258252891c06312678e",
        ),
        (
            "usr/lib/R/site-library/stars/tif/olinda_dem_utm25s.tif",
            "6954774429a04c827c8330943ee43a176a29d52be2f220100f352894c4b9f173",
        ),
        (
            "usr/share/doc/r-cran-stars/copyright",
            "e0f1cd25db12075ee589c31cd6521b87aea66be94d6fe6dc07819d1b6dd56846",
        ),
    ),
    description="Landsat 7 ETM+ L7_ETMs.tif (Olinda/Recife, 6 bands as DN, no thermal) and "
    "its DEM, 349x352 px at 28.5 m, from Debian's r-cran-stars",
    licence="Apache-2.0 (the stars package; Debian's copyright file is kept beside the files)",
)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_ar(data: bytes) -> dict[str, bytes]:
    """The members of a (System V / GNU) ``ar`` archive, as a ``.deb`` is: name → bytes."""
    if not data.startswith(AR_MAGIC):
        raise InvalidInputError("not a Debian package: it does not start with the ar magic")
    members: dict[str, bytes] = {}
    pos = len(AR_MAGIC)
    while pos + _AR_HEADER <= len(data):
        header = data[pos : pos + _AR_HEADER]
        if header[58:60] != b"`\n":
            raise InvalidInputError(f"damaged ar archive: bad member header at byte {pos}")
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise InvalidInputError(f"damaged ar archive: bad size at byte {pos}") from None
        start = pos + _AR_HEADER
        if start + size > len(data):
            raise InvalidInputError(f"truncated ar archive: member {name!r} is cut short")
        members[name] = data[start : start + size]
        pos = start + size + (size % 2)  # members are aligned on even offsets
    return members


def check_deb(sample: DebSample, deb: Path) -> bytes:
    """The package's bytes, refused when their sha256 is not the pinned one."""
    data = deb.read_bytes()
    digest = _sha256(data)
    if digest != sample.deb_sha256:
        raise InvalidInputError(
            f"{deb} has sha256 {digest}, expected {sample.deb_sha256}: not the published "
            f"{sample.deb_file} (damaged or altered)",
            hint=f"delete it and fetch the original from {sample.urls[0]}",
        )
    return data


def unpack_deb(sample: DebSample, deb: Path, dest: Path) -> dict[str, str]:
    """Check the package, then write the listed files (flat) into ``dest``; name → sha256."""
    members = read_ar(check_deb(sample, deb))
    data_name = next((n for n in members if n.startswith("data.tar")), None)
    mode = _TAR_MODES.get(data_name.removeprefix("data.tar")) if data_name else None
    if data_name is None or mode is None:
        raise InvalidInputError(
            f"{deb.name} has no readable data.tar member (members: {', '.join(members)})"
        )
    wanted = dict(sample.members)
    files: dict[str, str] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(members[data_name]), mode=mode) as tar:  # type: ignore[call-overload]
            for member in tar.getmembers():
                path = member.name.removeprefix("./")
                if path not in wanted or not member.isfile():
                    continue
                handle = tar.extractfile(member)
                content = handle.read() if handle is not None else b""
                digest = _sha256(content)
                if digest != wanted[path]:
                    raise InvalidInputError(
                        f"{path} in {deb.name} has sha256 {digest}, expected {wanted[path]}"
                    )
                (dest / Path(path).name).write_bytes(content)
                files[Path(path).name] = digest
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidInputError(f"{deb.name}'s {data_name} is not readable: {exc}") from exc
    missing = [path for path in wanted if Path(path).name not in files]
    if missing:
        raise InvalidInputError(f"{deb.name} holds no {', '.join(missing)}")
    return files


def _offline_hint(sample: DebSample) -> str:
    return (
        f"this needs the network (https to deb.debian.org, or https_proxy) or apt; offline, "
        f"download {sample.urls[0]} elsewhere into a folder and set TERRAOPS_SAMPLES_MIRROR to it"
    )


def _apt_get_download(sample: DebSample, into: Path, timeout_s: float) -> Path | None:
    """``apt-get download PACKAGE=VERSION`` into ``into`` where apt is there, else None."""
    apt = shutil.which("apt-get")
    if apt is None:
        return None
    try:
        done = subprocess.run(
            [apt, "download", "-q", f"{sample.package}={sample.version}"],
            cwd=into,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except (subprocess.TimeoutExpired, OSError):
        return None
    found = into / sample.deb_file
    return found if done.returncode == 0 and found.is_file() else None


def download_deb(sample: DebSample, into: Path, timeout_s: float) -> Path:
    """The pinned package in ``into``: from its archive URLs, else ``apt-get download``."""
    target = into / sample.deb_file
    reasons: list[str] = []
    for url in sample.urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                target.write_bytes(response.read())
            return target
        except (urllib.error.URLError, OSError) as exc:  # TimeoutError is an OSError
            reasons.append(f"{url}: {getattr(exc, 'reason', None) or exc}")
    fetched = _apt_get_download(sample, into, timeout_s)
    if fetched is not None:
        return fetched
    reasons.append("apt-get download: " + ("failed" if shutil.which("apt-get") else "no apt"))
    raise NotFoundError(
        f"could not download {sample.deb_file}: {'; '.join(reasons)}",
        hint=_offline_hint(sample),
    )


def mirrored_or_downloaded(
    sample: DebSample, mirror: Path | None, into: Path, timeout_s: float
) -> Path:
    """The mirror's copy when it has one (checked, never silently replaced), else a download
    (checked too)."""
    if mirror is not None:
        copy = Path(mirror).expanduser() / sample.deb_file
        if copy.is_file():
            check_deb(sample, copy)
            return copy
    downloaded = download_deb(sample, into, timeout_s)
    check_deb(sample, downloaded)
    return downloaded
