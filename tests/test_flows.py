"""Builders and Flow: exact inverses, densities that agree with samples and integrate to 1, parameter counts."""

import math
import re

import pytest
import torch
from conftest import jacobian_logabsdet, perturb_

from lrsflows.flows import BoxUniform, Flow, build_image_flow, build_tabular_flow
from lrsflows.flows.image import PREPROCESSINGS
from lrsflows.flows.tabular import ARCHITECTURES, LINEAR_LAYERS
from lrsflows.nets import ResidualNet
from lrsflows.splines import FAMILIES, SplineSettings, num_params
from lrsflows.transforms.coupling import CouplingTransform, alternating_mask
from lrsflows.transforms.elementwise import elementwise_families, elementwise_map

ARCHES = list(ARCHITECTURES)
ELEMENTWISE = list(elementwise_families())


def bins(count):
    return SplineSettings(num_bins=count)


def small_tabular(family, arch, features=4):
    flow = build_tabular_flow(features, family, arch, num_flow_steps=3, hidden_features=16, spline=bins(5), dropout=0.1)
    return perturb_(flow.double(), scale=0.2).eval()


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("family", ELEMENTWISE)
def test_tabular_flow_is_exactly_invertible_with_autograd_logdet(family, arch):
    flow = small_tabular(family, arch)
    inputs = 2.0 * torch.randn(32, 4, dtype=torch.float64)
    noise, logabsdet = flow.transform(inputs)
    restored, inverse_logabsdet = flow.transform.inverse(noise)
    # Looser than the splines' 1e-9: three perturbed steps compose, and where an RQ bin is nearly flat its
    # inverse's discriminant is near 0, so the root carries sqrt(eps) ~ 1e-8 relative error (measured 1e-7).
    assert (restored - inputs).abs().max() <= 1e-6
    assert (logabsdet + inverse_logabsdet).abs().max() <= 1e-6
    assert torch.allclose(logabsdet[:3], jacobian_logabsdet(flow.transform, inputs[:3]), atol=1e-8)


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("family", ELEMENTWISE)
def test_log_prob_of_samples_matches_sample_and_log_prob(family, arch):
    flow = small_tabular(family, arch)
    samples, log_density = flow.sample_and_log_prob(200, temperature=0.8)
    assert torch.allclose(flow.log_prob(samples), log_density, atol=1e-9)
    assert flow.sample(7).shape == (7, 4)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_two_dimensional_density_integrates_to_one(family):
    flow = build_tabular_flow(
        2, family, "coupling", num_flow_steps=4, hidden_features=32, spline=bins(8), linear="none"
    )
    flow = perturb_(flow.double(), scale=0.05).eval()  # larger moves make spikes finer than the grid
    side = torch.linspace(-9, 9, 601, dtype=torch.float64)
    grid = torch.cartesian_prod(side, side)
    with torch.no_grad():
        density = flow.log_prob(grid).exp()
    integral = density.sum() * (side[1] - side[0]) ** 2
    assert abs(integral.item() - 1.0) < 0.01
    standard_normal = torch.exp(-0.5 * grid.pow(2).sum(1)) / (2 * math.pi)
    assert (density - standard_normal).abs().max() > 0.01  # the check is not trivially about N(0, I)


def unconditional_params(flow):
    """The free parameters of every coupling's unconditional map, concatenated."""
    modules = [module for module in flow.modules() if getattr(module, "identity_params", None) is not None]
    return torch.cat([module.identity_params.flatten() for module in modules])


