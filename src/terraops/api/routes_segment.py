"""``POST /v1/segment``: a small GeoTIFF in, the champion's footprint polygons out.

The upload (multipart field ``image``, optional field ``band_order``) is
streamed to a temporary file with the byte limit enforced *while reading*
(``TERRAOPS_SEGMENT_MAX_UPLOAD_MB``; ``Content-Length`` is only an early
hint), opened as a GeoTIFF with the project's band conventions
(:class:`~terraops.adapters.image_windows.GeoTiffSource`), checked against
``TERRAOPS_SEGMENT_MAX_PIXELS``, and segmented by the same sliding-window,
blending and strip-vectorising code as ``terraops segment predict``
(:func:`~terraops.pipelines.segmentation.scene_predict.stream_mask` +
:class:`~terraops.pipelines.segmentation.vectors.StripVectoriser`), off the event
loop. The answer is a GeoJSON FeatureCollection in EPSG:4326 whose features
carry ``class``, ``score``, ``area_m2`` and the model name/version, with the
model's lineage in the ``X-Model-*`` headers like the tabular routes.

Nothing is written to the layer catalogue: an upload is a question, not a
layer; every file the request needs lives in a temporary folder removed when
it ends.

The segmenter follows the registry's ``champion`` alias like the tabular
models: a :class:`~terraops.api.model_holder.ModelHolder` kept on it by the
server's :class:`~terraops.api.model_holder.ChampionWatcher` (polled every
``poll_interval_s`` once the route was first used; asked on every request
while no champion is loaded), swapped by reference so a request uses one
version throughout. A registry outage keeps the loaded champion in service.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response
from multipart import MultipartError, MultipartSegment, PushMultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from terraops.adapters import raster_files
from terraops.adapters.image_windows import GeoTiffSource
from terraops.adapters.segmentation_bundle import Segmenter, locate_bundle
from terraops.adapters.vector_files import GeoJSONText, feature_collection_json
from terraops.api.model_holder import ChampionWatcher, ModelHolder
from terraops.api.schemas import ErrorResponse
from terraops.errors import (
    InvalidInputError,
    ModelNotReadyError,
    PayloadTooLargeError,
    UnsupportedMediaError,
)
from terraops.extras import SEGMENT, require_extra
from terraops.pipelines.segmentation.vector_pool import available_cores, vector_pool
from terraops.pipelines.segmentation.vectors import StripVectoriser
from terraops.pipelines.segmentation.window_inference import iter_label_rows
from terraops.services.segmentation import SEGMENTATION, SegmentationService
from terraops.settings import Settings

Engine = Literal["onnx", "torch"]

#: Room for the multipart envelope and the small form fields on top of the file limit.
FORM_OVERHEAD_BYTES = 64 * 1024
FIELD_MAX_BYTES = 4096
UNLIMITED_BODY = 1 << 62
MAX_FORM_PARTS = 8
UPLOAD_STRIPS = 8
"""An upload is vectorised in this many strips (at least :data:`MIN_STRIP_ROWS` rows each).
The last strip is polygonised after the model's last rows, on one core, while the
answer waits: eight short strips instead of two long ones (the default strip height
at 1024 px wide) shorten that tail and keep every worker busy until it."""
MIN_STRIP_ROWS = 32
UPLOAD_HINT = (
    "send the GeoTIFF as form field 'image', e.g. curl -F image=@scene.tif "
    "[-F band_order=red,green,blue,nir,swir] .../v1/segment"
)

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorResponse, "description": "Upload larger than the limit"},
    415: {"model": ErrorResponse, "description": "Not multipart, or the file is not a GeoTIFF"},
    422: {"model": ErrorResponse, "description": "No CRS, missing bands, too many pixels"},
    503: {"model": ErrorResponse, "description": "No segmentation champion (or no registry)"},
}

UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {
                            "type": "string",
                            "format": "binary",
                            "description": "GeoTIFF with bands red, green, blue, nir, swir "
                            "(found by band description, or named by band_order)",
                        },
                        "band_order": {
                            "type": "string",
                            "description": "the file's bands in order, e.g. "
                            "red,green,blue,nir,swir",
                        },
                    },
                }
            }
        },
    }
}


class SegmenterVersion:
    """One registered segmentation version as this worker serves it.

    What the :class:`~terraops.api.model_holder.ChampionWatcher` swaps in for
    the segmentation holder: the fetched bundle, whose engines (ONNX Runtime,
    PyTorch) are loaded on first use, one per engine, so a server without the
    ``segment`` extra still starts and one that only uses ONNX never loads
    PyTorch. Its ``feature_names`` are the bands it reads. Thread-safe.
    """

    def __init__(
        self, path: Path, service: SegmentationService, *, threads: int | None = None
    ) -> None:
        self.bundle_dir = locate_bundle(path)  # a folder without a bundle is not served
        self.service = service
        self.feature_names = service.bands
        self.threads = threads
        self.run_id = ""
        self._lock = threading.Lock()
        self._engines: dict[str, Segmenter] = {}

    def engine(self, engine: Engine) -> Segmenter:
        """The segmenter for ``engine``, loaded on the first request that asks for it."""
        with self._lock:
            segmenter = self._engines.get(engine)
            if segmenter is None:
                segmenter = Segmenter(
                    self.bundle_dir, engine=engine, device="auto", threads=self.threads
                )
                self._engines[engine] = segmenter
            return segmenter


def load_segmenter(
    path: Path, service: SegmentationService, *, threads: int | None = None
) -> SegmenterVersion:
    """The segmentation holder's loader (see :class:`~terraops.api.model_holder.Loader`);
    ``threads``: ONNX Runtime's (None: every core; see :func:`inference_threads`)."""
    return SegmenterVersion(path, service, threads=threads)


