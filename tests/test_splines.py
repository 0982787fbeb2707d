"""The spline families against their definitions, in float64, and their robustness in float32."""

import math

import pytest
import torch

from lrsflows.splines import FAMILIES, Family, SplineSettings, num_params, register, spline, spline_knots
from lrsflows.splines.rational_quadratic import RQ

TAILS = ["linear", None]
BOUND = 3.0
NUM_BINS = 5


def settings(tails="linear", num_bins=NUM_BINS):
    return SplineSettings(num_bins=num_bins, tails=tails)


def random_params(kind, num_elements, tails="linear", scale=1.0, seed=0, dtype=torch.float64, num_bins=NUM_BINS):
    generator = torch.Generator().manual_seed(seed)
    count = num_params(kind, settings(tails, num_bins))
    return scale * torch.randn(num_elements, count, generator=generator, dtype=dtype)


def at_each_knot(values, params):
    """Evaluate every element's spline at each of its K+1 knots: (inputs [N, K+1], params [N, K+1, M])."""
    return values, params.unsqueeze(1).expand(-1, values.shape[1], -1)


def derivative(kind, inputs, params, inverse=False, tails="linear"):
    inputs = inputs.clone().requires_grad_(True)
    outputs, logabsdet = spline(kind, inputs, params, inverse, settings(tails))
    (gradient,) = torch.autograd.grad(outputs.sum(), inputs)
    return outputs, logabsdet, gradient


@pytest.mark.parametrize("tails", TAILS)
@pytest.mark.parametrize("kind", list(FAMILIES))
class TestDefinition:
    def test_round_trip_both_directions(self, kind, tails):
        params = random_params(kind, 20000, tails)
        values = torch.empty(20000, dtype=torch.float64).uniform_(-1.5 * BOUND, 1.5 * BOUND)
        for first in (False, True):
            mapped, logabsdet = spline(kind, values, params, first, settings(tails))
            back, back_logabsdet = spline(kind, mapped, params, not first, settings(tails))
            assert (back - values).abs().max() <= 1e-9
            assert (logabsdet + back_logabsdet).abs().max() <= 1e-9

    @pytest.mark.parametrize("inverse", [False, True])
    def test_logabsdet_is_log_of_autograd_derivative(self, kind, tails, inverse):
        params = random_params(kind, 20000, tails)
        values = torch.empty(20000, dtype=torch.float64).uniform_(-1.5 * BOUND, 1.5 * BOUND)
        _, logabsdet, gradient = derivative(kind, values, params, inverse, tails=tails)
        assert (gradient > 0).all()
        assert (torch.log(gradient) - logabsdet).abs().max() <= 1e-8

    def test_knots_map_to_knots_in_both_directions(self, kind, tails):
        params = random_params(kind, 200, tails)
        knots = spline_knots(kind, params, settings(tails))
        outputs, _ = spline(kind, *at_each_knot(knots.x, params), settings=settings(tails))
        assert (outputs - knots.y).abs().max() <= 1e-12
        inputs, _ = spline(kind, *at_each_knot(knots.y, params), True, settings(tails))
        assert (inputs - knots.x).abs().max() <= 1e-12

    def test_derivatives_at_knots_are_the_given_ones_from_both_sides(self, kind, tails):
        """C1 at every knot: one-sided derivatives at knot -+ h both approach d_k (at the box edge too,
        except for NSF's quadratic, whose boundary slope is not the tails' 1)."""
        params = random_params(kind, 200, tails)
        knots = spline_knots(kind, params, settings(tails))
        _, at_knot, _ = derivative(kind, *at_each_knot(knots.x, params), tails=tails)
        assert (at_knot.exp() - knots.derivatives).abs().max() <= 1e-10 * knots.derivatives.max()
        # Without tails the box edge joins nothing; NSF's quadratic joins the linear tails with a kink.
        interior = slice(1, -1) if tails is None or kind == "quadratic" else slice(None)
        for side in (-1e-9, 1e-9):
            _, near, _ = derivative(kind, *at_each_knot(knots.x + side, params), tails=tails)
            relative = (near.exp() / knots.derivatives - 1.0)[:, interior]
            assert relative.abs().max() <= 1e-4

    def test_strictly_increasing(self, kind, tails):
        params = random_params(kind, 50, tails)
        grid = torch.linspace(-1.3 * BOUND, 1.3 * BOUND, 4001, dtype=torch.float64).expand(50, -1)
        outputs, _ = spline(kind, grid, params.unsqueeze(1).expand(-1, grid.shape[1], -1), settings=settings(tails))
        assert (outputs.diff(dim=1) > 0).all()

    def test_identity_outside_the_box(self, kind, tails):
        params = random_params(kind, 1000, tails, scale=3.0)
        values = torch.cat(
            [
                torch.linspace(-50, -BOUND - 1e-12, 500, dtype=torch.float64),
                torch.linspace(BOUND + 1e-12, 50, 500, dtype=torch.float64),
            ]
        )
        for inverse in (False, True):
            outputs, logabsdet = spline(kind, values, params, inverse, settings(tails))
            assert torch.equal(outputs, values)
            assert torch.equal(logabsdet, torch.zeros_like(values))


