"""Physically grounded synthetic cities (pure; files are written by the pipeline).

``spec`` (what to make) → ``terrain`` (DEM, river, sea) → ``layout`` (land
cover, buildings, trees) → ``spectra`` (imagery) → ``lst`` (temperature) and
:mod:`terraops.domain.hydrology` (flood depth); ``generator`` ties them up.


Import the parts from their modules (``terraops.domain.scene.generator`` …):
this package file stays empty so that light users (the CLI's option list
needs only ``morphologies.MORPHOLOGIES``) do not pay for scipy at start-up.
"""
