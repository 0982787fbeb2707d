"""The analytic backward of the per-bin maps against finite differences and against autograd's reference.

`spline(..., analytic_gradients=False)` differentiates the same forward maths with autograd; families without an
analytic backward (the quadratic ones) run that path either way, so every family is looped over.
"""

import pytest
import torch

from lrsflows.splines import FAMILIES, SplineSettings, num_params, spline

TAILS = ["linear", None]
BOUND = 3.0


def problem(kind, tails, num_elements, scale=1.0, seed=0, dtype=torch.float64):
    """Inputs in and beyond the box, N(0, scale^2) logits and random weights for outputs and log-dets."""
    settings = SplineSettings(num_bins=5, tails=tails)
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.rand(num_elements, generator=generator, dtype=torch.float64) * 8 - 4
    params = scale * torch.randn(num_elements, num_params(kind, settings), generator=generator, dtype=torch.float64)
    weights = torch.randn(2, num_elements, generator=generator, dtype=torch.float64)
    return settings, inputs.to(dtype), params.to(dtype), weights.to(dtype)


def gradients(kind, inputs, params, weights, inverse, settings, analytic_gradients):
    """d/d(inputs, params) of sum(w_0 * outputs + w_1 * logabsdet)."""
    inputs, params = inputs.clone().requires_grad_(True), params.clone().requires_grad_(True)
    outputs, logabsdet = spline(kind, inputs, params, inverse, settings, analytic_gradients=analytic_gradients)
    return torch.autograd.grad((weights[0] * outputs + weights[1] * logabsdet).sum(), [inputs, params])


@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("tails", TAILS)
@pytest.mark.parametrize("kind", list(FAMILIES))
class TestAnalyticGradients:
    def test_gradcheck(self, kind, tails, inverse):
        settings, inputs, params, _ = problem(kind, tails, 24)
        inputs.requires_grad_(True)
        params.requires_grad_(True)
        assert torch.autograd.gradcheck(lambda x, p: spline(kind, x, p, inverse, settings), (inputs, params))

    def test_equal_to_autograd_in_float64(self, kind, tails, inverse):
        """Measured: at most 1e-11 relative, also at logits x 5 (where RQ's inverse differs most)."""
        for scale in (1.0, 5.0):
            settings, inputs, params, weights = problem(kind, tails, 6000, scale)
            analytic = gradients(kind, inputs, params, weights, inverse, settings, True)
            reference = gradients(kind, inputs, params, weights, inverse, settings, False)
            for ours, theirs in zip(analytic, reference):
                torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)

    def test_as_accurate_as_autograd_in_float32(self, kind, tails, inverse):
        """Against the float64 gradient (per element, relative to itself for inputs and to its row's largest entry
        for params) the analytic float32 gradient's median and 99.9th-percentile errors are within 2x autograd's
        float32 ones (+1e-6; measured: at most 1.33x), at logits x 1 and x 30, and it is finite wherever
        autograd's is. At x 30 both are poor for a few elements (99.9th percentile above 1 for RQ's params), so
        they are each compared with the truth, not with each other."""
        quantiles = torch.tensor([0.5, 0.999], dtype=torch.float64)
        for scale in (1.0, 30.0):
            settings, inputs, params, weights = problem(kind, tails, 6000, scale, seed=int(scale))
            truth = gradients(kind, inputs, params, weights, inverse, settings, False)
            single = inputs.float(), params.float(), weights.float()
            analytic = gradients(kind, *single, inverse, settings, True)
            reference = gradients(kind, *single, inverse, settings, False)
            for ours, theirs, exact in zip(analytic, reference, truth):
                assert torch.isfinite(ours[torch.isfinite(theirs)]).all()
                ours_error = torch.quantile(relative_error(ours.double(), exact), quantiles)
                their_error = torch.quantile(relative_error(theirs.double(), exact), quantiles)
                assert (ours_error <= 2.0 * their_error + 1e-6).all(), f"{ours_error} vs autograd {their_error}"


def relative_error(approximate, exact):
    """|approximate - exact| per element, relative to the largest entry of its row (params) or itself (inputs)."""
    if exact.dim() == 1:
        return (approximate - exact).abs() / exact.abs().clamp_min(1e-30)
    return ((approximate - exact).abs() / exact.abs().amax(-1, keepdim=True).clamp_min(1e-30)).flatten()


@pytest.mark.parametrize("kind", ["lrs", "rq"])
def test_the_flag_picks_the_backward(kind):
    """analytic_gradients=True records the one per-bin node; False differentiates the forward with autograd,
    which also gives second-order gradients."""
    settings, inputs, params, _ = problem(kind, "linear", 10)
    params.requires_grad_(True)
    outputs, _ = spline(kind, inputs, params, settings=settings)
    nodes = repr(outputs.grad_fn.next_functions)
    assert "BinMap" in nodes
    outputs, _ = spline(kind, inputs, params, settings=settings, analytic_gradients=False)
    (gradient,) = torch.autograd.grad(outputs.sum(), params, create_graph=True)
    assert gradient.requires_grad


def test_compiled_spline_matches_eager():
    compiled = torch.compile(spline, backend="aot_eager", dynamic=False)
    for kind in ("lrs", "rq"):
        settings, inputs, params, weights = problem(kind, "linear", 64, dtype=torch.float32)
        for inverse in (False, True):
            eager = gradients(kind, inputs, params, weights, inverse, settings, True)
            leaves = inputs.clone().requires_grad_(True), params.clone().requires_grad_(True)
            outputs, logabsdet = compiled(kind, *leaves, inverse, settings)
            traced = torch.autograd.grad((weights[0] * outputs + weights[1] * logabsdet).sum(), leaves)
            for ours, theirs in zip(traced, eager):
                torch.testing.assert_close(ours, theirs)
