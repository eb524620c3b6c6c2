"""The reflectance bands every scene carries, in their one order.

A scene (synthetic or imported), the feature path, the U-Net's input stack and the
RGB/false-colour layers all read the bands in this order; it lives in a module of its
own so that a declaration that names the bands imports nothing else.
"""

from __future__ import annotations

REFLECTANCE_BANDS: tuple[str, ...] = ("red", "green", "blue", "nir", "swir")
