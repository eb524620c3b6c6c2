"""A whole Landsat product window → reflectance, LST (°C), the clear mask and the
record of every constant and method used, for the scene manifest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from terraops.domain.landsat.clouds import (
    CLOUD_DILATION_PX,
    COLD_CLOUD_MARGIN_K,
    COLD_CLOUD_PERCENTILE,
    FMASK_BT_MAX_C,
    FMASK_HOT_OFFSET,
    FMASK_NDSI_MAX,
    FMASK_NDVI_MAX,
    FMASK_NIR_SWIR1_MIN,
    FMASK_SWIR2_MIN,
    FMASK_WHITENESS_MAX,
    QA_DECODING,
    QaFlags,
    cold_cloud,
    decode_qa,
    dilate,
    potential_cloud,
)
from terraops.domain.landsat.mtl import (
    OLI_BANDS,
    REFLECTIVE_BANDS,
    SWIR2_BAND,
    ProductMetadata,
)
from terraops.domain.landsat.radiometry import (
    B10_WAVELENGTH_UM,
    CAVITY_SHAPE_FACTOR,
    DOS1_DARK_OBJECT_REFLECTANCE,
    DOS1_DARK_PERCENTILE,
    EMISSIVITY_SOIL_MIXED,
    EMISSIVITY_VEGETATION,
    EMISSIVITY_WATER,
    KELVIN,
    NDVI_SOIL,
    NDVI_VEGETATION,
    NDWI_WATER,
    RHO2_UM_K,
    SOIL_EMISSIVITY_INTERCEPT,
    SOIL_EMISSIVITY_RED_SLOPE,
    brightness_temperature,
    dos1_haze,
    emissivity_ndvi_threshold,
    land_surface_temperature,
    normalized_difference,
    rescale,
    toa_reflectance,
)
from terraops.domain.landsat.scene_constants import SceneConstants, dn_counts
from terraops.domain.mask_tally import MaskTally
from terraops.errors import InvalidInputError


# --------------------------------------------------------------------------- the whole product
@dataclass(frozen=True)
class ProductPixels:
    """Digital numbers of one window of a product, all on the same grid."""

    reflective: Mapping[int, np.ndarray]  # OLI band number → DN
    qa: np.ndarray | None  # None: the product has no QA band (no cloud mask)
    thermal: np.ndarray | None = None  # band-10 DN
    surface_temperature: np.ndarray | None = None  # Level-2 ST_B10 DN


@dataclass(frozen=True)
class DerivedLayers:
    reflectance: dict[str, np.ndarray]  # terraops band → float32, NaN where masked
    lst_c: np.ndarray  # float32 °C, NaN where masked
    clear: np.ndarray  # bool
    record: dict[str, Any]  # constants and methods, for the scene manifest
    tally: MaskTally  # the pixel counts behind the record's mask fractions


CORRECTIONS = ("dos1", "none")
NO_CLOUD_MASK = (
    "no cloud mask: the product has no QA band, so only no-data pixels are masked "
    "(the spectral cloud tests back up the QA band, they do not replace it)"
)


def _reflectance(
    pixels: ProductPixels,
    meta: ProductMetadata,
    fill: np.ndarray,
    correction: str,
    haze_by_band: Mapping[int, float] | None = None,
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray], dict[str, Any]]:
    """(values for the cloud test, values to store, record) per OLI band.

    Level-1 DN become TOA reflectance, then DOS1 surface reflectance unless
    ``correction == "none"``; Level-2 surface reflectance is stored as is.
    ``haze_by_band``: the DOS1 haze of the whole imported area, found before
    (else each band's own dark object in this window).
    """
    names = {n: b for b, n in OLI_BANDS.items()} | {SWIR2_BAND: "swir2 (cloud test only)"}
    tested: dict[int, np.ndarray] = {}
    stored: dict[int, np.ndarray] = {}
    bands: dict[str, Any] = {}
    for n in REFLECTIVE_BANDS:
        cal = meta.reflective[n]
        if meta.reflectance_level == "toa":
            value = toa_reflectance(pixels.reflective[n], cal, float(meta.sun_elevation or 90.0))
        else:
            value = rescale(pixels.reflective[n], cal)
        tested[n] = np.where(fill, np.float32(np.nan), value)
        haze = 0.0
        if correction == "dos1":
            haze = haze_by_band[n] if haze_by_band is not None else dos1_haze(tested[n])
        stored[n] = tested[n] - np.float32(haze)
        bands[f"B{n}"] = {"terraops_band": names[n], "mult": cal.mult, "add": cal.add}
        if correction == "dos1":
            bands[f"B{n}"]["dos1_haze_reflectance"] = round(haze, 6)
    if correction == "dos1":
        method: dict[str, Any] = {
            "method": "dos1",
            "reference": "Chavez 1988 (RSE 24:459-479), 1996 (PE&RS 62:1025-1036)",
            "dark_object": f"{DOS1_DARK_PERCENTILE} percentile of each band's valid TOA "
            "reflectance in the imported window",
            "dark_object_reflectance": DOS1_DARK_OBJECT_REFLECTANCE,
        }
    elif meta.reflectance_level == "surface":
        method = {"method": "none", "note": "Level-2 surface reflectance (USGS LaSRC) as delivered"}
    else:
        method = {"method": "none", "note": "top-of-atmosphere reflectance"}
    level = "TOA reflectance = (M*DN + A) / sin(sun elevation) (Landsat 8 Data Users Handbook, 5)"
    if meta.reflectance_level == "surface":
        level = "Level-2 surface reflectance = M*DN + A"
    return tested, stored, {"reflectance": level, "bands": bands, "correction": method}


def _brightness_temperature(pixels: ProductPixels, meta: ProductMetadata) -> np.ndarray | None:
    if pixels.thermal is None or meta.thermal is None:
        return None
    radiance = rescale(pixels.thermal, meta.thermal.radiance)
    return brightness_temperature(radiance, meta.thermal.k1, meta.thermal.k2)


def _emissivity_record() -> dict[str, Any]:
    return {
        "method": "NDVI thresholds (Sobrino, Jimenez-Munoz & Paolini 2004, RSE 90:434-440); "
        "water by NDWI > 0 (McFeeters 1996)",
        "ndvi_soil": NDVI_SOIL,
        "ndvi_vegetation": NDVI_VEGETATION,
        "soil": f"{SOIL_EMISSIVITY_INTERCEPT} - {SOIL_EMISSIVITY_RED_SLOPE} * red",
        "vegetation": EMISSIVITY_VEGETATION,
        "mixed": "ev*Pv + es*(1-Pv) + (1-es)*(1-Pv)*F*ev, Pv = ((NDVI-0.2)/0.3)^2",
        "mixed_soil": EMISSIVITY_SOIL_MIXED,
        "shape_factor_F": CAVITY_SHAPE_FACTOR,
        "water": EMISSIVITY_WATER,
        "ndvi_from": "the stored reflectance (after the correction)",
    }


def _lst(
    pixels: ProductPixels,
    meta: ProductMetadata,
    stored: dict[int, np.ndarray],
    source: str,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(LST in K, BT in K for the cloud test, record)."""
    bt = _brightness_temperature(pixels, meta)
    record: dict[str, Any] = {}
    if meta.thermal is not None:
        record["thermal"] = {
            "band": "B10",
            "radiance_mult": meta.thermal.radiance.mult,
            "radiance_add": meta.thermal.radiance.add,
            "k1": meta.thermal.k1,
            "k2": meta.thermal.k2,
        }
    if source == "st":
        cal = meta.surface_temperature
        if cal is None or pixels.surface_temperature is None:
            raise InvalidInputError("Level-2 surface temperature requested but not available")
        lst = rescale(pixels.surface_temperature, cal)
        record["lst"] = {
            "method": "USGS Collection 2 Level-2 surface temperature (ST_B10) as delivered",
            "st_mult": cal.mult,
            "st_add": cal.add,
        }
        return lst, (bt if bt is not None else lst), record
    if bt is None:
        raise InvalidInputError("band 10 or its constants are missing")
    ndvi = normalized_difference(stored[OLI_BANDS["nir"]], stored[OLI_BANDS["red"]])
    ndwi = normalized_difference(stored[OLI_BANDS["green"]], stored[OLI_BANDS["nir"]])
    eps = emissivity_ndvi_threshold(ndvi, stored[OLI_BANDS["red"]], ndwi)
    record["emissivity"] = _emissivity_record()
    record["lst"] = {
        "method": "BT / (1 + (lambda*BT/rho2) * ln(emissivity)) "
        "(Artis & Carnahan 1982; Weng, Lu & Schubring 2004, RSE 89:467-483)",
        "brightness_temperature": "K2 / ln(K1 / (M*DN + A) + 1)",
        "wavelength_um": B10_WAVELENGTH_UM,
        "rho2_um_k": RHO2_UM_K,
    }
    return land_surface_temperature(bt, eps), bt, record


def _mask(
    qa: QaFlags,
    tests: dict[str, np.ndarray],
    fill: np.ndarray,
    dilation_px: int,
    core: slice,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Masked pixels (fill ∪ dilated clouds) of the ``core`` rows, and what each test
    contributed there (counted by a :class:`MaskTally`)."""
    flagged_by_qa = qa.cloud | qa.cirrus | qa.shadow
    flagged = flagged_by_qa | np.logical_or.reduce(list(tests.values()))
    masked = (fill | dilate(flagged, dilation_px))[core]
    fill, flagged, flagged_by_qa = fill[core], flagged[core], flagged_by_qa[core]
    contributions = {
        "fill": fill,
        "qa_cloud": qa.cloud[core],
        "qa_cirrus": qa.cirrus[core],
        "qa_shadow": qa.shadow[core],
        **{name: test[core] for name, test in tests.items()},
        **{f"{name}_not_in_qa": test[core] & ~flagged_by_qa for name, test in tests.items()},
        "added_by_dilation": masked & ~flagged & ~fill,
    }
    return masked, contributions


def _clear_land(
    qa: QaFlags, tested: dict[int, np.ndarray], bt_c: np.ndarray, fill: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clear land, water, Fmask potential cloud): the cold-cloud test's reference."""
    pcp = potential_cloud(tested, bt_c) & ~fill
    water = normalized_difference(tested[3], tested[5]) > NDWI_WATER
    clear_land = ~(fill | pcp | qa.cloud | qa.cirrus | qa.shadow | water)
    return clear_land, water, pcp


def _cloud_tests(
    qa: QaFlags,
    tested: dict[int, np.ndarray],
    bt_c: np.ndarray,
    fill: np.ndarray,
    t_low_c: float | None,
) -> dict[str, np.ndarray]:
    """The spectral tests that back up the QA band (see the package docstring)."""
    clear_land, water, pcp = _clear_land(qa, tested, bt_c, fill)
    cold = cold_cloud(bt_c, clear_land, water, t_low_c) & ~fill
    return {"potential_cloud": pcp, "cold_cloud": cold}


def _cloud_record(meta: ProductMetadata, *, brightness: str) -> dict[str, Any]:
    """How the cloud mask was made, for the manifest."""
    return {
        "qa": {"scheme": meta.qa_scheme, "decoding": QA_DECODING[meta.qa_scheme]},
        "cloud_test": {
            "method": "Fmask potential cloud pixels (Zhu & Woodcock 2012, RSE 118:83-94, eqs. 1-4)",
            "test": f"swir2 > {FMASK_SWIR2_MIN} & BT < {FMASK_BT_MAX_C} C & NDVI < "
            f"{FMASK_NDVI_MAX} & NDSI < {FMASK_NDSI_MAX} & whiteness < {FMASK_WHITENESS_MAX} "
            f"& blue - 0.5*red - {FMASK_HOT_OFFSET} > 0 & nir/swir1 > {FMASK_NIR_SWIR1_MIN}",
            "on": "TOA reflectance" if meta.reflectance_level == "toa" else "surface reflectance",
            "cold_cloud": f"land BT < {COLD_CLOUD_PERCENTILE}th percentile of clear-land BT - "
            f"{COLD_CLOUD_MARGIN_K} K (after Fmask's temperature probability, eqs. 8-9)",
            "brightness_temperature": brightness,
        },
    }


def _checked_correction(correction: str, meta: ProductMetadata) -> str:
    if correction not in CORRECTIONS:
        raise InvalidInputError(
            f"unknown correction {correction!r}", hint=f"use one of {', '.join(CORRECTIONS)}"
        )
    return "none" if meta.reflectance_level == "surface" else correction


def _fill_and_qa(pixels: ProductPixels, meta: ProductMetadata) -> tuple[np.ndarray, QaFlags | None]:
    """No-data pixels (any band 0, ST_B10 0, QA fill) and the decoded QA band."""
    fill = np.logical_or.reduce([pixels.reflective[n] == 0 for n in REFLECTIVE_BANDS])
    if pixels.surface_temperature is not None:
        fill |= pixels.surface_temperature == 0  # ST_B10's fill value
    qa = decode_qa(pixels.qa, meta.qa_scheme) if pixels.qa is not None else None
    if qa is not None:
        fill |= qa.fill
    return fill, qa


def derive_layers(
    pixels: ProductPixels,
    meta: ProductMetadata,
    *,
    thermal: str,
    correction: str = "dos1",
    dilation_px: int = CLOUD_DILATION_PX,
    constants: SceneConstants | None = None,
    core: slice = slice(None),
) -> DerivedLayers:
    """Reflectance, LST (°C) and the clear mask of one product window, plus the record.

    ``thermal`` is what :func:`thermal_source` chose. Masked pixels (fill,
    QA cloud/cirrus/shadow, potential and cold cloud — all but fill dilated)
    get NaN. An import in strips passes the whole area's ``constants`` and
    reads each strip with ``dilation_px`` rows of halo on each side: ``core``
    (the strip's own rows) is what is returned and counted.
    """
    correction = _checked_correction(correction, meta)
    fill, qa = _fill_and_qa(pixels, meta)
    haze = constants.haze if constants is not None else None
    tested, stored, record = _reflectance(pixels, meta, fill, correction, haze)
    lst_k, bt_k, thermal_record = _lst(pixels, meta, stored, thermal)
    fill = fill | ~np.isfinite(lst_k)
    tally = MaskTally()
    if qa is not None:
        t_low_c = constants.t_low_c if constants is not None else None
        tests = _cloud_tests(qa, tested, bt_k - KELVIN, fill, t_low_c)
        masked, contributions = _mask(qa, tests, fill, dilation_px, core)
        tally.add({"masked": masked, **contributions})
    else:
        masked = fill[core]
        tally.add({"masked": masked, "fill": masked})
    nan = np.float32(np.nan)
    reflectance = {name: stored[n][core] for name, n in OLI_BANDS.items()}
    for band in reflectance.values():  # in place: a strip of a scene is millions of px
        band[masked] = nan
    lst_c = (lst_k[core] - np.float32(KELVIN)).astype(np.float32)
    lst_c[masked] = nan
    record.update(thermal_record)
    if qa is not None:
        brightness = "band 10" if pixels.thermal is not None else "ST_B10"
        record.update(_cloud_record(meta, brightness=brightness))
    else:
        record["qa"] = {"scheme": "none", "decoding": NO_CLOUD_MASK}
        record["cloud_mask"] = NO_CLOUD_MASK
        dilation_px = 0
    record["dilation_px"] = dilation_px
    tally.write_fractions(record)
    return DerivedLayers(reflectance, lst_c, ~masked, record, tally)


# --------------------------------------------------------------------------- whole-area passes
def valid_dn_counts(pixels: ProductPixels, meta: ProductMetadata) -> dict[int, np.ndarray]:
    """Per OLI band, how many valid pixels hold each DN: the DOS1 dark objects'
    histogram (:func:`terraops.domain.landsat.scene_constants.haze_of_counts`)."""
    fill, _ = _fill_and_qa(pixels, meta)
    return {n: dn_counts(pixels.reflective[n], ~fill) for n in REFLECTIVE_BANDS}


def bt_from_band10(pixels: ProductPixels, meta: ProductMetadata) -> bool:
    """Whether brightness temperature comes from band 10 (else from ST_B10)."""
    return pixels.thermal is not None and meta.thermal is not None


def clear_land_dn_counts(
    pixels: ProductPixels,
    meta: ProductMetadata,
    *,
    thermal: str,
    correction: str,
    haze_by_band: Mapping[int, float],
) -> np.ndarray | None:
    """How many clear-land pixels hold each thermal DN: the cold-cloud line's
    histogram (:func:`terraops.domain.landsat.scene_constants.t_low_of_counts`);
    None for a product without a QA band (no cloud tests)."""
    correction = _checked_correction(correction, meta)
    fill, qa = _fill_and_qa(pixels, meta)
    if qa is None:
        return None
    tested, stored, _ = _reflectance(pixels, meta, fill, correction, haze_by_band)
    lst_k, bt_k, _ = _lst(pixels, meta, stored, thermal)
    bt_c = bt_k - KELVIN
    clear_land, _, _ = _clear_land(qa, tested, bt_c, fill | ~np.isfinite(lst_k))
    dn = pixels.thermal if bt_from_band10(pixels, meta) else pixels.surface_temperature
    assert dn is not None
    return dn_counts(dn, clear_land & np.isfinite(bt_c))
