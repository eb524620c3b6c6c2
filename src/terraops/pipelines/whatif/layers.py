"""A what-if's files: Δ COGs and the interventions' GeoJSON, with lineage, as catalogue layers.

Every file says where it came from — the model (name, version, run id), the
scenario (its sha256) and the scene — in the GeoTIFF tags (readable by
gdalinfo/QGIS without terraops), the GeoJSON's properties and the catalogue
entry, like the prediction layers of
:mod:`terraops.pipelines.maps.prediction_layers`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from rasterio.transform import Affine

from terraops.adapters import atomic, cog
from terraops.adapters.catalogue import file_fingerprint
from terraops.domain.layers import Layer, layer_id
from terraops.pipelines.maps.layer_products import (
    now_iso,
    raster_layer,
    wgs84_bounds,
    wgs84_transformer,
)
from terraops.services.base import RasterStyle

DELTA_COLORMAP = "rdbu_r"
"""Diverging: blue where the edit lowers the prediction, red where it raises it."""


@dataclass(frozen=True)
class WhatIfContext:
    """What every file of one what-if shares: lineage, grid and where files go."""

    service: str
    group: str
    model: Mapping[str, Any]  # name, version, run_id
    scene: str
    scene_dir: str
    scenario_sha256: str
    params: Mapping[str, float]
    crs: str
    transform: Affine
    out_dir: Path
    created_at: str

    @property
    def short(self) -> str:
        """The scenario's short id in layer ids (12 hex digits of its sha256)."""
        return self.scenario_sha256[:12]

    @property
    def lineage(self) -> dict[str, Any]:
        return {
            "model": dict(self.model),
            "scene": self.scene,
            "scene_dir": self.scene_dir,
            "scenario_sha256": self.scenario_sha256,
            "params": dict(self.params),
            "cell_size_m": abs(self.transform.a),
        }

    def tags(self, lid: str, unit: str) -> dict[str, str]:
        return {
            "terraops_layer": lid,
            "model_name": str(self.model["name"]),
            "model_version": str(self.model["version"]),
            "model_run_id": str(self.model["run_id"]),
            "scene": self.scene,
            "scenario_sha256": self.scenario_sha256,
            "params": json.dumps(dict(self.params), sort_keys=True),
            "unit": unit,
            "created_at": self.created_at,
        }


def _rescale(values: np.ndarray) -> tuple[float, float]:
    """Symmetric around 0, so white means 'no change' on every Δ map."""
    finite = np.abs(values[np.isfinite(values)])
    top = float(finite.max()) if finite.size else 0.0
    top = round(max(top, 1e-3), 3)
    return (-top, top)


def _write_grid(ctx: WhatIfContext, lid: str, unit: str, values: np.ndarray) -> Path:
    """One cell grid → a validated float32 COG (NaN = no cell) with the what-if's tags."""
    out = ctx.out_dir / f"{lid}.tif"
    cog.write_array_cog(
        values.astype(np.float32),
        out,
        crs=ctx.crs,
        transform=ctx.transform,
        nodata=float("nan"),
        tags=ctx.tags(lid, unit),
        descriptions=(lid,),
    )
    return out


def delta_layer(ctx: WhatIfContext, *, key: str, title: str, unit: str, delta: np.ndarray) -> Layer:
    """One Δ grid → a validated COG and its catalogue entry."""
    lid = layer_id(ctx.service, "whatif", key, ctx.short, ctx.scene)
    out = _write_grid(ctx, lid, unit, delta)
    finite = delta[np.isfinite(delta)]
    changed = finite[finite != 0]
    return raster_layer(
        lid=lid,
        title=f"{title} — {ctx.scene} · {ctx.model['name']} v{ctx.model['version']}",
        group=ctx.group,
        role="whatif",
        path=out,
        unit=unit,
        legend=f"after − before ({unit}); blue lowers, red raises",
        colormap=DELTA_COLORMAP,
        rescale=_rescale(delta),
        lineage=ctx.lineage,
        stats={
            "cells_changed": int(changed.size),
            "min": round(float(changed.min()), 4) if changed.size else 0.0,
            "max": round(float(changed.max()), 4) if changed.size else 0.0,
        },
        created_at=ctx.created_at,
    )


def after_layer(
    ctx: WhatIfContext, *, title: str, unit: str, values: np.ndarray, style: RasterStyle
) -> Layer:
    """The whole map after the scenario, styled like the service's prediction layer,
    so the map can swipe between today's map and this one."""
    lid = layer_id(ctx.service, "whatif", "after", ctx.short, ctx.scene)
    out = _write_grid(ctx, lid, unit, values)
    finite = values[np.isfinite(values)]
    rescale = style.rescale or (
        (round(float(np.percentile(finite, 2)), 3), round(float(np.percentile(finite, 98)), 3))
        if finite.size
        else None
    )
    return raster_layer(
        lid=lid,
        title=f"{title} after the scenario — {ctx.scene} · "
        f"{ctx.model['name']} v{ctx.model['version']}",
        group=ctx.group,
        role="whatif-after",
        path=out,
        unit=unit,
        legend=f"{style.legend}, after the scenario",
        colormap=style.colormap,
        rescale=rescale,
        lineage=ctx.lineage,
        stats={"cells": int(finite.size)},
        created_at=ctx.created_at,
    )


def interventions_layer(
    ctx: WhatIfContext,
    geometries: Sequence[Any],
    rows: Sequence[Mapping[str, Any]],
    unit: str,
) -> Layer:
    """The interventions (EPSG:4326) with their stats as properties → GeoJSON layer."""
    lid = layer_id(ctx.service, "whatif", "interventions", ctx.short, ctx.scene)
    path = ctx.out_dir / f"{lid}.geojson"
    to_wgs84 = wgs84_transformer(ctx.crs)
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": index,
                "geometry": shapely.geometry.mapping(  # wound as RFC 7946 asks
                    shapely.orient_polygons(shapely.set_precision(to_wgs84(geometry), 1e-7))
                ),
                "properties": {
                    **row,
                    "model_name": ctx.model["name"],
                    "model_version": ctx.model["version"],
                    "scenario_sha256": ctx.scenario_sha256,
                    "scene": ctx.scene,
                    "unit": unit,
                },
            }
            for index, (geometry, row) in enumerate(zip(geometries, rows, strict=True))
        ],
    }
    atomic.atomic_write_json(path, collection, indent=None, separators=(",", ":"), parents=True)
    bounds = shapely.unary_union(list(geometries)).bounds
    return Layer(
        id=lid,
        title=f"What-if interventions — {ctx.scene} · {ctx.model['name']} v{ctx.model['version']}",
        kind="vector",
        group=ctx.group,
        role="whatif-interventions",
        path=str(path.absolute()),
        unit=unit,
        legend="Interventions of the scenario, with their effect",
        bounds=wgs84_bounds(ctx.crs, bounds),
        crs="EPSG:4326",
        fingerprint=file_fingerprint(path),
        created_at=ctx.created_at,
        lineage=ctx.lineage,
        stats={"interventions": len(rows)},
    )


def context(
    *,
    service: str,
    group: str,
    model: Mapping[str, Any],
    scene: str,
    scene_dir: Path,
    scenario_sha256: str,
    params: Mapping[str, float],
    crs: str,
    transform: Affine,
    out_dir: Path,
) -> WhatIfContext:
    return WhatIfContext(
        service,
        group,
        model,
        scene,
        str(scene_dir.resolve()),
        scenario_sha256,
        dict(params),
        crs,
        transform,
        out_dir,
        now_iso(),
    )
