"""The layers of one raster prediction: COGs and GeoJSON with lineage, catalogue entries.

Given the prediction grid of a service on a scene (see
:mod:`terraops.pipelines.maps.raster_predict`), writes the prediction COG, the
service's derived rasters and its area polygons, and returns their catalogue
entries. Every file carries the same lineage: model name, version and run id,
scene, scenario parameters.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.transform import Affine

from terraops.adapters import atomic, cog
from terraops.adapters.catalogue import file_fingerprint
from terraops.domain.layers import Layer, layer_id
from terraops.domain.mapping import AreaPolygon, area_feature, iter_area_polygons
from terraops.pipelines.maps.layer_products import raster_layer, wgs84_bounds, wgs84_transformer
from terraops.services.base import DerivedRaster, MapSpec, RasterStyle, ServiceDefinition


def _finite_summary(
    style: RasterStyle, values: np.ndarray
) -> tuple[tuple[float, float], dict[str, Any]]:
    """(display range, grid stats) from one copy of the finite values: a whole
    scene's grid is 60 M cells, and each copy of it a quarter of a GB."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return style.rescale or (0.0, 1.0), {"cells": 0}
    stats = {
        "cells": int(finite.size),
        "min": round(float(finite.min()), 4),
        "mean": round(float(finite.mean()), 4),
        "max": round(float(finite.max()), 4),
    }
    if style.rescale is not None:
        return style.rescale, stats
    lo, hi = np.percentile(finite, [2, 98], overwrite_input=True)
    return (round(float(lo), 2), round(float(max(hi, lo + 1e-3)), 2)), stats


def param_suffix(spec: MapSpec, params: Mapping[str, float]) -> list[str]:
    return [spec.param_labels.get(k, k + "{:g}").format(v) for k, v in sorted(params.items())]


def _param_text(params: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in sorted(params.items()))


@dataclass(frozen=True)
class PredictionContext:
    """Everything the layer writers share for one predict-raster call."""

    definition: ServiceDefinition
    spec: MapSpec
    model: Mapping[str, Any]  # name, version, run_id
    scene: str
    scene_dir: Path
    params: dict[str, float]
    crs: str
    transform: Affine
    created_at: str

    @property
    def lineage(self) -> dict[str, Any]:
        return {
            "model": dict(self.model),
            "scene": self.scene,
            "scene_dir": str(self.scene_dir),
            "params": dict(self.params),
            "cell_size_m": abs(self.transform.a),
        }

    def tags(self, layer: str, unit: str) -> dict[str, str]:
        """GeoTIFF metadata: lineage readable by gdalinfo / QGIS without terraops."""
        return {
            "terraops_layer": layer,
            "model_name": self.model["name"],
            "model_version": str(self.model["version"]),
            "model_run_id": self.model["run_id"],
            "scene": self.scene,
            "params": json.dumps(self.params, sort_keys=True),
            "unit": unit,
            "created_at": self.created_at,
        }

    def write_cog(self, lid: str, unit: str, values: np.ndarray, path: Path) -> None:
        """One grid of this prediction → a validated COG on its grid, tagged with its lineage
        (the one writer of every prediction, explanation and interval layer)."""
        cog.write_array_cog(
            values,
            path,
            crs=self.crs,
            transform=self.transform,
            nodata=float("nan"),
            tags=self.tags(lid, unit),
            descriptions=(lid,),
        )

    def title(self, what: str) -> str:
        suffix = f" ({_param_text(self.params)})" if self.params else ""
        return f"{what} — {self.scene}{suffix} · {self.model['name']} v{self.model['version']}"


def _raster(
    ctx: PredictionContext,
    *,
    lid: str,
    role: str,
    what: str,
    unit: str,
    style: RasterStyle,
    values: np.ndarray,
    out: Path,
    stats: Mapping[str, Any],
    features_path: Path | None = None,
) -> Layer:
    ctx.write_cog(lid, unit, values.astype(np.float32, copy=False), out)
    rescale, grid_stats = _finite_summary(style, values)
    return raster_layer(
        lid=lid,
        title=ctx.title(what),
        group=ctx.spec.group,
        role=role,
        path=out,
        unit=unit,
        legend=style.legend,
        colormap=style.colormap,
        rescale=rescale,
        lineage=ctx.lineage,
        stats={**grid_stats, **stats},
        created_at=ctx.created_at,
        features_path=features_path,
    )