@pytest.mark.parametrize("kind", ["lrs", "rq", "quadratic", "quadratic_c1"])
def test_parameterisation_is_the_papers(kind):
    """Widths/heights softmax + 1e-3 minimum, knot derivatives 1e-3 + softplus, boundary derivatives exactly 1
    (quadratic: see test_quadratic_boundary_rule_choice)."""
    params = random_params(kind, 100)
    knots = spline_knots(kind, params, settings())
    widths = 1e-3 + (1 - 1e-3 * NUM_BINS) * torch.softmax(params[:, :NUM_BINS], dim=1)
    assert torch.allclose(knots.x.diff(dim=1), 2 * BOUND * widths, atol=1e-12)
    assert torch.equal(knots.x[:, [0, -1]], torch.tensor([-BOUND, BOUND], dtype=torch.float64).expand(100, 2))
    boundary = knots.derivatives[:, [0, -1]]
    if kind == "quadratic_c1":  # 1 after normalising the density, up to rounding
        assert torch.allclose(boundary, torch.ones_like(boundary), atol=1e-14, rtol=0)
    if kind not in ("lrs", "rq"):  # the quadratic layout has vertex logits, no heights or derivatives
        return
    assert torch.equal(boundary, torch.ones_like(boundary))
    heights = 1e-3 + (1 - 1e-3 * NUM_BINS) * torch.softmax(params[:, NUM_BINS : 2 * NUM_BINS], dim=1)
    assert torch.allclose(knots.y.diff(dim=1), 2 * BOUND * heights, atol=1e-12)
    expected = 1e-3 + torch.nn.functional.softplus(params[:, -(NUM_BINS - 1) :])
    assert torch.allclose(knots.derivatives[:, 1:-1], expected, atol=1e-15)


def test_lrs_lambdas_and_interior_point():
    """lambda = 0.95 sigmoid + 0.025, and g(x_k + lambda w_k) = y_c = ((1-l) y_k + l w_b y_k+1) / ((1-l) + l w_b)."""
    params = random_params("lrs", 300)
    knots = spline_knots("lrs", params, settings())
    lam = knots.lambdas
    assert torch.allclose(lam, 0.95 * torch.sigmoid(params[:, 2 * NUM_BINS : 3 * NUM_BINS]) + 0.025, atol=1e-15)
    x_k, y_k, y_next = knots.x[:, :-1], knots.y[:, :-1], knots.y[:, 1:]
    w_b = torch.sqrt(knots.derivatives[:, :-1] / knots.derivatives[:, 1:])
    y_c = ((1 - lam) * y_k + lam * w_b * y_next) / ((1 - lam) + lam * w_b)
    x_m = x_k + lam * knots.x.diff(dim=1)
    outputs, _ = spline("lrs", x_m, params.unsqueeze(1).expand(-1, NUM_BINS, -1), settings=settings())
    assert (outputs - y_c).abs().max() <= 1e-12


