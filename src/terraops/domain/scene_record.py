"""A scene folder's ``scene.json`` as a typed, validated value: :class:`Scene`.

Every pipeline that reads a scene — cell tables, maps, training, real-city
evaluation, quality, drift, segmentation data — needs the same few facts
(grid, CRS, band encoding, which layers exist). They used to look them up in
the raw JSON mapping, each with its own ``KeyError`` waiting; now the entry
point builds one :class:`Scene` with :meth:`Scene.from_manifest` (which refuses
a bad manifest with a message naming the bad part) and passes it down.

Pure: no file is read here (:func:`terraops.adapters.raster_io.read_scene`
reads the folder). :meth:`Scene.to_manifest` gives back the mapping the writers
store, key for key and in the same order, so the file format does not change.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rasterio.transform import Affine

from terraops.errors import InvalidInputError

MANIFEST_NAME = "scene.json"
"""The manifest's file name inside a scene folder."""

_HINT = "regenerate the scene (`terraops scene generate` / `terraops scene import`)"
_TYPED_KEYS = (
    "name",
    "kind",
    "crs",
    "resolution",
    "width",
    "height",
    "transform",
    "generator_version",
    "reflectance",
    "layers",
    "units",
    "source",
    "physics",
)


@dataclass(frozen=True)
class ReflectanceEncoding:
    """How the reflectance bands are stored: reflectance = stored × scale + offset.

    A stored value equal to ``nodata`` means no data (``None``: every value is data).
    """

    bands: tuple[str, ...]
    scale: float
    offset: float
    nodata: float | None

    def to_manifest(self) -> dict[str, Any]:
        return {
            "bands": list(self.bands),
            "scale": self.scale,
            "offset": self.offset,
            "nodata": self.nodata,
        }


@dataclass(frozen=True)
class SceneLayer:
    """One layer file of a scene, with the unit and band encoding the manifest declares.

    ``scale``/``offset``/``nodata`` are set for the reflectance bands only; the
    other layers (``lst``, ``dem``, ``clear``, ``landcover``, …) are stored as-is.
    """

    name: str
    file: str
    unit: str | None = None
    scale: float | None = None
    offset: float | None = None
    nodata: float | None = None


@dataclass(frozen=True)
class Scene:
    """A scene folder as its manifest describes it (see the module docstring)."""

    folder: Path
    name: str
    crs: str
    transform: tuple[float, float, float, float, float, float]
    resolution: float
    width: int
    height: int
    layer_files: Mapping[str, str]
    reflectance: ReflectanceEncoding | None = None
    units: Mapping[str, str] | None = None
    kind: str | None = None
    generator_version: str | None = None
    source: Mapping[str, Any] | None = None
    physics: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Every other manifest key (bounds, seed, stats, legend, …), as written."""
    key_order: tuple[str, ...] = field(default=(), repr=False, compare=False)
    """The manifest's key order, so :meth:`to_manifest` writes the same JSON."""

    # ----------------------------------------------------------------- reading
    @classmethod
    def from_manifest(cls, manifest: Any, folder: Path) -> Scene:
        """Validate ``manifest`` (the parsed ``scene.json`` of ``folder``) into a Scene.

        Raises InvalidInputError naming the bad part rather than letting a
        pipeline trip over a ``KeyError`` later.
        """
        path = Path(folder) / MANIFEST_NAME
        if not isinstance(manifest, dict):
            raise InvalidInputError(
                f"{path} must hold a JSON object, not {type(manifest).__name__}"
            )
        layer_files = _layer_files(path, manifest.get("layers", {}))
        return cls(
            folder=Path(folder),
            name=_text(path, manifest, "name"),
            crs=_text(path, manifest, "crs"),
            transform=_transform(path, manifest),
            resolution=_positive(path, manifest, "resolution"),
            width=_count(path, manifest, "width"),
            height=_count(path, manifest, "height"),
            layer_files=layer_files,
            reflectance=_reflectance(path, manifest.get("reflectance")),
            units=_optional_mapping(path, manifest, "units"),
            kind=_optional_text(path, manifest, "kind"),
            generator_version=_optional_text(path, manifest, "generator_version"),
            source=_optional_mapping(path, manifest, "source"),
            physics=_optional_mapping(path, manifest, "physics"),
            extra={k: copy.deepcopy(v) for k, v in manifest.items() if k not in _TYPED_KEYS},
            key_order=tuple(manifest),
        )

    def to_manifest(self) -> dict[str, Any]:
        """The ``scene.json`` mapping: the keys :meth:`from_manifest` read, in their order."""
        typed: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "crs": self.crs,
            "resolution": self.resolution,
            "width": self.width,
            "height": self.height,
            "transform": list(self.transform),
            "generator_version": self.generator_version,
            "reflectance": self.reflectance.to_manifest() if self.reflectance else None,
            "layers": dict(self.layer_files),
            "units": copy.deepcopy(dict(self.units)) if self.units is not None else None,
            "source": copy.deepcopy(dict(self.source)) if self.source is not None else None,
            "physics": copy.deepcopy(dict(self.physics)) if self.physics is not None else None,
        }
        present = {k: v for k, v in typed.items() if v is not None or k in self.key_order}
        full = present | copy.deepcopy(dict(self.extra))
        order = [k for k in self.key_order if k in full] + [
            k for k in full if k not in self.key_order
        ]
        return {k: full[k] for k in order}

    # ----------------------------------------------------------------- facts
    @property
    def affine(self) -> Affine:
        """The pixel → CRS transform."""
        return Affine(*self.transform)

    @property
    def origin(self) -> tuple[float, float]:
        """The upper-left corner (x, y) in the scene's CRS."""
        return float(self.transform[2]), float(self.transform[5])

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of every layer."""
        return self.height, self.width

    @property
    def cache_version(self) -> str:
        """What made the pixels: the generator's version, else the import kind."""
        return str(self.generator_version or self.kind or "imported")

    def has_layer(self, name: str) -> bool:
        return name in self.layer_files

    def layer(self, name: str) -> SceneLayer:
        """The named layer with its declared unit and (for a reflectance band) encoding."""
        file = self.layer_files[name]
        unit = (self.units or {}).get(name)
        encoding = self.reflectance
        if encoding is not None and name in encoding.bands:
            return SceneLayer(name, file, unit, encoding.scale, encoding.offset, encoding.nodata)
        return SceneLayer(name, file, unit)

    @property
    def bands(self) -> tuple[SceneLayer, ...]:
        """The reflectance bands the scene has a file for, in the manifest's order."""
        listed = self.reflectance.bands if self.reflectance else ()
        return tuple(self.layer(b) for b in listed if b in self.layer_files)

    def river_inflow(self) -> Mapping[str, Any] | None:
        """The river entering from upstream, when the scene states one (physics or top level)."""
        stated = (self.physics or {}).get("river_inflow") or self.extra.get("river_inflow")
        return stated if isinstance(stated, Mapping) and stated else None


