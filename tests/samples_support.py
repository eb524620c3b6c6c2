"""The real samples, as the tests read them: from the cache set-up fills, never downloaded.

``make install`` runs ``scripts/fetch_test_samples.py``, which fetches each sample (and
keeps its pinned distribution) under ``.cache/samples`` in the repository. A test whose
sample is not there skips and says which command fetches it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from terraops.adapters.samples import DebSample, SdistSample, UrlSample, WheelSample, is_intact

AnySample = SdistSample | WheelSample | UrlSample | DebSample

#: The folder ``scripts/fetch_test_samples.py`` fills by default.
SAMPLES_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "samples"
#: The command that fills it (``make install`` runs it too).
FETCH_COMMAND = ".venv/bin/python scripts/fetch_test_samples.py"


def _skip_unfetched(what: str) -> None:
    pytest.skip(f"{what} is not in {SAMPLES_CACHE}: run `{FETCH_COMMAND}` (tests never download)")


def cached_sample(sample: AnySample, into: Path) -> Path:
    """A private copy, under ``into``, of the sample's intact cached folder (else skip)."""
    folder = SAMPLES_CACHE / sample.name
    if not is_intact(folder):
        _skip_unfetched(f"the {sample.name} sample")
    return Path(shutil.copytree(folder, into / sample.name))


def kept_distribution(sample: AnySample) -> Path:
    """The sample's pinned sdist, wheel, archive or package as set-up kept it (else skip)."""
    if isinstance(sample, UrlSample):
        name = sample.file_name
    elif isinstance(sample, DebSample):
        name = sample.deb_file
    else:
        name = sample.sdist_file if isinstance(sample, SdistSample) else sample.wheel_file
    kept = SAMPLES_CACHE / "downloads" / name
    if not kept.is_file():
        _skip_unfetched(name)
    return kept
