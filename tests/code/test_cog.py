"""COG writing and conversion: valid output or no output at all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from terraops.adapters.cog import convert_to_cog, validate_cog, write_array_cog
from terraops.errors import InvalidInputError, NotFoundError

TRANSFORM = from_origin(500_000.0, 5_000_000.0, 10.0, 10.0)


def plain_tiff(path: Path, size: int = 300, dtype: str = "float32") -> Path:
    data = np.add.outer(np.arange(size), np.arange(size)).astype(dtype)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=1,
        dtype=dtype,
        crs="EPSG:32632",
        transform=TRANSFORM,
        nodata=-1,
    ) as dst:
        dst.write(data, 1)
        dst.update_tags(source="test")
    return path


def test_convert_writes_a_valid_cog_with_overviews_nodata_and_tags(tmp_path: Path) -> None:
    src = plain_tiff(tmp_path / "plain.tif")
    assert validate_cog(src)  # a striped GeoTIFF is not a COG
    result = convert_to_cog(src, tmp_path / "out.tif")
    out = Path(result["path"])
    assert validate_cog(out) == []
    with rasterio.open(out) as cog, rasterio.open(src) as original:
        assert cog.overviews(1), "internal overviews"
        assert cog.nodata == -1
        assert cog.tags()["source"] == "test"
        assert np.array_equal(cog.read(1), original.read(1))


@pytest.mark.parametrize("content", [b"", b"hello, not a raster", b"II*\x00" + b"\x00" * 64])
def test_non_raster_input_is_a_clear_error_and_writes_nothing(
    tmp_path: Path, content: bytes
) -> None:
    bad = tmp_path / "bad.tif"
    bad.write_bytes(content)
    with pytest.raises(InvalidInputError, match="not a readable raster"):
        convert_to_cog(bad, tmp_path / "out.tif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tif"]


def test_truncated_geotiff_writes_nothing(tmp_path: Path) -> None:
    src = plain_tiff(tmp_path / "plain.tif", size=600)
    data = src.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInputError):
        convert_to_cog(cut, tmp_path / "out.tif")
    assert not (tmp_path / "out.tif").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_an_existing_output_survives_a_failed_conversion(tmp_path: Path) -> None:
    good = convert_to_cog(plain_tiff(tmp_path / "plain.tif"), tmp_path / "out.tif")
    before = Path(good["path"]).read_bytes()
    (tmp_path / "bad.tif").write_bytes(b"junk")
    with pytest.raises(InvalidInputError):
        convert_to_cog(tmp_path / "bad.tif", tmp_path / "out.tif")
    assert (tmp_path / "out.tif").read_bytes() == before


def test_vrt_and_missing_inputs_are_refused(tmp_path: Path) -> None:
    src = plain_tiff(tmp_path / "plain.tif")
    vrt = tmp_path / "x.vrt"
    rasterio.shutil.copy(src, vrt, driver="VRT")
    with pytest.raises(InvalidInputError, match="VRT"):
        convert_to_cog(vrt, tmp_path / "out.tif")
    with pytest.raises(NotFoundError):
        convert_to_cog(tmp_path / "nope.tif", tmp_path / "out.tif")
    with pytest.raises(InvalidInputError, match="same file"):
        convert_to_cog(src, src)


def test_write_array_cog_small_grid(tmp_path: Path) -> None:
    grid = np.random.default_rng(0).normal(30, 2, (102, 102)).astype(np.float32)
    grid[0, 0] = np.nan
    out = write_array_cog(
        grid,
        tmp_path / "g.tif",
        crs="EPSG:32632",
        transform=TRANSFORM,
        nodata=float("nan"),
        tags={"model_version": "3"},
    )
    assert validate_cog(out) == []
    with rasterio.open(out) as cog:
        assert cog.tags()["model_version"] == "3"
        assert cog.overviews(1)
        assert np.isnan(cog.read(1)[0, 0])
