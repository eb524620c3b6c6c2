"""The U-Net and its bundle: shapes, input normalisation, ONNX equivalence, determinism.

A tiny network (base width 4) stands in for the real one: the properties
tested here do not depend on the width.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from terraops.adapters.segmentation_bundle import (  # noqa: E402
    ONNX_OPSET,
    ONNX_TOLERANCE,
    BundleMeta,
    Segmenter,
    load_and_verify,
    save_bundle,
)
from terraops.errors import InvalidInputError  # noqa: E402
from terraops.models.unet import (  # noqa: E402
    BAND_OFFSET,
    BAND_SCALE,
    InputNormalisation,
    UNet,
    UNetConfig,
    build_unet,
    count_parameters,
)

TINY = {"base_width": 4, "depth": 2}


def _meta(config: UNetConfig) -> BundleMeta:
    return BundleMeta(
        service="segmentation",
        classes={0: "background", 1: "building", 2: "water", 3: "tree"},
        bands=("red", "green", "blue", "nir", "swir"),
        normalisation=config.normalisation(),
        architecture=config.to_dict(),
        tile=64,
        overlap=8,
    )


def _trained_like(model: UNet) -> UNet:
    """Give BatchNorm non-trivial running statistics (a fresh BN is the identity)."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(4, 5, 32, 32) * 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(3)
    config = UNetConfig(**TINY)
    out = tmp_path_factory.mktemp("bundle") / "bundle"
    save_bundle(out, _trained_like(UNet(config)), _meta(config))
    return out


# --- shapes ---------------------------------------------------------------------


@pytest.mark.parametrize("upsampling", ["bilinear", "transposed"])
@pytest.mark.parametrize(("height", "width"), [(33, 47), (64, 64), (8, 129), (37, 16)])
def test_output_matches_input_size_for_any_parity(upsampling: str, height: int, width: int) -> None:
    model = UNet(UNetConfig(base_width=4, depth=3, upsampling=upsampling)).eval()  # type: ignore[arg-type]
    with torch.inference_mode():
        out = model(torch.rand(2, 5, height, width))
    assert out.shape == (2, 4, height, width)
    assert torch.isfinite(out).all()


def test_widths_double_with_depth() -> None:
    model = UNet(UNetConfig(base_width=8, depth=3))
    widths = [block[0].out_channels for block in model.encoders]
    assert widths == [8, 16, 32]
    assert model.bottleneck[0].out_channels == 64
    assert model.head.out_channels == 4


def test_input_normalisation_standardises_bands_and_adds_indices() -> None:
    red, green, blue, nir, swir = 0.05, 0.08, 0.04, 0.45, 0.2
    x = torch.tensor([red, green, blue, nir, swir]).view(1, 5, 1, 1)
    out = InputNormalisation(indices=True)(x).flatten().tolist()
    expected = [
        (v - o) / s for v, o, s in zip(x.flatten().tolist(), BAND_OFFSET, BAND_SCALE, strict=True)
    ]
    assert out[:5] == pytest.approx(expected, abs=1e-5)
    assert out[5] == pytest.approx((nir - red) / (nir + red), abs=1e-3)  # NDVI
    assert out[6] == pytest.approx((green - nir) / (green + nir), abs=1e-3)  # NDWI
    assert InputNormalisation(indices=False)(x).shape[1] == 5


