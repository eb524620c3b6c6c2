"""Samples carried by a Debian package: a ``.deb`` built here by code (an ``ar`` archive with
``debian-binary``, ``control.tar.xz`` and ``data.tar.xz``, as dpkg-deb writes them), fetched
from a local mirror folder, read without dpkg and checked file by file. The real
``r-cran-stars`` package is read from the samples cache set-up fills (skipped without it).
Nothing here downloads: the one download attempt goes to a closed local port.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from samples_support import kept_distribution
from terraops.adapters.deb_samples import OLINDA_SAMPLE, DebSample, read_ar, unpack_deb
from terraops.adapters.samples import fetch_distribution, fetch_sample, is_intact
from terraops.cli.main import app
from terraops.errors import InvalidInputError, NotFoundError
from terraops.settings import Settings

TIF = "usr/lib/R/site-library/stars/tif/L7_ETMs.tif"
DEM = "usr/lib/R/site-library/stars/tif/olinda_dem_utm25s.tif"
CONTENT = {TIF: b"II*\x00 pretend landsat" * 50, DEM: b"II*\x00 pretend dem" * 7}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tar_xz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _ar(members: list[tuple[str, bytes]]) -> bytes:
    out = bytearray(b"!<arch>\n")
    for name, data in members:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n"
        out += header.encode("ascii") + data + (b"\n" if len(data) % 2 else b"")
    return bytes(out)


def fake_deb(folder: Path, files: dict[str, bytes] = CONTENT) -> tuple[DebSample, Path]:
    """A .deb holding ``files`` in the mirror ``folder``, and a sample pinned to it."""
    data = _ar(
        [
            ("debian-binary", b"2.0\n"),
            ("control.tar.xz", _tar_xz({"control": b"Package: r-cran-stars\n"})),
            ("data.tar.xz", _tar_xz(files)),
        ]
    )
    folder.mkdir(parents=True, exist_ok=True)
    deb = folder / "r-cran-stars_9.9_all.deb"
    deb.write_bytes(data)
    sample = replace(
        OLINDA_SAMPLE,
        name="fake-olinda",
        version="9.9",
        deb_file=deb.name,
        deb_sha256=_sha(data),
        urls=("http://127.0.0.1:9/r-cran-stars_9.9_all.deb",),
        members=tuple((path, _sha(content)) for path, content in CONTENT.items()),
    )
    return sample, deb


def test_the_ar_reader_lists_a_packages_members(tmp_path: Path) -> None:
    _, deb = fake_deb(tmp_path)
    members = read_ar(deb.read_bytes())
    assert list(members) == ["debian-binary", "control.tar.xz", "data.tar.xz"]
    assert members["debian-binary"] == b"2.0\n"
    with pytest.raises(InvalidInputError, match="ar magic"):
        read_ar(b"PK\x03\x04 a zip")
    with pytest.raises(InvalidInputError, match="truncated"):
        read_ar(deb.read_bytes()[:200])


def test_fetch_from_a_mirror_folder_unpacks_the_checked_files(tmp_path: Path) -> None:
    sample, deb = fake_deb(tmp_path / "mirror")
    folder = fetch_sample(tmp_path / "samples", sample, mirror=deb.parent)
    assert is_intact(folder)
    assert (folder / "L7_ETMs.tif").read_bytes() == CONTENT[TIF]
    assert (folder / "olinda_dem_utm25s.tif").read_bytes() == CONTENT[DEM]
    stamp = json.loads((folder / "SAMPLE.json").read_text())
    assert stamp["deb_sha256"] == sample.deb_sha256 and "Apache-2.0" in stamp["licence"]
    assert set(stamp["files"]) == {"L7_ETMs.tif", "olinda_dem_utm25s.tif"}
    deb.unlink()  # an intact folder is kept: nothing is read or downloaded again
    assert fetch_sample(tmp_path / "samples", sample, mirror=deb.parent) == folder


def test_the_kept_package_comes_from_the_mirror(tmp_path: Path) -> None:
    sample, deb = fake_deb(tmp_path / "mirror")
    kept = fetch_distribution(sample, tmp_path / "downloads", mirror=deb.parent)
    assert kept == tmp_path / "downloads" / deb.name and kept.read_bytes() == deb.read_bytes()


def test_a_tampered_package_in_the_mirror_is_refused(tmp_path: Path) -> None:
    sample, deb = fake_deb(tmp_path / "mirror")
    deb.write_bytes(deb.read_bytes() + b"\0")
    with pytest.raises(InvalidInputError, match="not the published"):
        fetch_sample(tmp_path / "samples", sample, mirror=deb.parent)
    assert not (tmp_path / "samples" / sample.name).exists()


def test_a_file_with_the_wrong_checksum_inside_is_refused(tmp_path: Path) -> None:
    """The package's own sha256 matches, but one file in it is not the pinned one."""
    altered = {TIF: CONTENT[TIF][:-1] + b"!", DEM: CONTENT[DEM]}
    sample, deb = fake_deb(tmp_path / "mirror", altered)
    with pytest.raises(InvalidInputError, match=r"L7_ETMs\.tif in .* has sha256"):
        fetch_sample(tmp_path / "samples", sample, mirror=deb.parent)
    assert not (tmp_path / "samples" / sample.name).exists()
    intact, deb = fake_deb(tmp_path / "intact")
    missing = replace(intact, members=(*intact.members, ("usr/share/doc/none", "0" * 64)))
    with pytest.raises(InvalidInputError, match="holds no usr/share/doc/none"):
        unpack_deb(missing, deb, tmp_path)


def test_offline_without_a_mirror_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample, _ = fake_deb(tmp_path / "elsewhere")
    monkeypatch.setattr(shutil, "which", lambda name: None)  # no apt here
    with pytest.raises(NotFoundError, match=r"could not download r-cran-stars_9\.9") as raised:
        fetch_sample(tmp_path / "samples", sample, mirror=tmp_path / "empty", timeout_s=5)
    assert "TERRAOPS_SAMPLES_MIRROR" in (raised.value.hint or "")
    assert not (tmp_path / "samples" / sample.name).exists()


def test_the_real_package_unpacks_to_its_pinned_files(tmp_path: Path) -> None:
    """``terraops samples fetch --sample olinda`` with the kept package as the mirror."""
    kept = kept_distribution(OLINDA_SAMPLE)
    settings = Settings(home=tmp_path / "home", samples_mirror=kept.parent)
    args = ["samples", "fetch", "--sample", "olinda", "--dir", str(tmp_path / "s"), "--json"]
    result = CliRunner().invoke(app, args, obj=settings)
    assert result.exit_code == 0, result.output
    folder = Path(json.loads(result.stdout)["path"])
    assert folder == tmp_path / "s" / OLINDA_SAMPLE.name and is_intact(folder)
    for path, digest in OLINDA_SAMPLE.members:
        assert _sha(Path(folder / Path(path).name).read_bytes()) == digest
    assert "Apache-2.0" in (folder / "copyright").read_text()
