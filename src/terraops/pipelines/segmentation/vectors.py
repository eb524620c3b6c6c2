"""Polygons of a label map that arrives in row bands: strip vectorisation with seam merging.

:func:`terraops.domain.segmentation.vectorise.vectorise` needs the whole
label map; for a large image that is what breaks "memory flat as the image
grows". So the label rows are gathered into strips of about ``strip_rows``
rows, each strip is vectorised on its own, and polygons cut by a strip
border (a *seam*) are merged with their other parts:

- the domain simplifier keeps a coverage's outer boundary unsimplified
  (``simplify_boundary=False``), so the parts of a region on both sides of a
  seam meet along the same exact pixel edges; two parts of one class that
  share a stretch of seam (4-connected across it) are united;
- a region may span several strips: parts that touch the lower seam stay
  *open* until the next strip is in; everything else is final;
- cleaning (holes smaller than ``min_area_m2`` filled, polygons smaller than
  it dropped, invalid ones repaired) is done after merging, so a region is
  never dropped because each of its parts is small; the score becomes the
  pixel-weighted mean of its parts' scores.

What is held: one strip of labels and scores (:data:`STRIP_PIXELS`, so
fewer rows as the image gets wider) and the open polygons along one seam.
Finished polygons go to a ``sink`` (a streaming file writer,
:mod:`terraops.adapters.vector_files`) strip by strip — then they come out
top to bottom, not sorted — or, without one, are kept and returned by
:meth:`StripVectoriser.finish`. With one strip as tall as the image the
result is the domain's whole-image vectorisation, cleaned the same way.

With an ``executor`` (worker processes, :mod:`.vector_pool`) each strip is
vectorised in a worker as soon as its rows are in, while the model works on
the next rows and other workers on other strips; the seams are merged in
strip order in the calling process, so the polygons are exactly those of
serial vectorising. At most ``max_pending`` strips (default two per worker)
wait to be merged, which bounds the memory they hold.

The worker does all of a strip's work that does not wait for its
neighbours: the regions touching neither seam are final once the strip is
vectorised, so they are cleaned and mapped there, and — with an ``encode``
function (e.g. GeoJSON text, :class:`terraops.adapters.vector_files.GeoJSONText`)
— encoded there too; only the seam parts come back as geometries. The caller
is left with merging the seams, so the strips' work runs on every core while
the model predicts the next rows. The sink gets, per strip, the seam regions
it closed and then its interior ones: the order of one-by-one vectorising.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from rasterio.transform import Affine
from shapely.geometry import Polygon

from terraops.domain.segmentation.vectorise import (
    PolygonRecord,
    affine_all,
    fill_small_holes,
    fill_small_holes_all,
    repair_all,
    repair_polygonal,
    vectorise,
)
from terraops.errors import InvalidInputError
from terraops.pipelines.segmentation.window_inference import LabelRows

STRIP_PIXELS = 1 << 19
"""Pixels per strip (512 rows of a 1024-px-wide image): the vectoriser's working set.
Strips get fewer rows as the image gets wider, so memory does not grow with it."""

Encode = Callable[[list[PolygonRecord]], Any]
"""Final records (map coordinates) → what the sink takes instead of them (e.g. GeoJSON
text); picklable, as it runs in the worker processes too."""
Sink = Callable[[Any], None]


class StripVectoriser:
    """Feed label rows top to bottom with :meth:`add`; :meth:`finish` returns the polygons.

    Strips are vectorised in *pixel* coordinates of the whole image (integers,
    so the two sides of a seam match exactly); the image's transform is
    applied to each polygon when it is final.
    """

    def __init__(
        self,
        transform: Affine,
        height: int,
        classes: Mapping[int, str],
        *,
        min_area_m2: float = 0.0,
        simplify_m: float | None = None,
        properties: Mapping[str, Any] | None = None,
        strip_rows: int | None = None,
        sink: Sink | None = None,
        executor: Executor | None = None,
        max_pending: int | None = None,
        encode: Encode | None = None,
    ) -> None:
        if encode is not None and sink is None:
            raise InvalidInputError("an encoder needs a sink to hand its output to")
        pixel_area = abs(transform.determinant)
        if pixel_area == 0:
            raise InvalidInputError("the transform is degenerate (zero pixel area)")
        self.transform, self.height = transform, height
        self.classes = dict(classes)
        self.min_area_px = float(min_area_m2) / pixel_area
        self.simplify_px = None if simplify_m is None else simplify_m / math.sqrt(pixel_area)
        self.properties = dict(properties or {})
        self.strip_rows = max(1, strip_rows) if strip_rows is not None else 0
        self._sink = sink
        self._encode = encode
        self.counts: dict[int, int] = dict.fromkeys(self.classes, 0)
        self._parts: list[LabelRows] = []
        self._buffered = 0
        self._next_row = 0
        self._open: list[PolygonRecord] = []
        self.records: list[PolygonRecord] = []
        self._executor = executor
        workers = getattr(executor, "_max_workers", 1)  # ProcessPoolExecutor's worker count
        self._max_pending = max(1, max_pending if max_pending is not None else 2 * workers)
        self._pending: deque[tuple[int, Future[StripPolygons]]] = deque()

    def add(self, part: LabelRows) -> None:
        if part.row_off != self._next_row:
            raise InvalidInputError(f"rows must arrive in order: got {part.row_off}")
        if not self.strip_rows:  # rows per strip from the width: a constant strip area
            self.strip_rows = max(1, STRIP_PIXELS // part.labels.shape[1])
        self._parts.append(part)
        self._buffered += part.rows
        self._next_row += part.rows
        if self._buffered >= self.strip_rows:
            self._flush()

    def finish(self) -> list[PolygonRecord]:
        """The remaining polygons go out; returns every polygon when there is no sink
        (in map coordinates, by class id then largest first), else []."""
        if self._parts:
            self._flush()
        self._merge_ready(wait=True)
        self._emit(finalise(self._open, self.min_area_px, self.transform))
        self._open = []
        self.records.sort(key=lambda r: (r.properties["class_id"], -r.properties["area_m2"]))
        return self.records

    def _emit(self, records: list[PolygonRecord]) -> None:
        for r in records:
            self.counts[r.properties["class_id"]] += 1
        if self._sink is None:
            self.records.extend(records)
        elif records:
            self._sink(self._encode(records) if self._encode is not None else records)

    def _flush(self) -> None:
        row0 = self._parts[0].row_off
        labels = np.concatenate([p.labels for p in self._parts])
        scores = np.concatenate([p.scores for p in self._parts])
        self._parts, self._buffered = [], 0
        job = StripJob(
            row0,
            self.height,
            self.classes,
            self.transform,
            self.min_area_px,
            self.simplify_px,
            self.properties,
            self._encode,
        )
        if self._executor is None:
            self._merge(job.row1(labels), vectorise_strip(job, labels, scores))
            return
        future = self._executor.submit(vectorise_strip, job, labels, scores)
        self._pending.append((job.row1(labels), future))
        self._merge_ready(wait=False)

    def _merge_ready(self, *, wait: bool) -> None:
        """Merge finished strips in order (all of them, waiting, with ``wait``)."""
        while self._pending:
            row1, future = self._pending[0]
            if not (wait or future.done() or len(self._pending) > self._max_pending):
                return
            self._pending.popleft()
            self._merge(row1, future.result())

    def _merge(self, row1: int, strip: StripPolygons) -> None:
        """Join a strip's polygons to the open ones above its top seam; emit the final ones:
        first the seam regions closed by this strip, then the strip's interior ones (in
        that order, the order of vectorising the strips one by one)."""
        merged = _merge_across_seam(self._open, strip.at_top) + strip.at_bottom
        self._open, final = [], []
        for record in merged:
            if row1 < self.height and record.geometry.bounds[3] >= row1:
                self._open.append(record)
            else:
                final.append(record)
        self._emit(finalise(final, self.min_area_px, self.transform))
        for class_id, n in strip.interior_counts.items():
            self.counts[class_id] += n
        if self._sink is None:
            self.records.extend(strip.interior)
        elif strip.interior_counts:
            self._sink(strip.interior)


@dataclass(frozen=True)
class StripJob:
    """What a worker needs, besides the strip's labels and scores, to vectorise it."""

    row0: int
    height: int
    classes: dict[int, str]
    transform: Affine
    min_area_px: float
    simplify_px: float | None
    properties: dict[str, Any]
    encode: Encode | None

    def row1(self, labels: np.ndarray) -> int:
        return self.row0 + int(labels.shape[0])


