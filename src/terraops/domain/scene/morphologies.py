"""The kinds of city the generator makes.

Apart from :mod:`terraops.domain.scene.spec` (numpy) because the command line
lists them in ``terraops scene generate --help`` and must start without numpy.
"""

from __future__ import annotations

MORPHOLOGIES: tuple[str, ...] = ("dense", "sprawl", "coastal")
"""What each one looks like: :mod:`terraops.domain.scene.spec`."""
