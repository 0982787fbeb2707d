"""Glow-style image flows of the NSF/LRS image experiments (docs/architectures.md §Image flows; docs/protocol.md §Hyper-parameters: images).

The flow takes dequantised pixels in [0, 2^num_bits) and includes the preprocessing, so
log_prob is the density in pixel units and bits/dim = -log_prob / (ln 2 * C * H * W).
"""

from ..nets.residual import ConvResidualNet
from ..transforms.base import CompositeTransform
from ..transforms.coupling import CouplingTransform, hidden_scale, mid_split_mask
from ..transforms.elementwise import elementwise_map
from ..transforms.linear import OneByOneConvolution
from ..transforms.normalization import ActNorm
from ..transforms.reshape import AffineScalar, Flatten, Logit, MultiscaleComposite, Squeeze
from .distributions import StandardNormal
from .flow import Flow

PREPROCESSING_CHOICES = ("glow", "realnvp", "realnvp_2alpha")


def preprocessing_transform(preprocessing: str, num_bits: int, alpha: float):
    """Maps pixels in [0, 2^n) to the working range, as a transform so its log-det enters the density.

    'glow': x / 2^n - 0.5; 'realnvp': logit(alpha + (1 - alpha) x / 2^n); 'realnvp_2alpha': 1 - 2 alpha.
    """
    bins = 2.0**num_bits
    if preprocessing == "glow":
        return AffineScalar(scale=1.0 / bins, shift=-0.5)
    squash = {"realnvp": 1.0 - alpha, "realnvp_2alpha": 1.0 - 2.0 * alpha}.get(preprocessing)
    if squash is None:
        raise ValueError(f"unknown preprocessing {preprocessing!r}; choose one of {PREPROCESSING_CHOICES}.")
    return CompositeTransform([AffineScalar(scale=squash / bins, shift=alpha), Logit()])


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
    num_bins=4,
    dropout=0.2,
    use_batch_norm=True,
    multi_scale=False,
    num_bits=8,
    preprocessing="glow",
    tail_bound=3.0,
    actnorm=True,
    min_bin_width=1e-3,
    min_bin_height=1e-3,
    min_derivative=1e-3,
    alpha=0.05,
) -> Flow:
    """Preprocessing, then per level: Squeeze, steps x [ActNorm, 1x1 conv, coupling], 1x1 conv; split or flatten.

    `family` is the coupling's element-wise map ('lrs', 'rq', 'quadratic' (NSF's Q-NSF), 'quadratic_c1'
    (its boundary made C1) or 'affine'); the couplings have no unconditional map here. Spline
    couplings use linear tails and divide their bin-size logits by sqrt(hidden_channels), as the
    original does for conv conditioners (nflows reads `hidden_channels` when `hidden_features` is absent).
    """
    _check_shape(shape, num_levels)
    preprocess = preprocessing_transform(preprocessing, num_bits, alpha)
    elementwise = elementwise_map(
        family,
        num_bins=num_bins,
        tails="linear",
        tail_bound=tail_bound,
        min_bin_width=min_bin_width,
        min_bin_height=min_bin_height,
        min_derivative=min_derivative,
    )
    size_logit_scale = 1.0 if family == "affine" else hidden_scale(hidden_channels)

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
            size_logit_scale=size_logit_scale,
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