@pytest.mark.parametrize(
    "family, init, expected",
    [
        ("lrs", "original", "uniform"),
        ("rq", "original", "uniform"),
        ("quadratic", "original", "normal"),
        ("quadratic_c1", "original", "normal"),
        ("lrs", "normal", "normal"),
        ("quadratic", "uniform", "uniform"),
    ],
)
def test_unconditional_map_initialisation(family, init, expected):
    """'original' is each family's original code: torch.rand (U[0,1)) in the LRS code and NSF's
    rational-quadratic CDF, torch.randn (N(0,1)) in NSF's PiecewiseQuadraticCDF; 'uniform' and 'normal'
    override it. 6 steps x 5 identity features x 15 or 31 parameters: 450-930 draws."""
    torch.manual_seed(0)
    flow = build_tabular_flow(
        10, family, "coupling", num_flow_steps=6, hidden_features=8, spline=bins(8), unconditional_init=init
    )
    values = unconditional_params(flow)
    assert values.numel() == 6 * 5 * num_params(family, bins(8))
    if expected == "uniform":
        assert values.min() >= 0 and values.max() < 1
        assert abs(values.mean().item() - 0.5) < 0.05 and abs(values.std().item() - math.sqrt(1 / 12)) < 0.03
    else:
        assert (values < 0).float().mean() > 0.4 and values.min() < -2
        assert abs(values.mean().item()) < 0.1 and abs(values.std().item() - 1.0) < 0.1


def test_unconditional_init_is_refused_when_unknown():
    with pytest.raises(ValueError, match="choose one of"):
        build_tabular_flow(4, "lrs", "coupling", num_flow_steps=1, hidden_features=8, unconditional_init="randn")


def test_uniform_base_flow_on_the_box():
    """The face set-up: a spline on its box with no tails and a uniform base on the same box."""
    transform = CouplingTransform(
        alternating_mask(2),
        lambda i, o: ResidualNet(i, o, hidden_features=8),
        elementwise_map("lrs", SplineSettings(num_bins=8, tails=None, tail_bound=1.0)),
    )
    flow = perturb_(Flow(transform, BoxUniform([2], low=-1.0, high=1.0)).double())
    samples, log_density = flow.sample_and_log_prob(500)
    assert samples.abs().max() <= 1.0
    assert torch.allclose(flow.log_prob(samples), log_density, atol=1e-9)
    side = torch.linspace(-1, 1, 401, dtype=torch.float64)[:-1] + 1 / 400
    with torch.no_grad():
        integral = flow.log_prob(torch.cartesian_prod(side, side)).exp().sum() * (2 / 400) ** 2
    assert abs(integral.item() - 1.0) < 0.01


def tabular_parameter_count(features, family, arch, steps, hidden, blocks, bins):
    """Closed form of docs/architectures.md §Tabular and 2-D flows: (S + 1) LU layers (D^2 + D each) and S conditioners."""
    per_element = elementwise_map(family, SplineSettings(num_bins=bins)).num_params
    lu = features * features + features
    residual_blocks = blocks * 2 * (hidden * hidden + hidden)
    total = (steps + 1) * lu
    for step in range(steps):
        if arch == "autoregressive":
            total += (
                features * hidden + hidden + residual_blocks + hidden * features * per_element + features * per_element
            )
            continue
        transformed = (features + 1) // 2 if step % 2 == 0 else features // 2
        identity = features - transformed
        total += identity * hidden + hidden + residual_blocks + (hidden + 1) * transformed * per_element
        total += identity * per_element if elementwise_families()[family].unconditional else 0
    return total


# No published parameter counts exist to compare with; these figures follow from the architecture of
# docs/architectures.md §Tabular and 2-D flows with the paper's settings (docs/protocol.md) and are asserted both
# as the closed form and as literals, so a change to either shows up here.
TABULAR_SETTINGS = {
    "power": dict(features=6, steps=10, hidden=256, blocks=2, bins=8),
    "miniboone": dict(features=43, steps=10, hidden=32, blocks=1, bins=4),
}
TABULAR_COUNTS = {
    ("power", "rq", "coupling"): 2_820_402,
    ("power", "rq", "autoregressive"): 3_004_722,
    ("power", "lrs", "coupling"): 2_882_322,
    ("power", "lrs", "autoregressive"): 3_128_082,
    ("miniboone", "rq", "coupling"): 129_542,
    ("miniboone", "rq", "autoregressive"): 212_102,
    ("miniboone", "lrs", "coupling"): 158_782,
    ("miniboone", "lrs", "autoregressive"): 268_862,
}


