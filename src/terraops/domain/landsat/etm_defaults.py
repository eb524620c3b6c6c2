"""The assumptions an ETM+ import makes when a file comes without its metadata.

Kept apart from :mod:`terraops.domain.landsat.etm` (numpy) so that the command
line can show them as option defaults without importing the array stack.
"""

from __future__ import annotations

DEFAULT_GAINS = "HHHLHH"
"""Gain of bands 1, 2, 3, 4, 5, 7: the Landsat 7 rule for land under a sun above 45°."""
DEFAULT_SUN_ELEVATION_DEG = 50.0
"""A mid-latitude summer morning's sun: what an MTL would state, when there is none."""
