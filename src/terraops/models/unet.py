"""A compact U-Net for semantic segmentation of multispectral imagery.

Architecture (Ronneberger, Fischer & Brox 2015, "U-Net: Convolutional Networks
for Biomedical Image Segmentation", MICCAI, LNCS 9351:234–241): an encoder of
``depth`` down-sampling stages (two 3×3 convolutions, then 2×2 max-pooling,
widths ``base, 2·base, 4·base, …``), a bottleneck, and a decoder that
up-samples, concatenates the encoder's feature map of the same scale (the skip
connection that brings back the detail pooling threw away) and convolves
again. Unlike the paper we pad the convolutions ("same" size) so the output is
as large as the input, and add BatchNorm after each convolution (Ioffe &
Szegedy 2015), which makes a small network train in a few CPU minutes.

Up-sampling is bilinear interpolation followed by the decoder's convolutions
(default; no checkerboard artefacts, Odena et al. 2016, Distill) or a learned
2×2 transposed convolution as in the paper.

``block="separable"`` (the segmentation service's default) swaps each 3×3
convolution after the first one for a depthwise-separable pair (a 3×3
convolution per channel, then a 1×1 across channels; Howard et al. 2017,
"MobileNets", arXiv:1704.04861): about ``1/c_out + 1/9`` of the multiply-adds,
the shape a CPU runs fastest. The first convolution of the network stays a full
3×3 (on 7 input channels it is cheap, and it mixes the bands with their spatial
context). Any input size works: odd sizes are pooled with floor and each
up-sampled map is resized (or padded) to its skip connection's size, so nothing
is cropped.

**Input normalisation lives inside the network** (:class:`InputNormalisation`):
the model takes surface reflectance (0–1) of the five bands red, green, blue,
NIR, SWIR in that order and itself computes

- each band standardised with fixed constants, ``(ρ − offset) / scale``
  (:data:`BAND_OFFSET`, :data:`BAND_SCALE`): round values near the mean and
  standard deviation of urban surface reflectance in Sentinel-2 L2A-like bands
  (and of the synthetic cities). Fixed, not fitted per training set, so the
  same reflectance means the same input for every model and city;
- optionally NDVI ``(nir − red)/(nir + red)`` (Tucker 1979) and NDWI
  ``(green − nir)/(green + nir)`` (McFeeters 1996), which separate vegetation
  and open water almost by themselves and leave the convolutions to learn
  the shapes that tell roofs from roads.

Because the normalisation is part of the graph, training, PyTorch inference
and the exported ONNX model cannot disagree about it; the bundle records the
constants (:meth:`UNetConfig.normalisation`) for readers of the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from terraops.domain.bands import REFLECTANCE_BANDS
from terraops.errors import InvalidInputError

Upsampling = Literal["bilinear", "transposed"]
Block = Literal["standard", "separable"]

BANDS: tuple[str, ...] = REFLECTANCE_BANDS
BAND_OFFSET: tuple[float, ...] = (0.10, 0.09, 0.075, 0.20, 0.20)
BAND_SCALE: tuple[float, ...] = (0.08, 0.07, 0.065, 0.12, 0.12)
INDEX_EPS = 1e-4
"""Added to index denominators: two near-zero reflectances (deep shadow, no data
filled with zeros) must not divide by zero."""


@dataclass(frozen=True)
class UNetConfig:
    """Architecture parameters; everything needed to rebuild the network from a bundle."""

    n_classes: int = 4
    depth: int = 3
    base_width: int = 16
    upsampling: Upsampling = "bilinear"
    indices: bool = True  # add NDVI and NDWI channels
    block: Block = "standard"  # "separable": depthwise-separable 3×3 convolutions

    def __post_init__(self) -> None:
        if not 1 <= self.depth <= 6:
            raise InvalidInputError(f"U-Net depth must be 1–6, got {self.depth}")
        if not 1 <= self.base_width <= 256:
            raise InvalidInputError(f"U-Net base width must be 1–256, got {self.base_width}")
        if self.upsampling not in ("bilinear", "transposed"):
            raise InvalidInputError(
                f"unknown upsampling {self.upsampling!r}", hint="use bilinear or transposed"
            )
        if self.block not in ("standard", "separable"):
            raise InvalidInputError(
                f"unknown block {self.block!r}", hint="use standard or separable"
            )
        if self.n_classes < 2:
            raise InvalidInputError(f"n_classes must be at least 2, got {self.n_classes}")

    @property
    def in_bands(self) -> int:
        return len(BANDS)

    @property
    def network_channels(self) -> int:
        """Channels after normalisation: the bands, plus NDVI and NDWI when enabled."""
        return self.in_bands + (2 if self.indices else 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UNetConfig:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def normalisation(self) -> dict[str, Any]:
        """What the network does to its input, for the bundle's metadata."""
        return {
            "input": "surface reflectance 0–1, float32, bands in this order",
            "bands": list(BANDS),
            "offset": list(BAND_OFFSET),
            "scale": list(BAND_SCALE),
            "formula": "(reflectance - offset) / scale, per band",
            "indices": ["ndvi", "ndwi"] if self.indices else [],
            "index_formulas": {
                "ndvi": "(nir - red) / (nir + red + eps)",
                "ndwi": "(green - nir) / (green + nir + eps)",
            }
            if self.indices
            else {},
            "eps": INDEX_EPS,
            "nodata_fill": "missing pixels are filled with the band offset (0 after scaling)",
        }