@pytest.mark.parametrize(
    "params",
    [
        {"depth": 0},
        {"base_width": 0},
        {"upsampling": "nearest"},
        {"n_classes": 1},
        {"block": "mobile"},
    ],
)
def test_bad_architectures_are_refused(params: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        build_unet(params)


def test_separable_block_is_depthwise_smaller_and_same_shape() -> None:
    """``block="separable"``: every 3×3 convolution but the input layer's is depthwise
    (one filter per channel) followed by a 1×1; far fewer weights, same output shape."""
    standard = UNet(UNetConfig(base_width=8, depth=3))
    separable = UNet(UNetConfig(base_width=8, depth=3, block="separable"))
    convs = [m for m in separable.modules() if isinstance(m, torch.nn.Conv2d)]
    full_3x3 = [c for c in convs if c.kernel_size == (3, 3) and c.groups == 1]
    assert full_3x3 == [separable.encoders[0][0]]
    assert any(c.kernel_size == (3, 3) and c.groups == c.in_channels > 1 for c in convs)
    assert count_parameters(separable) < count_parameters(standard) / 3
    with torch.inference_mode():
        out = separable.eval()(torch.rand(2, 5, 37, 50))
    assert out.shape == (2, 4, 37, 50)
    assert UNetConfig.from_dict(UNetConfig(block="separable").to_dict()).block == "separable"
    assert UNetConfig.from_dict({"depth": 3}).block == "standard"  # bundles written before it


def test_separable_bundle_exports_and_agrees_with_pytorch(tmp_path: Path) -> None:
    torch.manual_seed(5)
    config = UNetConfig(**TINY, block="separable")
    meta = save_bundle(tmp_path / "b", _trained_like(UNet(config)), _meta(config))
    assert meta.architecture["block"] == "separable"
    assert meta.onnx["max_abs_prob_diff_on_example"] <= ONNX_TOLERANCE
    chips = np.random.default_rng(1).uniform(0.0, 0.6, (2, 5, 40, 52)).astype(np.float32)
    p_torch = Segmenter(tmp_path / "b", engine="torch", device="cpu").predict_proba(chips)
    p_onnx = Segmenter(tmp_path / "b", engine="onnx", threads=1).predict_proba(chips)
    assert float(np.abs(p_onnx - p_torch).max()) <= ONNX_TOLERANCE


# --- ONNX ------------------------------------------------------------------------


def test_served_session_does_not_spin(bundle: Path) -> None:
    """Idle ONNX Runtime threads sleep instead of busy-waiting for the next operator:
    on a server's shared cores a spinning thread takes the core the work needs."""
    from terraops.models.onnx_session import cpu_session

    options = cpu_session(bundle / "model.onnx", threads=2).get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"


def test_onnx_export_has_dynamic_axes_and_opset(bundle: Path) -> None:
    import onnx

    graph = onnx.load(str(bundle / "model.onnx"))
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= ONNX_OPSET
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "", "height", "width"]
    assert dims[1].dim_value == 5


@pytest.mark.parametrize("shape", [(1, 5, 37, 53), (3, 5, 64, 64), (2, 5, 100, 33)])
def test_onnx_runtime_matches_pytorch_within_tolerance(
    bundle: Path, shape: tuple[int, ...]
) -> None:
    rng = np.random.default_rng(sum(shape))
    chips = rng.uniform(0.0, 0.6, shape).astype(np.float32)
    p_torch = Segmenter(bundle, engine="torch", device="cpu").predict_proba(chips)
    p_onnx = Segmenter(bundle, engine="onnx", threads=1).predict_proba(chips)
    assert p_onnx.shape == (shape[0], 4, *shape[2:])
    assert float(np.abs(p_onnx - p_torch).max()) <= ONNX_TOLERANCE
    np.testing.assert_allclose(p_onnx.sum(axis=1), 1.0, atol=1e-5)


def test_bundle_records_the_measured_agreement(bundle: Path) -> None:
    import json

    meta = json.loads((bundle / "segmentation.json").read_text())
    assert meta["onnx"]["max_abs_prob_diff_on_example"] <= ONNX_TOLERANCE
    assert meta["normalisation"]["offset"] == list(BAND_OFFSET)
    assert meta["architecture"]["base_width"] == 4


def test_missing_reflectance_is_filled_not_propagated(bundle: Path) -> None:
    chips = np.full((1, 5, 32, 32), 0.2, dtype=np.float32)
    chips[0, :, 5:9, 5:9] = np.nan
    probs = Segmenter(bundle, engine="onnx", threads=1).predict_proba(chips)
    assert np.isfinite(probs).all()


def test_mlflow_pyfunc_predicts_what_the_segmenter_predicts(bundle: Path) -> None:
    """The registered model's pyfunc face runs the graph itself (model code does not import
    the adapters); it must prepare chips as the Segmenter does, missing values included."""
    from types import SimpleNamespace

    from terraops.models.pyfunc import BUNDLE_ARTIFACT, SegmentationPyfunc

    chips = np.full((2, 5, 32, 32), 0.2, dtype=np.float32)
    chips[1] = np.linspace(0.01, 0.5, 32 * 32, dtype=np.float32).reshape(32, 32)
    chips[0, :, 5:9, 5:9] = np.nan
    pyfunc = SegmentationPyfunc()
    pyfunc.load_context(SimpleNamespace(artifacts={BUNDLE_ARTIFACT: str(bundle)}))
    expected = Segmenter(bundle, engine="onnx", threads=1).predict_proba(chips)
    np.testing.assert_allclose(pyfunc.predict(None, chips), expected, atol=1e-6)
    np.testing.assert_allclose(pyfunc.predict(None, {"reflectance": chips}), expected, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 3, 32, 32), (5, 32, 32), (1, 5, 2, 32)])