def test_quadratic_boundary_rule_choice():
    """`quadratic_c1`: boundary slope exactly 1 (C1 tails). `quadratic` (the default, NSF's code) keeps
    NSF's constant, recomputed here from docs/method.md §Quadratic spline's transcription of that code: the end widths
    halved twice, so the boundary slope is below 1. Measured on these 2000 splines (K = 8, logits
    N(0, 1)): 0.537-0.997, quartiles 0.847 / 0.902 / 0.941; 0.8815 with every logit 0."""
    bins = 8
    params = random_params("quadratic", 2000, num_bins=bins)
    just_inside = torch.full((2000,), BOUND - 1e-9, dtype=torch.float64)
    _, exact = spline("quadratic_c1", just_inside, params)
    assert (exact.exp() - 1).abs().max() <= 1e-6
    widths = 1e-3 + (1 - 1e-3 * bins) * torch.softmax(params[:, :bins], dim=1)
    vertices = torch.exp(params[:, bins:])
    first_half, last_half = 0.5 * widths[:, 0], 0.5 * widths[:, -1]
    numerator = 0.5 * first_half * vertices[:, 0] + 0.5 * last_half * vertices[:, -1]
    numerator = numerator + ((vertices[:, :-1] + vertices[:, 1:]) / 2 * widths[:, 1:-1]).sum(1)
    constant = numerator / (1 - 0.5 * first_half - 0.5 * last_half)
    full = torch.cat([constant[:, None], vertices, constant[:, None]], dim=1)
    area = ((full[:, :-1] + full[:, 1:]) / 2 * widths).sum(1)
    expected_slope = 1e-3 + (1 - 1e-3) * constant / area
    for edge_inside in (just_inside, -just_inside):
        _, original = spline("quadratic", edge_inside, params)
        assert torch.allclose(original.exp(), expected_slope, rtol=1e-6)
    assert (expected_slope > 0.5).all() and (expected_slope < 1).all()  # not C1 at the box edge
    quartiles = torch.quantile(expected_slope, torch.tensor([0.25, 0.75], dtype=torch.float64))
    assert 0.82 < quartiles[0] and quartiles[1] < 0.95
    _, at_zero_logits = spline("quadratic", just_inside[:1], torch.zeros(1, 2 * bins - 1, dtype=torch.float64))
    assert abs(at_zero_logits.exp().item() - 0.8815) < 1e-4
    edge = torch.full((2000,), BOUND, dtype=torch.float64)
    for kind in ("quadratic", "quadratic_c1"):
        outputs, _ = spline(kind, edge, params)
        assert torch.allclose(outputs, edge)  # both still continuous there
    with pytest.raises(ValueError, match="quadratic_c1"):
        spline("quadratic_original", just_inside, params)


@pytest.mark.parametrize("kind", list(FAMILIES))
def test_float32_robustness(kind):
    """10^6 points in and beyond the box, on knots, knots +-1 ulp, +-bound and +-(bound - 1e-6); logits N(0, s^2).

    No NaN/Inf in outputs, log-dets or gradients for s = 1, 5, 20. The round trip is measured in
    output space: for x = f^-1(y), y must lie between f(x - u) and f(x + u), u = float32's spacing at
    the box edge (2.4e-7), within 1e-5 -- what a float32 inverse can reach, since f itself cannot
    resolve x more finely than its knots' spacing. |f(f^-1(y)) - y| alone cannot be small: LRS bins
    reach derivatives above 1e8 at s >= 5. At s = 5 and 20 the window is 8u and the tolerance 1e-4
    (measured: LRS 1e-6, RQ 3e-5, quadratic 1.2e-6).
    """
    infinity = torch.tensor(math.inf)
    box_spacing = (torch.nextafter(torch.tensor(BOUND), infinity) - BOUND).item()
    for scale in (1.0, 5.0, 20.0):
        params = random_params(kind, 10**6, scale=scale, seed=int(scale), dtype=torch.float32, num_bins=8)
        knots = spline_knots(kind, params[:1000]).x
        special = torch.cat(
            [
                knots.flatten(),
                torch.nextafter(knots, infinity).flatten(),
                torch.nextafter(knots, -infinity).flatten(),
                torch.tensor([BOUND, -BOUND, BOUND - 1e-6, -(BOUND - 1e-6)]),
            ]
        )
        generator = torch.Generator().manual_seed(1)
        uniform = torch.rand(10**6 - special.numel(), generator=generator) * 4 * BOUND - 2 * BOUND
        values = torch.cat([special, uniform])
        for inverse in (False, True):
            leaf_values = values.clone().requires_grad_(True)
            leaf_params = params.clone().requires_grad_(True)
            outputs, logabsdet = spline(kind, leaf_values, leaf_params, inverse=inverse)
            (outputs.sum() + logabsdet.sum()).backward()
            for tensor in (outputs, logabsdet, leaf_values.grad, leaf_params.grad):
                assert torch.isfinite(tensor).all(), f"{kind} scale {scale} inverse={inverse}"
        with torch.no_grad():
            preimage, _ = spline(kind, values, params, inverse=True)
            window, tolerance = (box_spacing, 1e-5) if scale == 1.0 else (8 * box_spacing, 1e-4)
            low, _ = spline(kind, preimage - window, params)
            high, _ = spline(kind, preimage + window, params)
            violation = torch.maximum(low - values, values - high).clamp_min(0)
            assert violation.max() <= tolerance, f"{kind} scale {scale}: {violation.max():.2e}"


