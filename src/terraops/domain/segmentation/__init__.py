"""Semantic segmentation of imagery: the pure parts.

- :mod:`.classes` — the label set, map colours, relation to the land-cover legend;
- :mod:`.windows` — sliding windows and seam-free, bounded-memory blending;
- :mod:`.vectorise` — label maps → clean polygons with class, score and area;
- :mod:`.metrics` — pixel IoU/F1 per class and SpaceNet-style object F1.

No torch and no file I/O here: the model, readers and writers live in
adapters and pipelines, which compose these functions.
"""
