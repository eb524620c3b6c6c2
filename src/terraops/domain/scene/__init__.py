"""Physically grounded synthetic cities (pure; files are written by the pipeline).

``spec`` (what to make) → ``terrain`` (DEM, river, sea) → ``layout`` (land
cover, buildings, trees) → ``spectra`` (imagery) → ``lst`` (temperature) and
:mod:`terraops.domain.hydrology` (flood depth); ``generator`` ties them up.
"""

from terraops.domain.scene.generator import (
    REFLECTANCE_NODATA,
    REFLECTANCE_SCALE,
    GeneratedScene,
    generate,
    physics_block,
)
from terraops.domain.scene.spec import GENERATOR_VERSION, MORPHOLOGIES, SceneSpec
from terraops.domain.scene.spectra import BANDS

__all__ = [
    "BANDS",
    "GENERATOR_VERSION",
    "MORPHOLOGIES",
    "REFLECTANCE_NODATA",
    "REFLECTANCE_SCALE",
    "GeneratedScene",
    "SceneSpec",
    "generate",
    "physics_block",
]