# --------------------------------------------------------------------------- validation
def _layer_files(path: Path, layers: Any) -> dict[str, str]:
    """Layer name → file, refusing a file that is not inside the scene folder."""
    if not isinstance(layers, dict):
        raise InvalidInputError(f"{path}: 'layers' must map layer names to files", hint=_HINT)
    for name, file in layers.items():
        relative = Path(file) if isinstance(file, str) else None
        if relative is None or not file or relative.is_absolute() or ".." in relative.parts:
            raise InvalidInputError(
                f"{path}: layer {name[:40]!r} must name a file inside the scene folder, "
                f"got {str(file)[:80]!r}",
                hint=_HINT,
            )
    return dict(layers)


def _missing(path: Path, key: str, wanted: str) -> InvalidInputError:
    return InvalidInputError(f"{path}: {key!r} must be {wanted}", hint=_HINT)


def _text(path: Path, manifest: Mapping[str, Any], key: str) -> str:
    value = manifest.get(key)
    if not isinstance(value, str) or not value:
        raise _missing(path, key, "a non-empty string")
    return value


def _optional_text(path: Path, manifest: Mapping[str, Any], key: str) -> str | None:
    return _text(path, manifest, key) if manifest.get(key) is not None else None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive(path: Path, manifest: Mapping[str, Any], key: str) -> float:
    value: Any = manifest.get(key)
    if not _number(value) or value <= 0:
        raise _missing(path, key, "a number > 0")
    number: float = value  # kept as written (int or float), so the JSON comes back the same
    return number


def _count(path: Path, manifest: Mapping[str, Any], key: str) -> int:
    value = manifest.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise _missing(path, key, "a whole number > 0")
    return value


def _transform(
    path: Path, manifest: Mapping[str, Any]
) -> tuple[float, float, float, float, float, float]:
    """Six finite numbers (a, b, c, d, e, f) with non-zero pixel sizes."""
    value = manifest.get("transform")
    if not isinstance(value, list) or len(value) != 6 or not all(_number(v) for v in value):
        raise _missing(path, "transform", "six numbers [a, b, c, d, e, f]")
    if value[0] == 0 or value[4] == 0:
        raise _missing(path, "transform", "an affine transform with non-zero pixel sizes")
    a, b, c, d, e, f = value
    return a, b, c, d, e, f


def _optional_mapping(path: Path, manifest: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = manifest.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _missing(path, key, "a JSON object")
    return copy.deepcopy(value)


def _reflectance(path: Path, block: Any) -> ReflectanceEncoding | None:
    """The band encoding; a missing key takes the default every reader assumed."""
    if block is None:
        return None
    if not isinstance(block, dict):
        raise _missing(path, "reflectance", "a JSON object")
    bands = block.get("bands", ["red", "green", "blue", "nir", "swir"])
    if not isinstance(bands, list) or not all(isinstance(b, str) for b in bands):
        raise _missing(path, "reflectance.bands", "a list of band names")
    scale, offset, nodata = block.get("scale", 1.0), block.get("offset", 0.0), block.get("nodata")
    if not (_number(scale) and _number(offset)) or not (nodata is None or _number(nodata)):
        raise _missing(path, "reflectance", "numbers for scale, offset and nodata")
    return ReflectanceEncoding(tuple(bands), scale, offset, nodata)


__all__ = ["MANIFEST_NAME", "ReflectanceEncoding", "Scene", "SceneLayer"]
