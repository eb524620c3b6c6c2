"""Segment a scene or GeoTIFF: windows → U-Net → blended mask COG + polygons + map layers.

One pass over the image, top to bottom (:func:`segment_image`):

1. read a window row of reflectance (:mod:`terraops.adapters.image_windows`),
2. predict its chips in batches and blend them
   (:func:`terraops.pipelines.segmentation.window_inference.iter_label_rows`),
3. write each finished band of rows into a tiled GeoTIFF (uint8 class codes,
   no-data 255, the class colours as its palette) *and* hand it to the strip
   vectoriser (:class:`terraops.pipelines.segmentation.vectors.StripVectoriser`),
4. turn the GeoTIFF into a validated COG with the model's lineage in its
   tags (:func:`terraops.adapters.cog.finish_cog`), write the polygons
   (GeoJSON in EPSG:4326; GeoPackage or GeoParquet in the image's CRS on
   request) and register both as map layers in the ``footprints`` group.

Nothing the size of the image is ever in memory: peak memory depends on the
tile, the batch and the image's *width*, not its height.

The model is the registered champion by default (or ``--version``/``--alias``,
or a local bundle folder for benchmarks), run by ONNX Runtime or PyTorch —
in-process, or on a Dask cluster (``dask="tcp://host:port"`` or ``"local"``,
:mod:`terraops.adapters.dask_runner`): then only the model calls go to the
workers; reading, blending and writing stay here, so the output is the same.
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from terraops.adapters import cog, dask_runner, raster_io
from terraops.adapters.catalogue import LayerCatalogue, file_fingerprint
from terraops.adapters.image_windows import Grid, ReflectanceSource, open_reflectance
from terraops.adapters.registry import ModelRegistry
from terraops.adapters.segmentation_bundle import Segmenter
from terraops.adapters.vector_files import VECTOR_FORMATS, GeoJSONWriter, Writers, open_writer
from terraops.domain.layers import Layer, layer_id
from terraops.domain.segmentation.classes import SEGMENTATION_NODATA
from terraops.errors import InvalidInputError
from terraops.pipelines.lifecycle.resolve import resolve_version
from terraops.pipelines.maps.layer_products import now_iso, raster_layer, scene_imagery_layer
from terraops.pipelines.segmentation.vector_pool import vector_pool
from terraops.pipelines.segmentation.vectors import StripVectoriser
from terraops.pipelines.segmentation.window_inference import (
    PredictBatches,
    iter_label_rows,
    windows_count,
)
from terraops.services.segmentation import SEGMENTATION, SegmentationService
from terraops.settings import Settings

GDAL_CACHE_MB = 64
"""GDAL block cache while writing the mask: bounded, so memory stays flat."""


@dataclass(frozen=True)
class ModelRef:
    """Which model segments, for lineage (tags, GeoJSON properties, layers)."""

    name: str
    version: int | None
    run_id: str
    alias: str | None
    source: str

    @property
    def lineage(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "run_id": self.run_id}


def load_segmenter(
    settings: Settings,
    *,
    version: int | None = None,
    alias: str = "champion",
    bundle: Path | None = None,
    engine: str = "onnx",
    device: str = "auto",
    service: SegmentationService = SEGMENTATION,
) -> tuple[Segmenter, ModelRef]:
    """A registered version (``version``, else the ``alias``), or a local ``bundle`` folder."""
    kwargs: dict[str, Any] = {"engine": engine, "device": device}
    if bundle is not None:
        segmenter = Segmenter(Path(bundle), **kwargs)
        run_id = str(segmenter.meta.training.get("run_id", ""))
        return segmenter, ModelRef(service.name, None, run_id, None, str(Path(bundle).resolve()))
    registry = ModelRegistry(settings)
    hint = (
        f"train one (terraops segment train ...), promote it (terraops promote "
        f"{service.name} --challenger), or pass --version N"
    )
    info = resolve_version(registry, service.name, version, alias, hint=hint)
    version = info.version
    segmenter = Segmenter(registry.fetch_model(service.name, version), **kwargs)
    chosen = alias if alias in info.aliases else None
    return segmenter, ModelRef(service.name, version, info.run_id, chosen, "registry")


def vector_format(path: Path, fmt: str | None) -> str:
    """The vector format: ``fmt`` if given, else from the suffix (GeoJSON by default)."""
    if fmt is None:
        fmt = {".gpkg": "gpkg", ".parquet": "parquet"}.get(Path(path).suffix.lower(), "geojson")
    if fmt not in VECTOR_FORMATS:
        raise InvalidInputError(
            f"unknown vector format {fmt!r}", hint=f"use one of: {', '.join(VECTOR_FORMATS)}"
        )
    return fmt


def _mask_profile(grid: Grid) -> dict[str, Any]:
    block = cog.cog_block_size(grid.width, grid.height)
    return {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": 1,
        "dtype": "uint8",
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": SEGMENTATION_NODATA,
        "tiled": True,
        "blockxsize": block,
        "blockysize": block,
        "compress": "deflate",
    }


def _progress(enabled: bool, total: int) -> tuple[Any, Any]:
    if not enabled:
        return nullcontext(), lambda _n: None
    bar = Progress(
        TextColumn("segmenting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task("windows", total=total)
    return bar, lambda n: bar.update(task, advance=n)


def stream_mask(
    source: ReflectanceSource,
    segmenter: Segmenter,
    staging: Path,
    vectoriser: StripVectoriser,
    service: SegmentationService,
    *,
    batch_size: int = 4,
    progress: bool = False,
    predict_batches: PredictBatches | None = None,
) -> np.ndarray:
    """Predict, blend and write the mask rows to ``staging``; returns pixels per class code.

    ``predict_batches`` runs the model elsewhere (a Dask cluster); default in-process.
    """
    grid = source.grid
    counts = np.zeros(256, dtype=np.int64)
    bar, advance = _progress(
        progress, windows_count(grid.height, grid.width, service.tile, service.overlap)
    )
    with (
        bar,
        cog.open_staged_geotiff(staging, _mask_profile(grid), cache_mb=GDAL_CACHE_MB) as dst,
    ):
        dst.write_colormap(
            1, {**{k: v for k, v in service.colours.items()}, SEGMENTATION_NODATA: (0, 0, 0, 0)}
        )
        dst.set_band_description(1, "segmentation class")
        for part in iter_label_rows(
            source.read_rows,
            grid.height,
            grid.width,
            segmenter.predict_proba,
            n_classes=service.n_classes,
            tile=service.tile,
            overlap=service.overlap,
            batch_size=batch_size,
            on_window_row=advance,
            predict_batches=predict_batches,
        ):
            dst.write(part.labels, 1, window=Window(0, part.row_off, grid.width, part.rows))
            counts += np.bincount(part.labels.ravel(), minlength=256)
            vectoriser.add(part)
    return counts


def segment_image(
    settings: Settings,
    *,
    scene: Path | None = None,
    image: Path | None = None,
    band_order: list[str] | None = None,
    out_mask: Path | None = None,
    out_vector: Path | None = None,
    fmt: str | None = None,
    engine: str = "onnx",
    device: str = "auto",
    version: int | None = None,
    alias: str = "champion",
    bundle: Path | None = None,
    batch_size: int = 4,
    register: bool = True,
    progress: bool = True,
    service: SegmentationService = SEGMENTATION,
    dask: str | None = None,
) -> dict[str, Any]:
    """Segment one image; returns what was written, the timings and the layer ids.

    ``dask``: a scheduler address or ``"local"`` runs the model on a Dask cluster
    (None: in-process); it is connected before anything is written.
    """
    started = time.perf_counter()
    with (
        open_reflectance(scene=scene, image=image, band_order=band_order) as source,
        ExitStack() as cluster,
    ):
        ids = {
            "mask": layer_id(service.name, "mask", source.name),
            "vector": layer_id(service.name, "footprints", source.name),
        }
        segmenter, model = load_segmenter(
            settings,
            version=version,
            alias=alias,
            bundle=bundle,
            engine=engine,
            device=device,
            service=service,
        )
        predict_batches, cluster_info = None, None
        if dask is not None and dask_runner.wants_cluster(dask):
            runner = cluster.enter_context(dask_runner.connect(dask))
            predict_batches = dask_runner.batch_predictor(runner, segmenter)
            cluster_info = {"scheduler": runner.address, "workers": runner.n_workers}
        mask_path = Path(out_mask or settings.layers_dir / f"{ids['mask']}.tif").absolute()
        vector_path = Path(out_vector or settings.layers_dir / f"{ids['vector']}.geojson")
        vector_path = vector_path.absolute()
        kind = vector_format(vector_path, fmt)
        grid = source.grid
        map_geojson = vector_path
        if kind != "geojson" and register:  # the map reads GeoJSON
            map_geojson = settings.layers_dir / f"{ids['vector']}.geojson"
        created = now_iso()
        loaded = time.perf_counter()
        with cog.staged_output(mask_path) as staging, Writers([]) as sink:
            sink.writers.append(open_writer(vector_path, kind, grid.crs))
            if map_geojson != vector_path:
                sink.writers.append(GeoJSONWriter(map_geojson, grid.crs))
            vectoriser = StripVectoriser(
                grid.transform,
                grid.height,
                service.foreground_classes,
                min_area_m2=service.min_area_m2,
                properties={"model_name": model.name, "model_version": model.version},
                sink=sink.write,
                executor=vector_pool(settings.segment_vector_workers),
            )
            counts = stream_mask(
                source,
                segmenter,
                staging,
                vectoriser,
                service,
                batch_size=batch_size,
                progress=progress,
                predict_batches=predict_batches,
            )
            inferred = time.perf_counter()
            cog.finish_cog(staging, mask_path, tags=_tags(model, service, source, engine, created))
            vectoriser.finish()
            sink.close()
    finished = time.perf_counter()
    megapixels = grid.height * grid.width / 1e6
    result: dict[str, Any] = {
        "source": source.name,
        "kind": source.kind,
        "width": grid.width,
        "height": grid.height,
        "crs": grid.crs,
        "model": {**model.lineage, "alias": model.alias, "source": model.source},
        "engine": engine,
        "device": segmenter.device,
        "mask": str(mask_path),
        "vector": str(vector_path),
        "format": kind,
        "class_pixels": {name: int(counts[c]) for c, name in service.classes.items()}
        | {"nodata": int(counts[SEGMENTATION_NODATA])},
        "polygons": {service.classes[c]: n for c, n in vectoriser.counts.items()},
        "seconds": {
            "load": round(loaded - started, 3),
            "inference": round(inferred - loaded, 3),
            "total": round(finished - started, 3),
        },
        "megapixels_per_s": round(megapixels / max(inferred - loaded, 1e-9), 3),
        "layers": [],
    }
    if cluster_info is not None:
        result["dask"] = cluster_info
    if register:
        layers = _layers(settings, service, source, model, result, created, scene, ids, map_geojson)
        LayerCatalogue(settings.layers_dir).add(*layers)
        result["layers"] = [{"id": layer.id, "kind": layer.kind} for layer in layers]
    return result


def _tags(
    model: ModelRef,
    service: SegmentationService,
    source: ReflectanceSource,
    engine: str,
    created: str,
) -> dict[str, str]:
    """GeoTIFF metadata: lineage and legend readable by gdalinfo / QGIS without terraops."""
    return {
        "terraops_layer": "segmentation_mask",
        "model_name": model.name,
        "model_version": str(model.version if model.version is not None else "local"),
        "model_run_id": model.run_id,
        "engine": engine,
        "source": source.name,
        "classes": json.dumps({str(k): v for k, v in service.classes.items()}),
        "nodata_meaning": "no data in the input imagery",
        "unit": "class code",
        "created_at": created,
    }


def _layers(
    settings: Settings,
    service: SegmentationService,
    source: ReflectanceSource,
    model: ModelRef,
    result: dict[str, Any],
    created: str,
    scene: Path | None,
    ids: dict[str, str],
    geojson: Path,
) -> list[Layer]:
    """Catalogue entries: the mask (categorical, palette in the COG), the polygons, imagery."""
    lineage = {"model": model.lineage, "source": source.name, "engine": result["engine"]}
    title = f"{source.name} · {model.name} v{model.version if model.version else 'local'}"
    colours = {
        name: "#{:02x}{:02x}{:02x}".format(*service.colours[c][:3])
        for c, name in service.classes.items()
    }
    total = max(1, sum(result["class_pixels"][n] for n in service.classes.values()))
    mask_layer = raster_layer(
        lid=ids["mask"],
        title=f"Footprint classes — {title}",
        group=service.map_group,
        role="mask",
        path=Path(result["mask"]),
        unit="class",
        legend="; ".join(f"{name} {colours[name]}" for name in service.foreground_classes.values())
        + "; background transparent",
        colormap=None,
        rescale=None,
        lineage=lineage,
        stats={
            "classes": {
                name: {
                    "code": c,
                    "colour": colours[name],
                    "share": round(result["class_pixels"][name] / total, 4),
                }
                for c, name in service.classes.items()
            },
            "categorical": True,
        },
        created_at=created,
    )
    vector_layer = Layer(
        id=ids["vector"],
        title=f"Footprints — {title}",
        kind="vector",
        group=service.map_group,
        role="footprints",
        path=str(geojson),
        unit="polygon",
        legend="buildings, water and trees as polygons (class, score, area_m2)",
        bounds=mask_layer.bounds,
        crs="EPSG:4326",
        fingerprint=file_fingerprint(geojson),
        created_at=created,
        lineage=lineage,
        stats={"polygons": result["polygons"]},
    )
    layers = [mask_layer, vector_layer]
    if scene is not None:
        layers.insert(0, scene_imagery_layer(settings, raster_io.read_scene(scene)))
    return layers


__all__ = ["ModelRef", "load_segmenter", "segment_image", "vector_format"]