def inference_threads(vector_workers: int | None) -> int | None:
    """ONNX Runtime threads for the route's model: half the cores (one on two) when the
    polygons are made in worker processes on the same cores — the model and the workers
    run at once, and more threads than cores only make them wait on each other; None
    (every core) when the polygons are made in the request's thread, after the model."""
    workers = available_cores() if vector_workers is None else vector_workers
    return max(1, available_cores() // 2) if workers > 1 else None


@dataclass(frozen=True)
class SegmenterSource:
    """The segmenter a request uses, from the holder the watcher keeps on the champion."""

    holder: ModelHolder[SegmentationService]
    watcher: ChampionWatcher

    def get(self, engine: Engine) -> tuple[Any, dict[str, Any]]:
        """The champion's segmenter for ``engine`` and its lineage; blocking (off the loop).

        With no champion loaded the registry is asked at once (each request
        until there is one); an outage then raises ``RegistryUnavailableError``.
        """
        name = self.holder.definition.name
        model = self.holder.current or self.watcher.ensure(name)
        if model is None:
            raise ModelNotReadyError(
                f"no champion for {name!r} yet",
                hint=f"train one (terraops segment train ...) and promote it: "
                f"terraops promote {name} --version N",
            )
        served: SegmenterVersion = model.predictor
        segmenter = served.engine(engine)
        if not served.run_id:
            served.run_id = self.watcher.registry.get_version(name, model.version).run_id
        lineage = {
            "name": name,
            "version": model.version,
            "alias": model.alias,
            "run_id": served.run_id,
        }
        return segmenter, lineage


def _headers(lineage: dict[str, Any], engine: str) -> dict[str, str]:
    return {
        "X-Model-Name": str(lineage["name"]),
        "X-Model-Version": str(lineage["version"]),
        "X-Model-Alias": str(lineage["alias"]),
        "X-Segment-Engine": engine,
    }


def _too_large(limit_mb: float) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"the upload is larger than the {limit_mb:g} MB limit",
        hint="send a smaller GeoTIFF (crop it, or compress it: gdal_translate -co "
        "COMPRESS=DEFLATE), or raise TERRAOPS_SEGMENT_MAX_UPLOAD_MB on the server",
    )