@pytest.mark.parametrize("dataset, family, arch", sorted(TABULAR_COUNTS))
def test_tabular_parameter_counts(dataset, family, arch):
    settings = TABULAR_SETTINGS[dataset]
    flow = build_tabular_flow(
        settings["features"],
        family,
        arch,
        num_flow_steps=settings["steps"],
        hidden_features=settings["hidden"],
        num_blocks=settings["blocks"],
        spline=bins(settings["bins"]),
    )
    count = sum(parameter.numel() for parameter in flow.parameters())
    assert count == tabular_parameter_count(family=family, arch=arch, **settings)
    assert count == TABULAR_COUNTS[(dataset, family, arch)]


def image_parameter_count(shape, family, levels, steps, hidden, blocks, bins, multi_scale=False):
    """Closed form of docs/architectures.md §Image flows (batch norm in the conditioners, no unconditional map)."""
    per_element = elementwise_map(family, SplineSettings(num_bins=bins)).num_params
    channels, total = shape[0], 0
    for level in range(levels):
        if multi_scale and level > 0:
            channels //= 2  # half of the previous level's output was factored out
        channels *= 4
        transformed, identity = (channels + 1) // 2, channels // 2
        conditioner = identity * hidden + hidden + (hidden + 1) * transformed * per_element
        conditioner += blocks * 2 * (9 * hidden * hidden + hidden + 2 * hidden)
        total += steps * (2 * channels + channels * channels + channels + conditioner) + channels * channels + channels
    return total


CIFAR10_COUNTS = {"rq": 11_835_054, "lrs": 12_177_270, "affine": 11_065_068}  # RQ: NSF paper quotes 11.8M


def image_flow_count(shape, family, levels, steps, hidden, blocks, bins, multi_scale=False) -> int:
    """Parameters of build_image_flow with these settings, which image_parameter_count derives independently."""
    flow = build_image_flow(
        shape,
        family,
        num_levels=levels,
        steps_per_level=steps,
        hidden_channels=hidden,
        num_blocks=blocks,
        spline=SplineSettings(num_bins=bins),
        multi_scale=multi_scale,
    )
    return sum(parameter.numel() for parameter in flow.parameters())


@pytest.mark.parametrize("family", sorted(CIFAR10_COUNTS))
def test_cifar10_parameter_counts(family):
    """The CIFAR-10 8-bit configuration of docs/protocol.md §Hyper-parameters: images (3 levels x 7 steps, 96 channels, 3 blocks, 4 bins)."""
    settings = dict(levels=3, steps=7, hidden=96, blocks=3, bins=4)
    count = image_flow_count((3, 32, 32), family, **settings)
    assert count == image_parameter_count((3, 32, 32), family, **settings)
    assert count == CIFAR10_COUNTS[family]


IMAGENET64_COUNTS = {"rq": 15_553_554, "lrs": 16_042_434, "affine": 14_270_244}  # RQ: NSF paper quotes 15.6M


@pytest.mark.parametrize("family", sorted(IMAGENET64_COUNTS))
def test_imagenet64_parameter_counts(family):
    """The ImageNet64 8-bit configuration of docs/protocol.md §Hyper-parameters: images (4 multi-scale levels x 7 steps, 96 channels, 8 bins)."""
    settings = dict(levels=4, steps=7, hidden=96, blocks=3, bins=8, multi_scale=True)
    count = image_flow_count((3, 64, 64), family, **settings)
    assert count == image_parameter_count((3, 64, 64), family, **settings)
    assert count == IMAGENET64_COUNTS[family]


def test_builder_errors_name_the_choices():
    for registry, options in [
        (elementwise_families(), dict(family="lsr")),
        (ARCHITECTURES, dict(arch="foo")),
        (LINEAR_LAYERS, dict(linear="foo")),
    ]:
        with pytest.raises(ValueError, match=re.escape(f"choose one of {list(registry)}.")):
            build_tabular_flow(4, **options)
    with pytest.raises(ValueError, match=re.escape(f"choose one of {list(PREPROCESSINGS)}.")):
        build_image_flow(preprocessing="foo")
    with pytest.raises(ValueError, match="divisible"):
        build_image_flow((3, 30, 30), num_levels=2)
