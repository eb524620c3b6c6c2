"""Maps: whole-scene prediction into COGs, GeoJSON and catalogue layers."""
