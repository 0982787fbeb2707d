"""Every tabular transform: exact inverse, log-det against autograd, and the structure the original uses."""

from functools import partial

import pytest
import torch
from conftest import jacobian_logabsdet, perturb_

from lrsflows.nets import MADE, ResidualNet
from lrsflows.splines import SplineSettings
from lrsflows.transforms.autoregressive import AutoregressiveTransform
from lrsflows.transforms.base import CompositeTransform, InverseTransform
from lrsflows.transforms.coupling import CouplingTransform, alternating_mask, hidden_scale, mid_split_mask
from lrsflows.transforms.elementwise import elementwise_families, elementwise_map
from lrsflows.transforms.linear import LULinear, OneByOneConvolution, RandomPermutation

FEATURES = 5
SPLINE = SplineSettings(num_bins=6, tail_bound=2.0)
FAMILIES = elementwise_families()


def coupling(family, unconditional=True, even=True):
    return CouplingTransform(
        alternating_mask(FEATURES, even),
        partial(ResidualNet, hidden_features=16, num_blocks=2),
        elementwise_map(family, SPLINE),
        size_logit_scale=hidden_scale(16),
        unconditional_identity=unconditional and FAMILIES[family].unconditional,
    )


def autoregressive(family):
    elementwise = elementwise_map(family, SPLINE)
    return AutoregressiveTransform(MADE(FEATURES, 16, elementwise.num_params, num_blocks=2), elementwise)


TRANSFORMS = {
    **{f"coupling-{family}": partial(coupling, family) for family in FAMILIES},
    "coupling-lrs-odd-mask": partial(coupling, "lrs", even=False),
    "coupling-rq-no-unconditional": partial(coupling, "rq", unconditional=False),
    **{f"autoregressive-{family}": partial(autoregressive, family) for family in FAMILIES},
    "permutation": lambda: RandomPermutation(FEATURES),
    "lu": lambda: LULinear(FEATURES),
    "composite": lambda: CompositeTransform([RandomPermutation(FEATURES), LULinear(FEATURES), coupling("lrs")]),
    "inverse-of-autoregressive": lambda: InverseTransform(autoregressive("lrs")),
}


@pytest.fixture(params=sorted(TRANSFORMS))
def transform(request):
    return perturb_(TRANSFORMS[request.param]().double())


def test_inverse_undoes_forward_and_logdets_cancel(transform):
    inputs = 1.5 * torch.randn(64, FEATURES, dtype=torch.float64)
    outputs, logabsdet = transform(inputs)
    restored, inverse_logabsdet = transform.inverse(outputs)
    assert (restored - inputs).abs().max() <= 1e-9
    assert (logabsdet + inverse_logabsdet).abs().max() <= 1e-9


def test_logabsdet_matches_autograd_jacobian(transform):
    inputs = 1.5 * torch.randn(4, FEATURES, dtype=torch.float64)
    _, logabsdet = transform(inputs)
    assert torch.allclose(logabsdet, jacobian_logabsdet(transform, inputs), atol=1e-8)
    _, inverse_logabsdet = transform.inverse(inputs)
    assert torch.allclose(inverse_logabsdet, jacobian_logabsdet(transform.inverse, inputs), atol=1e-8)


def test_made_is_autoregressive():
    """Output block i (num_params entries) depends only on inputs < i: its Jacobian is strictly block-lower."""
    made = perturb_(MADE(FEATURES, 32, multiplier=3, num_blocks=2).double())
    jacobian = torch.autograd.functional.jacobian(
        lambda x: made(x.unsqueeze(0)).squeeze(0), torch.randn(FEATURES, dtype=torch.float64)
    )
    per_output = jacobian.reshape(FEATURES, 3, FEATURES).abs().sum(1)
    assert torch.equal(per_output.triu() != 0, torch.zeros(FEATURES, FEATURES, dtype=torch.bool))
    assert (per_output.tril(-1)[1:] != 0).any(-1).all()  # and it does use the earlier inputs


def test_masks():
    assert alternating_mask(5, even=True).tolist() == [True, False, True, False, True]
    assert alternating_mask(5, even=False).tolist() == [False, True, False, True, False]
    assert mid_split_mask(5).tolist() == [True, True, True, False, False]


def test_coupling_scales_only_bin_size_logits():
    """1/sqrt(hidden) multiplies the width and height logits, not lambdas or derivatives (docs/method.md §Knots)."""
    layer = perturb_(coupling("lrs").double())
    identity = torch.randn(3, 2, dtype=torch.float64)
    params = layer._params(identity, None)
    raw = layer.conditioner(identity).reshape(3, 3, -1)  # [batch, transformed features, 4K - 1]
    bins = 6
    assert torch.allclose(params[..., : 2 * bins], raw[..., : 2 * bins] / 4.0)
    assert torch.equal(params[..., 2 * bins :], raw[..., 2 * bins :])


def test_lu_and_one_by_one_start_as_identity():
    inputs = torch.randn(6, 4, 3, 3)
    outputs, logabsdet = LULinear(4)(inputs)
    assert torch.allclose(outputs, inputs, atol=1e-6) and logabsdet.abs().max() <= 1e-5
    outputs, _ = OneByOneConvolution(4)(inputs)
    assert sorted(outputs[0, :, 0, 0].tolist()) == pytest.approx(sorted(inputs[0, :, 0, 0].tolist()), abs=1e-6)


def test_unknown_family_is_refused():
    with pytest.raises(ValueError, match="choose one of"):
        elementwise_map("lsr")


def test_elementwise_families_are_the_spline_families_then_affine():
    from lrsflows.splines import FAMILIES as SPLINE_FAMILIES

    assert list(FAMILIES) == list(SPLINE_FAMILIES) + ["affine"]
    assert [entry.label for entry in FAMILIES.values()] == [family.label for family in SPLINE_FAMILIES.values()] + [
        "Affine"
    ]
    assert [entry.unconditional for entry in FAMILIES.values()] == [True] * len(SPLINE_FAMILIES) + [False]
