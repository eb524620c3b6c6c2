"""INT8 static per-channel quantisation of a segmentation bundle (issue 10, item 5).

A tiny U-Net (base width 4, depth 2) is trained for a few steps on a small
generated scene, saved as a bundle (fp32 ONNX exported by the bundle code),
quantised with chips of that scene, and checked: the int8 graph is valid ONNX
in QDQ form with per-channel weight scales, its probabilities give the same
class as fp32 on ≥ 95 % of the pixels of real chips (and stay within
:data:`PROB_TOLERANCE`), the ``onnx-int8`` engine runs, and a bundle without
an int8 graph is refused with a clear error.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from terraops.adapters.onnx_quantize import INT8_FILE, argmax_agreement, quantize_bundle
from terraops.adapters.segmentation_bundle import META_FILE, BundleMeta, Segmenter, save_bundle
from terraops.errors import ModelNotFoundError
from terraops.pipelines.segmentation.int8 import calibration_chips
from terraops.settings import Settings

ARGMAX_AGREEMENT = 0.95
"""Share of pixels whose most probable class must be the same under int8 and fp32."""
PROB_TOLERANCE = 0.25
"""Largest allowed |p_int8 − p_fp32| of any class probability on the test chips."""


@pytest.fixture(scope="module")
def scenes(tiny_scenes: list[Path]) -> list:
    from terraops.pipelines.segmentation.data import load_scene

    return [load_scene(d) for d in tiny_scenes]


@pytest.fixture(scope="module")
def fp32_bundle(tmp_path_factory: pytest.TempPathFactory, scenes: list) -> Path:
    """A briefly trained tiny U-Net saved as a bundle (model.pt, model.onnx, json)."""
    from terraops.models.unet import UNetConfig
    from terraops.pipelines.segmentation.train import fit, resolve_params
    from terraops.services.segmentation import SEGMENTATION

    overrides = {
        "base_width": 4,
        "depth": 2,
        "epochs": 2,
        "chips_per_epoch": 16,
        "chip": 64,
        "batch_size": 4,
    }
    arch, training = resolve_params(SEGMENTATION, overrides)
    model, _ = fit(SEGMENTATION, arch, training, scenes[:1], scenes[1:], "cpu")
    config = UNetConfig.from_dict({**arch, "n_classes": SEGMENTATION.n_classes})
    meta = BundleMeta.for_model(SEGMENTATION, config)
    out = tmp_path_factory.mktemp("bundle") / "bundle"
    save_bundle(out, model, meta)
    return out


@pytest.fixture(scope="module")
def int8_bundle(fp32_bundle: Path, scenes: list) -> Path:
    chips = calibration_chips(scenes[:1], n=16, chip=128, seed=1)
    path = quantize_bundle(fp32_bundle, chips, calibration_source="test scene city1")
    assert path == fp32_bundle / INT8_FILE
    return fp32_bundle


def test_int8_model_is_valid_qdq_with_per_channel_weights(int8_bundle: Path) -> None:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(int8_bundle / INT8_FILE))
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    conv_weights = {n.input[1] for n in model.graph.node if n.op_type == "Conv"}
    per_channel = 0
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear" or node.output[0] not in conv_weights:
            continue
        weight, scale = inits.get(node.input[0]), inits.get(node.input[1])
        assert weight is not None and weight.dtype == np.int8
        assert scale is not None and scale.ndim == 1 and scale.size == weight.shape[0] > 1
        per_channel += 1
    n_conv = sum(op == "Conv" for op in ops)
    assert per_channel == n_conv > 0  # every convolution's weight: int8, one scale per channel


def test_relu_is_folded_into_the_convolutions_output_quantisation(int8_bundle: Path) -> None:
    """No ReLU is left between a convolution's Q/DQ pairs: had it stayed in fp32, ONNX
    Runtime would requantise every convolution's output (a DequantizeLinear →
    QuantizeLinear pair per layer, a quarter of the int8 graph's time)."""
    import onnx
    import onnxruntime as ort

    ops = [n.op_type for n in onnx.load(str(int8_bundle / INT8_FILE)).graph.node]
    assert "Relu" not in ops
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(int8_bundle.parent / "optimised.onnx")
    ort.InferenceSession(str(int8_bundle / INT8_FILE), options, providers=["CPUExecutionProvider"])
    graph = onnx.load(options.optimized_model_filepath).graph
    producer = {o: n.op_type for n in graph.node for o in n.output}
    requantised = [
        n.name
        for n in graph.node
        if n.op_type == "QuantizeLinear" and producer.get(n.input[0]) == "DequantizeLinear"
    ]
    assert requantised == []


