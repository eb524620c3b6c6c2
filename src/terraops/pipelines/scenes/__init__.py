"""Scenes: generate synthetic cities, import real imagery, the one feature path (cell tables)."""