async def read_upload(
    request: Request, folder: Path, limit_mb: float
) -> tuple[Path, str, list[str] | None]:
    """Stream the form's ``image`` to ``folder``; returns (path, file name, band order).

    The multipart body is parsed as it arrives (``multipart``'s push parser):
    the file goes straight to disk and the request is refused with 413 as soon
    as the file, or the whole body, passes the limit.
    """
    max_file = int(limit_mb * 1024 * 1024)
    max_body = max_file + FORM_OVERHEAD_BYTES
    ctype = request.headers.get("content-type", "")
    media, options = parse_options_header(ctype)
    boundary = options.get("boundary")
    if media.lower() != "multipart/form-data" or not boundary:
        raise UnsupportedMediaError(
            f"expected a multipart/form-data upload, got {ctype or 'no Content-Type'!r}",
            hint=UPLOAD_HINT,
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_body:
        raise _too_large(limit_mb)
    path = folder / "upload.tif"
    fields: dict[str, bytearray] = {}
    filename: str | None = None
    received = 0
    part: MultipartSegment | None = None
    image: MultipartSegment | None = None
    try:
        with (
            path.open("wb") as out,
            PushMultipartParser(boundary, max_segment_count=MAX_FORM_PARTS) as parser,
        ):
            async for chunk in request.stream():
                received += len(chunk)
                if received > max_body:
                    raise _too_large(limit_mb)
                for event in parser.parse(chunk) if chunk else ():
                    if isinstance(event, MultipartSegment):
                        part = event
                        if part.name == "image" and image is None:
                            image, filename = part, part.filename or "upload"
                        elif part.name and part.name not in fields:
                            fields[part.name] = bytearray()
                    elif event and part is not None:
                        if image is not None and part is image:
                            if image.bytes_received > max_file:
                                raise _too_large(limit_mb)
                            out.write(event)
                        elif part.name and part.name in fields:
                            if len(fields[part.name]) + len(event) > FIELD_MAX_BYTES:
                                raise InvalidInputError(
                                    f"form field {part.name!r} is longer than "
                                    f"{FIELD_MAX_BYTES} bytes",
                                    hint=UPLOAD_HINT,
                                )
                            fields[part.name].extend(event)
                    else:
                        part = None
            if not parser.closed:
                for _ in parser.parse(b""):
                    pass
    except MultipartError as exc:
        raise InvalidInputError(
            f"the multipart body could not be read: {exc}", hint=UPLOAD_HINT
        ) from exc
    if filename is None:
        raise InvalidInputError("form field 'image' (a GeoTIFF file) is missing", hint=UPLOAD_HINT)
    band_field = fields.get("band_order", bytearray()).decode("utf-8", "replace")
    band_order = [b.strip() for b in band_field.split(",") if b.strip()] or None
    return path, filename, band_order


def _open_image(path: Path, name: str, band_order: list[str] | None) -> Any:
    """The upload as a reflectance source, with messages about *the upload*, not a temp path."""
    failure = raster_files.geotiff_open_error(path)  # the GTiff driver only: never a VRT
    if failure is not None:
        kind = raster_files.sniff_format(path)
        raise UnsupportedMediaError(
            f"{name!r} is a {kind} file, not a GeoTIFF"
            if kind
            else f"{name!r} is not a readable GeoTIFF",
            hint="upload a GeoTIFF (.tif) with a CRS and the bands red, green, blue, nir, "
            "swir; convert other formats with gdal_translate -of GTiff in out.tif",
        ) from failure
    try:
        return GeoTiffSource(path, band_order)
    except InvalidInputError as exc:
        message = exc.message.replace(str(path), repr(name)).replace("--band-order", "band_order")
        hint = (exc.hint or "").replace("pass --band-order", "send the form field band_order")
        hint = hint.replace("gdal_edit.py -a_srs", "gdal_edit.py -a_srs EPSG:XXXX before uploading")
        raise InvalidInputError(message, hint=hint or None) from exc


def segment_upload(
    path: Path,
    name: str,
    band_order: list[str] | None,
    model: Callable[[], tuple[Any, dict[str, Any]]],
    *,
    max_pixels: int,
    service: SegmentationService = SEGMENTATION,
    vector_workers: int | None = None,
) -> tuple[str, dict[str, Any]]:
    """Segment the uploaded file (blocking): the GeoJSON FeatureCollection (EPSG:4326)
    as JSON text, and the lineage of the model that made it.

    The file is checked (GeoTIFF, CRS, bands, pixels) *before* ``model()`` is
    asked for the segmenter, so a bad upload gets its 4xx even with no champion.
    Each strip of labels is vectorised in one of ``vector_workers`` worker
    processes (default one per core; 0 or 1: here) while the model works on the
    next rows, and its final polygons are written as GeoJSON text there too;
    this thread merges the seams and joins the text. The first call starts
    the workers.
    """
    with _open_image(path, name, band_order) as source:
        grid = source.grid
        pixels = grid.width * grid.height
        if pixels > max_pixels:
            raise InvalidInputError(
                f"{name!r} has {grid.width} × {grid.height} = {pixels:,} pixels, more than "
                f"the {max_pixels:,} this endpoint segments",
                hint="crop or downsample it (gdal_translate -srcwin / -outsize), or run "
                "`terraops segment predict --image FILE.tif` for large images "
                "(the server's limit is TERRAOPS_SEGMENT_MAX_PIXELS)",
            )
        segmenter, lineage = model()
        # The upload is small (max_pixels): read it whole and keep labels and
        # polygons in memory — the same windows, blending and vectoriser as
        # `segment predict`, without its mask COG and GeoJSON files.
        image = source.read_rows(0, grid.height)
    chunks: list[str] = []
    vectoriser = StripVectoriser(
        grid.transform,
        grid.height,
        service.foreground_classes,
        min_area_m2=service.min_area_m2,
        properties={"model_name": lineage["name"], "model_version": lineage["version"]},
        strip_rows=max(MIN_STRIP_ROWS, -(-grid.height // UPLOAD_STRIPS)),
        sink=chunks.append,
        encode=GeoJSONText(grid.crs),
        executor=vector_pool(vector_workers),
    )
    for part in iter_label_rows(
        lambda row_off, rows: image[:, row_off : row_off + rows],
        grid.height,
        grid.width,
        segmenter.predict_proba,
        n_classes=service.n_classes,
        tile=service.tile,
        overlap=service.overlap,
    ):
        vectoriser.add(part)
    vectoriser.finish()
    members = {
        "model": lineage,
        "image": {"name": name, "width": grid.width, "height": grid.height},
        "crs_of_source": grid.crs,
    }
    return feature_collection_json(chunks, members), lineage


def segment_router(settings: Settings, segmenters: SegmenterSource) -> APIRouter:
    """``POST /v1/segment`` for this server's settings (limits) and champion segmenter."""
    limit_mb = settings.segment_max_upload_mb
    router = APIRouter(tags=["segmentation"])

    async def segment(
        request: Request,
        engine: Engine = Query("onnx", description="onnx (ONNX Runtime, CPU) or torch"),
    ) -> Response:
        require_extra(SEGMENT)  # 503 "install the segment extra" before reading the upload
        with tempfile.TemporaryDirectory(prefix="terraops-segment-") as tmp:
            path, name, band_order = await read_upload(request, Path(tmp), limit_mb)
            body, lineage = await run_in_threadpool(
                segment_upload,
                path,
                name,
                band_order,
                lambda: segmenters.get(engine),
                max_pixels=settings.segment_max_pixels,
                vector_workers=settings.segment_vector_workers,
            )
        return Response(
            body,
            media_type="application/geo+json",
            headers=_headers(lineage, engine),
        )

    router.add_api_route(
        "/v1/segment",
        segment,
        methods=["POST"],
        responses={
            200: {"content": {"application/geo+json": {}}, "description": "GeoJSON polygons"},
            **ERROR_RESPONSES,
        },
        summary="Segment a small GeoTIFF into building, water and tree polygons",
        description=(
            "Upload a GeoTIFF (form field `image`; bands red, green, blue, nir, swir found by "
            "band description or named in form field `band_order`) of at most "
            f"{limit_mb:g} MB and {settings.segment_max_pixels:,} pixels. Returns a GeoJSON "
            "FeatureCollection (EPSG:4326) of the segmentation champion's polygons with "
            "`class`, `score`, `area_m2`, `model_name` and `model_version`; the model is also "
            "named in the X-Model-* headers. Nothing is stored."
        ),
        openapi_extra=UPLOAD_SCHEMA,
        # The app-wide body limit (sized for JSON batches) is lifted on this route:
        # read_upload enforces the upload limit itself, while reading, and answers
        # with a message naming the setting (the framework's would replace it with
        # a bare "Content Too Large" whenever Content-Length exceeded its limit).
        max_body_size=UNLIMITED_BODY,
    )
    return router


__all__ = [
    "SegmenterSource",
    "SegmenterVersion",
    "inference_threads",
    "load_segmenter",
    "read_upload",
    "segment_router",
    "segment_upload",
]