class InputNormalisation(nn.Module):
    """Reflectance (N, 5, H, W) → standardised bands (+ NDVI, NDWI) (N, 5 or 7, H, W)."""

    offset: torch.Tensor
    scale: torch.Tensor

    def __init__(self, indices: bool) -> None:
        super().__init__()
        self.indices = indices
        self.register_buffer("offset", torch.tensor(BAND_OFFSET).view(1, -1, 1, 1))
        self.register_buffer("scale", torch.tensor(BAND_SCALE).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bands = (x - self.offset) / self.scale
        if not self.indices:
            return bands
        red, green, nir = x[:, 0:1], x[:, 1:2], x[:, 3:4]
        ndvi = (nir - red) / (nir + red + INDEX_EPS)
        ndwi = (green - nir) / (green + nir + INDEX_EPS)
        return torch.cat([bands, ndvi, ndwi], dim=1)


def conv3x3(c_in: int, c_out: int, separable: bool) -> list[nn.Module]:
    """A 3×3 convolution without bias (BatchNorm follows), full or depthwise-separable."""
    if not separable:
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)]
    return [
        nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False),
        nn.Conv2d(c_in, c_out, 1, bias=False),
    ]


class ConvBlock(nn.Sequential):
    """(3×3 convolution → BatchNorm → ReLU) × 2; the convolutions need no bias before BN.

    ``separable``: both 3×3 convolutions depthwise-separable, except ``first`` keeps
    its first one full (the network's input layer, see the module docstring).
    """

    def __init__(self, c_in: int, c_out: int, separable: bool = False, first: bool = False) -> None:
        super().__init__(
            *conv3x3(c_in, c_out, separable and not first),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            *conv3x3(c_out, c_out, separable),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class UpBlock(nn.Module):
    """Up-sample ×2 to the skip's size, concatenate the skip, convolve."""

    def __init__(
        self, c_in: int, c_skip: int, c_out: int, mode: Upsampling, separable: bool = False
    ) -> None:
        super().__init__()
        self.mode = mode
        self.up: nn.Module
        if mode == "transposed":
            self.up = nn.ConvTranspose2d(c_in, c_in // 2, 2, stride=2)
            c_up = c_in // 2
        else:
            self.up = nn.Identity()
            c_up = c_in
        self.conv = ConvBlock(c_up + c_skip, c_out, separable)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if self.mode == "transposed":
            x = self.up(x)
            # An odd skip size (floor pooling) leaves the ×2 map one pixel short.
            dh = skip.shape[-2] - x.shape[-2]
            dw = skip.shape[-1] - x.shape[-1]
            x = F.pad(x, [0, dw, 0, dh], mode="replicate")
        else:
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    """Reflectance (N, 5, H, W) → class logits (N, n_classes, H, W); H, W ≥ 2**depth, any parity."""

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or UNetConfig()
        cfg = self.config
        widths = [cfg.base_width * 2**i for i in range(cfg.depth + 1)]
        self.normalise = InputNormalisation(cfg.indices)
        self.encoders = nn.ModuleList()
        sep = cfg.block == "separable"
        c_in = cfg.network_channels
        for i, width in enumerate(widths[:-1]):
            self.encoders.append(ConvBlock(c_in, width, sep, first=i == 0))
            c_in = width
        self.bottleneck = ConvBlock(widths[-2], widths[-1], sep)
        self.decoders = nn.ModuleList(
            UpBlock(widths[i + 1], widths[i], widths[i], cfg.upsampling, sep)
            for i in reversed(range(cfg.depth))
        )
        self.head = nn.Conv2d(widths[0], cfg.n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalise(x)
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = F.max_pool2d(x, 2, ceil_mode=False)
        x = self.bottleneck(x)
        for decoder, skip in zip(self.decoders, reversed(skips), strict=True):
            x = decoder(x, skip)
        logits: torch.Tensor = self.head(x)
        return logits


class Probabilities(nn.Module):
    """``softmax(model(x))`` over classes: what inference and the ONNX graph return."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        if torch.onnx.is_in_onnx_export():
            # The same softmax written out for the graph: ONNX Runtime's Softmax on the
            # channel axis (not the last one) transposes around its kernel and costs
            # about 5× Exp / ReduceSum / Div on that axis — a fifth of an INT8 U-Net's
            # time (bench/segmentation_cpu.py, per operator).
            shifted = torch.exp(logits - logits.amax(dim=1, keepdim=True))
            return shifted / shifted.sum(dim=1, keepdim=True)
        return torch.softmax(logits, dim=1)


def build_unet(params: dict[str, Any] | None = None) -> UNet:
    """The model factory of the segmentation service: a U-Net from architecture params."""
    return UNet(UNetConfig.from_dict(dict(params or {})))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
