"""Glow-style image flows of the NSF/LRS image experiments (docs/architectures.md §Image flows; docs/protocol.md §Hyper-parameters: images).

The flow takes dequantised pixels in [0, 2^num_bits) and includes the preprocessing, so
log_prob is the density in pixel units and bits/dim = -log_prob / (ln 2 * C * H * W).
"""

from ..nets.residual import ConvResidualNet
from ..splines import SplineSettings
from ..transforms.base import CompositeTransform
from ..transforms.coupling import CouplingTransform, hidden_scale, mid_split_mask
from ..transforms.elementwise import elementwise_map
from ..transforms.linear import OneByOneConvolution
from ..transforms.normalization import ActNorm
from ..transforms.pointwise import AffineScalar, Logit
from ..transforms.reshape import Flatten, MultiscaleComposite, Squeeze
from .choices import choose
from .distributions import StandardNormal
from .flow import Flow


def _glow(num_bits: int, alpha: float):
    """x / 2^n - 0.5 (alpha unused)."""
    return AffineScalar(scale=1.0 / 2.0**num_bits, shift=-0.5)


def _realnvp(alphas: float):
    """logit(alpha + (1 - alphas * alpha) x / 2^n): RealNVP squashes pixels into [alpha, 1 - (alphas - 1) alpha]."""

    def preprocessing(num_bits: int, alpha: float):
        squash = 1.0 - alphas * alpha
        return CompositeTransform([AffineScalar(scale=squash / 2.0**num_bits, shift=alpha), Logit()])

    return preprocessing


# An image flow's splines unless told otherwise: 4 bins (the NSF CIFAR-10 setting), otherwise the defaults.
IMAGE_SPLINE = SplineSettings(num_bins=4)

# preprocessing -> transform(num_bits, alpha) mapping pixels in [0, 2^n) to the flow's working range.
PREPROCESSINGS = {"glow": _glow, "realnvp": _realnvp(1.0), "realnvp_2alpha": _realnvp(2.0)}


def preprocessing_transform(preprocessing: str, num_bits: int, alpha: float):
    """The preprocessing as a transform, so its log-det enters the density."""
    return choose(PREPROCESSINGS, preprocessing, "preprocessing")(num_bits, alpha)


def _check_shape(shape, num_levels):
    if num_levels < 1:
        raise ValueError(f"an image flow needs at least one level, got num_levels={num_levels}.")
    if len(shape) != 3 or any(size % 2**num_levels for size in shape[1:]):
        raise ValueError(
            f"image shape must be (C, H, W) with H and W divisible by 2**num_levels = {2**num_levels} "
            f"(one 2x2 squeeze per level), got {tuple(shape)}."
        )


def build_image_flow(
    shape=(3, 32, 32),
    family="lrs",
    num_levels=3,
    steps_per_level=7,
    hidden_channels=96,
    num_blocks=3,
    spline=IMAGE_SPLINE,
    dropout=0.2,
    use_batch_norm=True,
    multi_scale=False,
    num_bits=8,
    preprocessing="glow",
    alpha=0.05,
    actnorm=True,
) -> Flow:
    """Preprocessing, then per level: Squeeze, steps x [ActNorm, 1x1 conv, coupling], 1x1 conv; split or flatten.

    `family` is the coupling's element-wise map (a name of transforms.elementwise.elementwise_families()), the
    preprocessing a key of PREPROCESSINGS; the couplings have no unconditional map here. Spline couplings divide
    their bin-size logits by sqrt(hidden_channels), as the original does for conv conditioners (nflows reads
    `hidden_channels` when `hidden_features` is absent).

    >>> import torch
    >>> from lrsflows.flows import build_image_flow
    >>> flow = build_image_flow((1, 8, 8), "lrs", num_levels=2, steps_per_level=1, hidden_channels=8, num_blocks=1)
    >>> pixels = torch.rand(2, 1, 8, 8) * 256  # dequantised 8-bit pixels in [0, 256)
    >>> bits_per_dim = -flow.eval().log_prob(pixels) / (64 * torch.log(torch.tensor(2.0)))
    >>> bits_per_dim.shape, tuple(flow.sample(3).shape)
    (torch.Size([2]), (3, 1, 8, 8))
    """
    _check_shape(shape, num_levels)
    preprocess = preprocessing_transform(preprocessing, num_bits, alpha)
    elementwise = elementwise_map(family, spline)

    def make_conditioner(in_channels, out_channels):
        return ConvResidualNet(
            in_channels,
            out_channels,
            hidden_channels,
            num_blocks=num_blocks,
            dropout=dropout,
            use_batch_norm=use_batch_norm,
        )

    def flow_step(channels):
        coupling = CouplingTransform(
            mid_split_mask(channels),
            make_conditioner,
            elementwise,
            size_logit_scale=hidden_scale(hidden_channels),
            unconditional_identity=False,  # the original image configs leave it off
        )
        normalisation = [ActNorm(channels)] if actnorm else []
        return CompositeTransform(normalisation + [OneByOneConvolution(channels), coupling])

    channels, height, width = shape
    levels, level_output_shapes = [], []
    for level in range(num_levels):
        if multi_scale and level > 0:
            channels //= 2  # the first half was factored out after the previous level
        channels, height, width = 4 * channels, height // 2, width // 2
        steps = [flow_step(channels) for _ in range(steps_per_level)]
        levels.append(CompositeTransform([Squeeze()] + steps + [OneByOneConvolution(channels)]))
        level_output_shapes.append((channels, height, width))

    if multi_scale:
        body = MultiscaleComposite(levels, level_output_shapes)
    else:
        body = CompositeTransform(levels + [Flatten(level_output_shapes[-1])])
    dimension = shape[0] * shape[1] * shape[2]
    return Flow(CompositeTransform([preprocess, body]), StandardNormal((dimension,)))