@dataclass(frozen=True)
class StripPolygons:
    """A vectorised strip: the parts on its seams (pixel coordinates, to be merged) and
    its interior polygons, already final (cleaned, mapped; encoded if asked)."""

    at_top: list[PolygonRecord]
    at_bottom: list[PolygonRecord]
    interior: Any
    interior_counts: dict[int, int]


def vectorise_strip(job: StripJob, labels: np.ndarray, scores: np.ndarray) -> StripPolygons:
    """One strip's polygons (run in a worker process, or in the caller).

    Regions touching neither seam are final here: they are cleaned, mapped and
    (with ``job.encode``) encoded where the strip was vectorised, so a worker
    does that work too and sends back text instead of geometries.
    """
    strip = vectorise(
        labels,
        Affine.translation(0, job.row0),
        classes=job.classes,
        scores=scores,
        min_area_m2=0.0,
        simplify_m=job.simplify_px,
        properties=job.properties,
    )
    row1 = job.row1(labels)
    # Pixel y grows downwards: bounds are (minx, miny=top, maxx, maxy=bottom).
    bounds = shapely.bounds(np.asarray([r.geometry for r in strip], dtype=object))
    top = bounds[:, 1] <= job.row0 if job.row0 > 0 else np.zeros(len(strip), dtype=bool)
    bottom = bounds[:, 3] >= row1 if row1 < job.height else np.zeros(len(strip), dtype=bool)
    at_top = [strip[i] for i in np.flatnonzero(top)]
    at_bottom = [strip[i] for i in np.flatnonzero(~top & bottom)]
    finals = finalise(
        [strip[i] for i in np.flatnonzero(~top & ~bottom)], job.min_area_px, job.transform
    )
    counts = Counter(int(r.properties["class_id"]) for r in finals)
    interior = job.encode(finals) if job.encode is not None and finals else finals
    return StripPolygons(at_top, at_bottom, interior, dict(counts))