def _areas(
    ctx: PredictionContext, base: str, out: Path, sources: Mapping[str, tuple[np.ndarray, str]]
) -> list[Layer]:
    """GeoJSON (EPSG:4326) of every area rule of the service, as vector layers."""
    layers = []
    to_wgs84 = wgs84_transformer(ctx.crs)
    for rule in ctx.spec.areas:
        values, unit = sources[rule.source]
        threshold = rule.threshold(values)
        lid = layer_id(base, rule.key)
        path = out.with_name(f"{out.stem}.{rule.key}.geojson")
        properties = {
            "layer": lid,
            "class": rule.key,
            "model_name": ctx.model["name"],
            "model_version": ctx.model["version"],
            "model_run_id": ctx.model["run_id"],
            "scene": ctx.scene,
            **{f"param_{k}": v for k, v in ctx.params.items()},
            "threshold": round(threshold, 4),
            "rule": rule.rule,
            "unit": unit,
        }
        polygons = iter_area_polygons(values, threshold, ctx.transform)
        areas = _write_areas(path, polygons, to_wgs84=to_wgs84, properties=properties)
        layers.append(
            Layer(
                id=lid,
                title=ctx.title(rule.title),
                kind="vector",
                group=ctx.spec.group,
                role=rule.key,
                path=str(path),
                unit=unit,
                legend=rule.rule,
                bounds=wgs84_bounds(ctx.crs, _grid_bounds(ctx.transform, values.shape)),
                crs="EPSG:4326",
                fingerprint=file_fingerprint(path),
                created_at=ctx.created_at,
                lineage=ctx.lineage,
                stats={
                    "polygons": len(areas),
                    "area_m2": round(sum(areas), 1),
                    "threshold": round(threshold, 4),
                },
            )
        )
    return layers


def _write_areas(
    path: Path, polygons: Iterable[AreaPolygon], *, to_wgs84: Any, properties: dict[str, Any]
) -> list[float]:
    """The polygons as a GeoJSON file, feature by feature; the area (m²) of each."""
    areas: list[float] = []

    def features() -> Iterator[dict[str, Any]]:
        for rank, polygon in enumerate(polygons, start=1):
            areas.append(polygon.area_m2)
            yield area_feature(
                rank, polygon, to_wgs84=to_wgs84, properties=properties, value_name="value"
            )

    atomic.atomic_write_feature_collection(path, features(), parents=True)
    return areas


def _grid_bounds(transform: Affine, shape: tuple[int, int]) -> tuple[float, float, float, float]:
    rows, cols = shape
    x0, y0 = transform.c, transform.f
    x1, y1 = x0 + cols * transform.a, y0 + rows * transform.e
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


DerivedGrids = list[tuple[DerivedRaster, np.ndarray, dict[str, Any]]]
"""Each derived raster of the service with its grid and facts."""


def derive_grids(
    spec: MapSpec, prediction: np.ndarray, inputs: Mapping[str, np.ndarray]
) -> DerivedGrids:
    """The service's derived rasters (e.g. heat-island intensity) from the prediction
    grid and the input grids they name; once computed, the input grids can go."""
    return [(derived, *derived.compute(prediction, inputs)) for derived in spec.derived]


def write_prediction_layers(
    ctx: PredictionContext,
    base: str,
    out: Path,
    prediction: np.ndarray,
    derived_grids: DerivedGrids,
    cells_path: Path,
    evaluation: Mapping[str, float] | None,
) -> list[Layer]:
    spec, definition = ctx.spec, ctx.definition
    unit = definition.prediction_unit
    layers = [
        _raster(
            ctx,
            lid=base,
            role="prediction",
            what=spec.title,
            unit=unit,
            style=spec.prediction,
            values=prediction,
            out=out,
            stats={"evaluation": dict(evaluation)} if evaluation else {},
            features_path=cells_path,
        )
    ]
    sources: dict[str, tuple[np.ndarray, str]] = {"prediction": (prediction, unit)}
    for derived, values, facts in derived_grids:
        derived_id = layer_id(
            definition.name, derived.key, *param_suffix(spec, ctx.params), ctx.scene
        )
        sources[derived.key] = (values, derived.unit)
        layers.append(
            _raster(
                ctx,
                lid=derived_id,
                role="derived",
                what=derived.title,
                unit=derived.unit,
                style=derived.style,
                values=values,
                out=out.with_name(f"{out.stem}.{derived.key}.tif"),
                stats=facts,
            )
        )
    layers.extend(_areas(ctx, base, out, sources))
    return layers