@pytest.mark.parametrize("kind", list(FAMILIES))
def test_empty_and_all_tail_batches(kind):
    four_bins = settings(num_bins=4)
    empty, _ = spline(kind, torch.empty(0, 3), torch.empty(0, 3, num_params(kind, four_bins)), settings=four_bins)
    assert empty.shape == (0, 3)
    far = torch.full((4, 3), 10.0)
    outputs, logabsdet = spline(kind, far, torch.randn(4, 3, num_params(kind, four_bins)), settings=four_bins)
    assert torch.equal(outputs, far) and torch.equal(logabsdet, torch.zeros(4, 3))


@pytest.mark.parametrize("kind", list(FAMILIES))
def test_low_precision_inputs_run_in_float32_under_autocast(kind):
    params = random_params(kind, 1000, dtype=torch.float32)
    values = torch.rand(1000) * 6 - 3
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs, logabsdet = spline(kind, values.bfloat16(), params.bfloat16(), settings=settings())
    assert outputs.dtype == torch.float32 and logabsdet.dtype == torch.float32
    reference, _ = spline(kind, values.bfloat16().float(), params.bfloat16().float(), settings=settings())
    assert torch.equal(outputs, reference)


def test_traceable_without_graph_breaks():
    """Fixed shapes and no boolean indexing: torch.compile captures forward and inverse as one graph each."""
    compiled = torch.compile(spline, fullgraph=True, backend="eager", dynamic=False)
    params = random_params("lrs", 64, dtype=torch.float32)
    values = torch.rand(64) * 8 - 4
    for inverse in (False, True):
        outputs, _ = compiled("lrs", values, params, inverse, settings())
        assert torch.equal(outputs, spline("lrs", values, params, inverse, settings())[0])


def test_clear_errors():
    with pytest.raises(ValueError, match="choose one of"):
        spline("lsr", torch.zeros(2), torch.zeros(2, 7))
    with pytest.raises(ValueError, match="fit no"):
        spline("lrs", torch.zeros(2), torch.zeros(2, 8))
    with pytest.raises(ValueError, match="not below 1"):
        SplineSettings(min_bin_width=0.2)
    with pytest.raises(ValueError, match="not below 1"):
        SplineSettings(num_bins=4, min_bin_height=0.25)
    with pytest.raises(ValueError, match="tails"):
        SplineSettings(tails="circular")
    with pytest.raises(ValueError, match="at least 1"):
        SplineSettings(num_bins=0)
    with pytest.raises(ValueError, match="already registered"):
        register(RQ)


def test_settings_of_reads_same_named_attributes():
    class Model:  # e.g. a model config: other attributes are ignored, absent settings keep their default
        num_bins = 4
        tail_bound = 2.5
        hidden_features = 16

    assert SplineSettings.of(Model()) == SplineSettings(num_bins=4, tail_bound=2.5)
    assert SplineSettings().linear_tails and not SplineSettings(tails=None).linear_tails


@pytest.fixture
def registered_copy_of_rq():
    """RQ registered once more under another name, removed again afterwards."""
    family = register(Family("rq_copy", "RQ copy", RQ.transform, RQ.knots, 3, 2, "uniform"))
    yield family
    del FAMILIES[family.name]


def test_a_registered_family_is_a_choice_everywhere(registered_copy_of_rq):
    from lrsflows.transforms.elementwise import elementwise_families, elementwise_map

    assert list(FAMILIES)[-1] == "rq_copy"
    assert list(elementwise_families())[-2:] == ["rq_copy", "affine"]
    assert elementwise_families()["rq_copy"].label == "RQ copy"
    params = random_params("rq", 100)
    values = torch.linspace(-4, 4, 100, dtype=torch.float64)
    assert torch.equal(
        spline("rq_copy", values, params, settings=settings())[0], spline("rq", values, params, settings=settings())[0]
    )
    assert elementwise_map("rq_copy", settings()).num_params == num_params("rq", settings())