def finalise(
    records: list[PolygonRecord], min_area_px: float, transform: Affine
) -> list[PolygonRecord]:
    """Final records: holes < min area filled, repaired, mapped, area in m²; those under
    the minimum area dropped. Array calls for the (usual) single polygons."""
    if not records:
        return []
    geoms = np.asarray([r.geometry for r in records], dtype=object)
    single = shapely.get_type_id(geoms) == 3  # Polygon; merged regions may be multi
    cleaned = np.empty(len(records), dtype=object)
    cleaned[single] = repair_all(fill_small_holes_all(geoms[single], min_area_px))
    for i in np.flatnonzero(~single):
        cleaned[i] = _cleaned(geoms[i], min_area_px)
    present = np.array([g is not None for g in cleaned], dtype=bool)
    areas = np.zeros(len(records))
    areas[present] = shapely.area(cleaned[present])
    kept = np.flatnonzero(present & (areas > 0) & (areas >= min_area_px))
    mapped = affine_all(cleaned[kept], transform)
    return [
        PolygonRecord(g, {**records[i].properties, "area_m2": float(a)})
        for i, g, a in zip(kept, mapped, shapely.area(mapped), strict=True)
    ]


def _cleaned(geometry: Any, min_area_px: float) -> Any:
    """Holes < min area filled in every part, parts united, repaired (None if empty)."""
    parts = [
        fill_small_holes(p, min_area_px) if isinstance(p, Polygon) else p
        for p in shapely.get_parts(geometry)
    ]
    return repair_polygonal(shapely.union_all(parts) if len(parts) > 1 else parts[0])


def _merge_across_seam(
    above: list[PolygonRecord], below: list[PolygonRecord]
) -> list[PolygonRecord]:
    """Unite parts of one class that share a stretch of the seam (union-find over pairs).

    A shared stretch is a line of positive length; parts meeting at a single
    pixel corner are not 4-connected and stay apart.
    """
    items = [*above, *below]
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if above and below:
        upper = np.asarray([r.geometry for r in above], dtype=object)
        lower = np.asarray([r.geometry for r in below], dtype=object)
        i, j = shapely.STRtree(lower).query(upper, predicate="intersects")
        upper_class = np.array([r.properties["class_id"] for r in above])
        lower_class = np.array([r.properties["class_id"] for r in below])
        i, j = i[upper_class[i] == lower_class[j]], j[upper_class[i] == lower_class[j]]
        shared = shapely.length(shapely.intersection(upper[i], lower[j])) > 0
        for a, b in zip(i[shared].tolist(), j[shared].tolist(), strict=True):
            parent[find(a)] = find(b + len(above))
    groups: dict[int, list[PolygonRecord]] = {}
    for i, item in enumerate(items):
        groups.setdefault(find(i), []).append(item)
    return [group[0] if len(group) == 1 else _united(group) for group in groups.values()]


def _united(group: list[PolygonRecord]) -> PolygonRecord:
    """One record for the parts of a region: union, summed pixels, pixel-weighted score."""
    geometry = shapely.union_all([r.geometry for r in group])
    pixels = sum(int(r.properties["pixels"]) for r in group)
    scored = [(r.properties["score"], int(r.properties["pixels"])) for r in group]
    weight = sum(n for s, n in scored if s is not None)
    score = sum(s * n for s, n in scored if s is not None) / weight if weight else None
    return PolygonRecord(geometry, {**group[0].properties, "pixels": pixels, "score": score})
