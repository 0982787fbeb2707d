"""Tabular and 2-D flows (docs/architectures.md §Tabular and 2-D flows): S x [permutation + LU, spline step] + a final linear layer."""

from functools import partial

from ..nets import MADE, ResidualNet
from ..transforms.autoregressive import AutoregressiveTransform
from ..transforms.base import CompositeTransform
from ..transforms.coupling import CouplingTransform, alternating_mask, hidden_scale
from ..transforms.elementwise import elementwise_map
from ..transforms.linear import LULinear, RandomPermutation
from .distributions import StandardNormal
from .flow import Flow

ARCH_CHOICES = ("coupling", "autoregressive")
LINEAR_CHOICES = ("lu", "permutation", "none")


def _linear_layer(features, linear):
    if linear == "lu":
        return [RandomPermutation(features), LULinear(features)]
    if linear == "permutation":
        return [RandomPermutation(features)]
    return []


def build_tabular_flow(
    features: int,
    family: str = "lrs",
    arch: str = "coupling",
    num_flow_steps: int = 10,
    hidden_features: int = 256,
    num_blocks: int = 2,
    num_bins: int = 8,
    tail_bound: float = 3.0,
    dropout: float = 0.0,
    use_batch_norm: bool = False,
    unconditional_transform: bool = True,
    unconditional_init: str = "original",
    linear: str = "lu",
    tails="linear",
    min_bin_width: float = 1e-3,
    min_bin_height: float = 1e-3,
    min_derivative: float = 1e-3,
) -> Flow:
    """The NSF/LRS UCI model for `features`-dimensional vectors with an N(0, I) base.

    family: lrs | rq | quadratic (NSF's Q-NSF) | quadratic_c1 (its boundary made C1) | affine; arch:
    coupling (alternating masks, ResidualNet) or autoregressive (residual MADE). linear='none' with
    unconditional_transform=False gives the 2-D plane model of the original (couplings only).
    unconditional_init: original (each family's original code: U[0,1) for lrs/rq, N(0,1) for the
    quadratic families) | uniform | normal, the initial parameters of the couplings' unconditional map.
    """
    if arch not in ARCH_CHOICES:
        raise ValueError(f"unknown arch {arch!r}; choose one of {ARCH_CHOICES}.")
    if linear not in LINEAR_CHOICES:
        raise ValueError(f"unknown linear layer {linear!r}; choose one of {LINEAR_CHOICES}.")
    if features < 2:
        raise ValueError(f"a flow needs at least 2 features to couple or condition, got {features}.")
    elementwise = elementwise_map(
        family,
        num_bins=num_bins,
        tails=tails,
        tail_bound=tail_bound,
        min_bin_width=min_bin_width,
        min_bin_height=min_bin_height,
        min_derivative=min_derivative,
    )
    net = dict(num_blocks=num_blocks, dropout=dropout, use_batch_norm=use_batch_norm)
    layers = []
    for step in range(num_flow_steps):
        layers += _linear_layer(features, linear)
        if arch == "coupling":
            layers.append(
                CouplingTransform(
                    alternating_mask(features, even=step % 2 == 0),
                    partial(ResidualNet, hidden_features=hidden_features, **net),
                    elementwise,
                    size_logit_scale=hidden_scale(hidden_features),
                    unconditional_identity=unconditional_transform and family != "affine",
                    unconditional_init=unconditional_init,
                )
            )
        else:
            layers.append(
                AutoregressiveTransform(MADE(features, hidden_features, elementwise.num_params, **net), elementwise)
            )
    layers += _linear_layer(features, linear)
    return Flow(CompositeTransform(layers), StandardNormal([features]))
