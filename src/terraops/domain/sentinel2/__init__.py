"""Sentinel-2 MSI Level-2A products → terraops layers (pure: numpy, XML text, no I/O).

A Level-2A product is bottom-of-atmosphere (surface) reflectance made by ESA's
Sen2Cor, delivered as a SAFE folder (``S2A_MSIL2A_<sensing>_N<baseline>_R<orbit>_
T<tile>_<generation>.SAFE``) with one JPEG2000 file per band and resolution under
``GRANULE/L2A_*/IMG_DATA/R10m|R20m|R60m``, the product metadata ``MTD_MSIL2A.xml``
and the tile metadata ``GRANULE/*/MTD_TL.xml`` (or, from a STAC API, one
Cloud-Optimised GeoTIFF per band).

* Reflectance = (DN + BOA_ADD_OFFSET) / BOA_QUANTIFICATION_VALUE; DN 0 is no
  data and 65535 saturated (Sentinel-2 Products Specification Document,
  S2-PDGS-TAS-DI-PSD, v14.9, L2A product format). From processing baseline
  04.00 (25 January 2022, and every reprocessed product of baseline ≥ 05.00)
  the offset is −1000 so that dark surfaces keep negative values; before, there
  is no offset list and the offset is 0.
* The five terraops bands are the Landsat import's: B02 blue, B03 green, B04
  red, B08 nir (10 m) and B11 swir (20 m, resampled to 10 m). B12 (the
  counterpart of Landsat's band 7, which the Landsat import reads only for its
  spectral cloud test) is not needed: the mask comes from the scene
  classification.
* The mask is Sen2Cor's scene classification layer (SCL, 20 m, nearest
  neighbour to 10 m): no data 0, saturated or defective 1, cloud shadow 3,
  cloud medium / high probability 8 / 9, thin cirrus 10, snow or ice 11.

Modules: ``metadata`` (the two XML files and the product name) and ``product``
(a window's digital numbers → reflectance, the clear mask and the record).
"""
