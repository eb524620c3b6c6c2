"""The synthetic 4096² field the map benchmarks serve: its grid and its layer's styling.

Shared by ``bench/maps.py`` (which builds and serves it) and ``bench/maps_report.py`` (which
describes it), so neither imports the other.
"""

FIELD_SIZE = 4096
FIELD_CRS = "EPSG:32633"
FIELD_ORIGIN = (600_000.0, 5_345_000.0)  # UTM 33N, ≈ 48.2° N (Vienna's latitude)
FIELD_RESOLUTION_M = 2.0
FIELD_COLORMAP = "rdylbu_r"  # the UHI prediction layer's colormap
FIELD_RESCALE = (24.0, 42.0)
FIELD_LAYER_ID = "bench-field-4096"
