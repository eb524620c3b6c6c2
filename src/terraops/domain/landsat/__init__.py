"""Landsat 8/9 OLI/TIRS products → terraops layers (pure: numpy/scipy, no I/O).

What a city's analyst downloads from USGS is a folder of one GeoTIFF per band
plus an ``*_MTL.txt`` holding the constants that turn digital numbers (DN)
into physics. Three generations of that metadata are in circulation and all
three are read here: pre-collection (2013–2017, group ``L1_METADATA_FILE``),
Collection 1 (same layout, ``LANDSAT_PRODUCT_ID``, ``COLLECTION_NUMBER = 01``)
and Collection 2 (group ``LANDSAT_METADATA_FILE``; Level-1 and Level-2).

The physics (each step cites its source; the constants are module-level so
the scene manifest can record exactly what was used):

* TOA reflectance ρ = (M·DN + A) / sin(θ_SE) — USGS Landsat 8 Data Users
  Handbook (LSDS-1574), section 5.
* Approximate surface reflectance by dark-object subtraction DOS1
  (Chavez 1988, RSE 24:459–479; Chavez 1996, PE&RS 62:1025–1036): the
  darkest object of each band is assumed to have 1 % surface reflectance, the
  excess is path radiance (haze) and is subtracted everywhere.
* Brightness temperature BT = K2 / ln(K1 / L + 1) from band-10 radiance.
* Emissivity by the NDVI-threshold method (Sobrino, Jiménez-Muñoz & Paolini
  2004, RSE 90:434–440), water by NDWI > 0 (McFeeters 1996).
* LST = BT / (1 + (λ·BT/ρ₂)·ln ε) (Artis & Carnahan 1982; Weng, Lu &
  Schubring 2004, RSE 89:467–483).
* Cloud: the product's QA band, plus Fmask's per-pixel potential-cloud test
  (Zhu & Woodcock 2012, RSE 118:83–94) and a cold-top test after its
  temperature probability, because the QA of older products misses much
  broken cumulus; the union is dilated by a few pixels. Cloud shadows are
  masked only where the QA flags them (Collections 1 and 2).

The package's modules, each imported on its own (this file re-exports
nothing): ``mtl`` (MTL parsing, product metadata, which files and thermal
source a product offers), ``radiometry`` (reflectance, DOS1, brightness
temperature, emissivity, LST), ``clouds`` (QA decoding, Fmask potential and
cold cloud, dilation), ``grid`` (the grid an MTL describes, for band files
without georeferencing) and ``product`` (a product window's pixels → the
derived layers and the manifest record).
"""