def test_segmenter_refuses_wrong_chips(bundle: Path, shape: tuple[int, ...]) -> None:
    with pytest.raises(InvalidInputError):
        Segmenter(bundle, engine="onnx", threads=1).predict_proba(np.zeros(shape, np.float32))


def test_verification_rejects_a_corrupt_onnx_graph(bundle: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    load_and_verify(broken)  # the copy is fine
    (broken / "model.onnx").write_bytes(b"not an onnx graph")
    with pytest.raises(ValueError, match=r"onnx|ONNX|protobuf|Load"):
        load_and_verify(broken)


def test_verification_rejects_weights_that_disagree_with_the_graph(
    bundle: Path, tmp_path: Path
) -> None:
    """A model.pt from another training run than model.onnx: the engines would disagree."""
    import shutil

    mixed = tmp_path / "mixed"
    shutil.copytree(bundle, mixed)
    torch.manual_seed(99)
    other = _trained_like(UNet(UNetConfig(**TINY)))
    torch.save(other.state_dict(), mixed / "model.pt")
    with pytest.raises(ValueError, match="disagree"):
        load_and_verify(mixed)


# --- determinism --------------------------------------------------------------------


def test_same_seed_same_weights_and_outputs() -> None:
    def make() -> UNet:
        torch.manual_seed(7)
        return build_unet(TINY).eval()

    a, b = make(), make()
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(pa, pb), name
    x = torch.rand(2, 5, 40, 40)
    with torch.inference_mode():
        assert torch.equal(a(x), b(x))


def test_training_is_deterministic_on_cpu(tiny_scenes: list[Path]) -> None:
    """Two seeded runs give bit-identical weights and history; another seed does not."""
    from terraops.pipelines.segmentation.data import load_scene
    from terraops.pipelines.segmentation.train import fit, resolve_params
    from terraops.services.segmentation import SEGMENTATION

    train, val = [load_scene(tiny_scenes[0])], [load_scene(tiny_scenes[1])]

    def run(seed: int) -> tuple[dict[str, torch.Tensor], list[dict[str, float]]]:
        arch, training = resolve_params(
            SEGMENTATION,
            {**TINY, "epochs": 1, "chips_per_epoch": 4, "chip": 64, "batch_size": 2, "seed": seed},
        )
        model, history = fit(SEGMENTATION, arch, training, train, val, "cpu")
        for h in history:
            h.pop("epoch_seconds")
        return model.state_dict(), history

    (w1, h1), (w2, h2), (w3, _) = run(0), run(0), run(1)
    assert h1 == h2
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert not all(torch.equal(w1[k], w3[k]) for k in w1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_engine_agrees_with_onnx_on_cpu(bundle: Path) -> None:
    """The CUDA engine runs bf16 autocast in channels_last: probabilities within 1e-2 of
    fp32 ONNX on the CPU, classes ≥ 99.9 % equal (passed on an H200, 2026-11-27)."""
    chips = np.random.default_rng(4).uniform(0.0, 0.6, (2, 5, 96, 80)).astype(np.float32)
    gpu = Segmenter(bundle, engine="torch", device="cuda")
    assert gpu.device == "cuda"
    p_gpu = gpu.predict_proba(chips)
    p_cpu = Segmenter(bundle, engine="onnx").predict_proba(chips)
    assert float(np.abs(p_gpu - p_cpu).max()) <= 1e-2
    assert float((p_gpu.argmax(1) == p_cpu.argmax(1)).mean()) >= 0.999


def test_cuda_requested_without_a_gpu_is_a_clear_error(bundle: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(InvalidInputError, match="no CUDA device"):
        Segmenter(bundle, engine="torch", device="cuda")