def test_metadata_records_calibration_and_op_types(int8_bundle: Path) -> None:
    facts = json.loads((int8_bundle / META_FILE).read_text())["onnx"]["int8"]
    assert facts["file"] == INT8_FILE
    assert facts["format"] == "QDQ" and facts["per_channel"] is True
    assert facts["calibration"] == {
        "method": "MinMax",
        "chips": 16,
        "chip_shape": [128, 128],
        "source": "test scene city1",
    }
    assert "Conv" in facts["op_types_quantized"]
    assert "Softmax" not in facts["op_types_quantized"]


def test_int8_probabilities_close_to_fp32_on_real_chips(int8_bundle: Path, scenes: list) -> None:
    chips = calibration_chips(scenes[1:], n=4, chip=128, seed=7)  # the other scene
    fp32 = Segmenter(int8_bundle, engine="onnx", threads=1).predict_proba(chips)
    int8_seg = Segmenter(int8_bundle, engine="onnx-int8", threads=1)
    int8 = int8_seg.predict_proba(chips)
    assert int8.shape == fp32.shape and int8.dtype == np.float32
    assert np.allclose(int8.sum(axis=1), 1.0, atol=1e-4)
    assert argmax_agreement(int8, fp32) >= ARGMAX_AGREEMENT
    assert float(np.abs(int8 - fp32).max()) <= PROB_TOLERANCE


def test_missing_int8_model_is_a_clear_error(tmp_path: Path, fp32_bundle: Path) -> None:
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(fp32_bundle, bare)
    (bare / INT8_FILE).unlink(missing_ok=True)
    with pytest.raises(ModelNotFoundError, match=r"no model\.int8\.onnx") as info:
        Segmenter(bare, engine="onnx-int8")
    assert "onnx" in str(info.value.hint)


def test_quantize_without_fp32_graph_is_a_clear_error(tmp_path: Path, fp32_bundle: Path) -> None:
    import shutil

    bare = tmp_path / "nofp32"
    shutil.copytree(fp32_bundle, bare)
    (bare / "model.onnx").unlink()
    with pytest.raises(ModelNotFoundError, match=r"model\.onnx"):
        quantize_bundle(bare, np.zeros((1, 5, 32, 32), np.float32))


@pytest.mark.integration
@pytest.mark.slow
def test_training_registers_int8_graph_and_logs_its_iou_cost(
    settings: Settings, tiny_scenes: list[Path]
) -> None:
    """Registration hook: the registered bundle has model.int8.onnx, the run its IoU cost."""
    import shutil

    from mlflow import MlflowClient

    from segmentation_support import TINY_TRAINING, invoke
    from terraops.adapters.registry import ModelRegistry
    from terraops.adapters.segmentation_bundle import locate_bundle

    result = invoke(
        settings, "segment", "train", "--scenes", *map(str, tiny_scenes), *TINY_TRAINING, "--json"
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    metrics = out["metrics"]
    assert 0.0 <= metrics["building_iou_val_int8"] <= 1.0
    assert metrics["int8_iou_loss_points"] == pytest.approx(
        100 * (metrics["building_iou_val_onnx"] - metrics["building_iou_val_int8"])
    )
    run = MlflowClient(tracking_uri=settings.tracking_uri).get_run(out["run_id"])
    assert "int8_iou_loss_points" in run.data.metrics
    # A fresh download of the registered version (not the local cache) has the int8 graph.
    shutil.rmtree(settings.model_cache_dir)
    bundle = locate_bundle(ModelRegistry(settings).fetch_model("segmentation", out["version"]))
    assert (bundle / INT8_FILE).is_file()
    facts = json.loads((bundle / META_FILE).read_text())["onnx"]["int8"]
    assert facts["calibration"]["chips"] == 32
    assert Segmenter(bundle, engine="onnx-int8").predict_proba(np.zeros((1, 5, 64, 64))).shape == (
        1,
        4,
        64,
        64,
    )
