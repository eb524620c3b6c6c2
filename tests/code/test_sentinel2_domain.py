"""Pure Sentinel-2 and STAC-item rules: offsets by baseline, reflectance, asset keys."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sentinel2_support as s2
from terraops.domain.sentinel2.metadata import (
    BAND_IDS,
    check_offsets,
    parse_baseline,
    parse_product_metadata,
)
from terraops.domain.sentinel2.product import BandScaling, reflectance, scl_mask
from terraops.domain.stac_items import S2_KEYS, pick_assets, s2_scaling, summarise
from terraops.errors import InvalidInputError


@given(st.integers(0, 9), st.integers(0, 99))
def test_offsets_are_required_exactly_from_baseline_04(major: int, minor: int) -> None:
    baseline = parse_baseline(f"{major:02d}.{minor:02d}", "x")
    full = dict.fromkeys(BAND_IDS, -1000.0)
    if major >= 4:
        check_offsets(baseline, full, "x")
        with pytest.raises(InvalidInputError, match="no BOA_ADD_OFFSET"):
            check_offsets(baseline, {}, "x")
    else:
        check_offsets(baseline, {}, "x")
        with pytest.raises(InvalidInputError, match="contradicts itself"):
            check_offsets(baseline, full, "x")


@given(st.integers(1, 65534), st.sampled_from([0.0, -1000.0]))
def test_reflectance_inverts_the_products_encoding(dn: int, add: float) -> None:
    value = reflectance(np.array([dn], np.uint16), BandScaling(add, 10000.0, "test"))
    assert round(float(value[0]) * 10000.0 - add) == dn


@given(st.lists(st.integers(0, 11), min_size=1, max_size=50))
def test_scl_mask_is_the_masked_codes(codes: list[int]) -> None:
    masked, _ = scl_mask(np.array(codes, np.uint8))
    assert masked.tolist() == [c in (0, 1, 3, 8, 9, 10, 11) for c in codes]


def test_both_baselines_parse_from_the_xml() -> None:
    new = parse_product_metadata(s2.mtd_msil2a("04.00", ["GRANULE/x/IMG_DATA/R10m/T_B04_10m"]))
    old = parse_product_metadata(s2.mtd_msil2a("02.09", []))
    assert new.baseline == "04.00" and new.offsets["B8A"] == -1000.0 and len(new.offsets) == 13
    assert old.baseline == "02.09" and old.offsets == {} and old.quantification == 10000.0
    assert new.spacecraft == "Sentinel-2B" and new.scl_legend[9] == "SC_CLOUD_HIGH_PROBA"
    assert new.image_files == ("GRANULE/x/IMG_DATA/R10m/T_B04_10m",)


@pytest.mark.parametrize(
    "keys", [s2.EARTH_SEARCH, s2.PLANETARY, {b: f"{b}_20m" for b in s2.PLANETARY}]
)
def test_asset_keys_of_each_api(keys: dict[str, str]) -> None:
    assets = {key: {} for key in keys.values()}
    if "B02_20m" in assets:  # Copernicus Data Space: 10 m bands as B02_10m
        assets = {k.replace("_20m", "_10m") if k[:3] in s2.TEN_M else k: {} for k in assets}
    found = pick_assets("x", assets, S2_KEYS)
    assert set(found) == set(S2_KEYS)


def test_scaling_rules_in_order() -> None:
    assets = {b: {"raster:bands": [{"scale": 0.0001, "offset": -0.1}]} for b in S2_KEYS}
    applied = s2_scaling({"earthsearch:boa_offset_applied": True}, assets, None)
    assert applied["B04"].add == 0.0
    from_metadata = s2_scaling({"s2:processing_baseline": "02.00"}, assets, {"B04": -1000.0})
    assert from_metadata["B04"].add == -1000.0
    assert s2_scaling({"s2:processing_baseline": "05.10"}, assets, None)["B04"].add == -1000.0
    assert s2_scaling({}, assets, None)["B04"].add == pytest.approx(-1000.0)


def test_summaries() -> None:
    landsat = summarise({"id": "LC09_L2SP_x", "properties": {"platform": "landsat-9"}})
    assert landsat.kind == "landsat"
    sentinel = summarise({"id": "S2A_31UDQ", "collection": "sentinel-2-l2a", "properties": {}})
    assert sentinel.kind == "sentinel2"
