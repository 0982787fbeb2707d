"""Tabular and 2-D flows (docs/architectures.md §Tabular and 2-D flows): S x [linear layer, flow step] + a final linear layer."""

from dataclasses import dataclass
from functools import partial

from torch import nn

from ..nets import MADE, ResidualNet
from ..splines import DEFAULT_SETTINGS, SplineSettings
from ..transforms.autoregressive import AutoregressiveTransform
from ..transforms.base import CompositeTransform
from ..transforms.coupling import CouplingTransform, alternating_mask, hidden_scale
from ..transforms.elementwise import elementwise_family
from ..transforms.linear import LULinear, RandomPermutation
from .choices import choose
from .distributions import StandardNormal
from .flow import Flow


@dataclass(frozen=True)
class Steps:
    """What every flow step of one tabular flow shares."""

    features: int
    elementwise: object
    hidden_features: int
    net: dict  # num_blocks, dropout, use_batch_norm, context_features of each conditioner
    unconditional: bool  # couplings also map their identity features (with free parameters)
    unconditional_init: str


def coupling_step(steps: Steps, index: int):
    """A coupling with alternating masks and a ResidualNet conditioner (1/sqrt(hidden) on the bin-size logits)."""
    return CouplingTransform(
        alternating_mask(steps.features, even=index % 2 == 0),
        partial(ResidualNet, hidden_features=steps.hidden_features, **steps.net),
        steps.elementwise,
        size_logit_scale=hidden_scale(steps.hidden_features),
        unconditional_identity=steps.unconditional,
        unconditional_init=steps.unconditional_init,
    )


def autoregressive_step(steps: Steps, index: int):
    """A masked autoregressive transform with a residual MADE conditioner."""
    made = MADE(steps.features, steps.hidden_features, steps.elementwise.num_params, **steps.net)
    return AutoregressiveTransform(made, steps.elementwise)


# arch -> step(steps, index): how flow step `index` is built.
ARCHITECTURES = {"coupling": coupling_step, "autoregressive": autoregressive_step}

# linear -> layers(features): what stands before every flow step and after the last.
LINEAR_LAYERS = {
    "lu": lambda features: [RandomPermutation(features), LULinear(features)],
    "permutation": lambda features: [RandomPermutation(features)],
    "none": lambda features: [],
}


def build_tabular_flow(
    features: int,
    family: str = "lrs",
    arch: str = "coupling",
    num_flow_steps: int = 10,
    hidden_features: int = 256,
    num_blocks: int = 2,
    spline: SplineSettings = DEFAULT_SETTINGS,
    dropout: float = 0.0,
    use_batch_norm: bool = False,
    unconditional_transform: bool = True,
    unconditional_init: str = "original",
    linear: str = "lu",
    context_features: int = 0,
    embedding: nn.Module | None = None,
) -> Flow:
    """The NSF/LRS UCI model for `features`-dimensional vectors with an N(0, I) base.

    family: a name of transforms.elementwise.elementwise_families() (the spline families, affine); arch and linear:
    a key of ARCHITECTURES and LINEAR_LAYERS. linear='none' with unconditional_transform=False gives the 2-D plane
    model of the original (couplings only). The couplings' unconditional map exists for the spline families only;
    unconditional_init: original (each family's original code: U[0,1) for lrs/rq, N(0,1) for the quadratic
    families) | uniform | normal, its initial parameters.

    context_features > 0 makes the flow conditional, p(x | c), as NSF's and zuko's: every conditioner (ResidualNet
    or MADE) also reads the context. `embedding` (nflows' embedding_net) maps the raw context first and trains with
    the flow; context_features is then its output width.

    >>> flow = build_tabular_flow(4, num_flow_steps=2, hidden_features=16)
    >>> flow.sample(3).shape
    torch.Size([3, 4])
    >>> import torch
    >>> flow = build_tabular_flow(2, num_flow_steps=2, hidden_features=16, context_features=3,
    ...                           embedding=torch.nn.Linear(10, 3))
    >>> flow.log_prob(torch.randn(8, 2), context=torch.randn(8, 10)).shape
    torch.Size([8])
    """
    step = choose(ARCHITECTURES, arch, "arch")
    linear_layers = choose(LINEAR_LAYERS, linear, "linear layer")
    if features < 2:
        raise ValueError(f"a flow needs at least 2 features to couple or condition, got {features}.")
    if embedding is not None and not context_features:
        raise ValueError("an embedding net needs context_features, its output width, to be set.")
    entry = elementwise_family(family)
    steps = Steps(
        features,
        entry.build(spline),
        hidden_features,
        dict(num_blocks=num_blocks, dropout=dropout, use_batch_norm=use_batch_norm, context_features=context_features),
        unconditional_transform and entry.unconditional,
        unconditional_init,
    )
    layers = []
    for index in range(num_flow_steps):
        layers += linear_layers(features)
        layers.append(step(steps, index))
    layers += linear_layers(features)
    return Flow(CompositeTransform(layers), StandardNormal([features]), context_features, embedding)
