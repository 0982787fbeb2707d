"""Benchmark report (make bench): spline kernels, whole flows beside nflows 0.14 and zuko 1.6, memory traffic, a
step's cost, input pipeline.

Run: python scripts/bench.py [--quick] [--no-compile] [--threads T] [--device cpu|cuda] [--precision fp32 [bf16]]
                             [--allocator default|tunables|mallopt] [--repeats R] [--warmup W] [--kernel-inputs N]
                             [--compile-budget S] [--out FILE]

Sections:
- Spline kernels: forward, inverse and forward+backward (gradient of outputs.sum() + logabsdet.sum() w.r.t.
  inputs and params) of each family, ours eager and torch.compile'd (dynamic=False, compiled during warm-up)
  beside the original formulation, scripts/original_splines.py (the LRS fork's for lrs and rq, NSF's quadratic
  spline for quadratic), and, once lrsflows.splines.spline has `analytic_gradients`, beside our own maths
  differentiated by autograd (analytic_gradients=False).
- Whole flows at the POWER preset: a training step (forward, backward, Adam step), log_prob of 10,000 points
  and sample(10,000) for our LRS, RQ-NSF and Q-NSF, coupling (C) and autoregressive (A), beside two peers built
  with the same architecture: nflows 0.14's RQ-NSF (C) and Q-NSF (C) (the NSF uci.py recipe) and zuko 1.6's RQ
  coupling flow (skipped when absent: pip install -e '.[bench]'). --precision bf16 adds our flows under bf16
  autocast (peers stay fp32). nflows 0.14's Q-NSF maps vertex logits with softplus + 1e-3 instead of NSF's exp:
  timed for speed only. Our LRS (C) step torch.compile'd is timed beside nflows in a child process (--compile-budget).
- Memory traffic: page faults and system CPU time per training step (getrusage deltas) of LRS (C), RQ (C) and the
  peers under glibc's default malloc and with large buffers kept mapped (GLIBC_TUNABLES before start-up, or
  mallopt at start-up), one child process per setting.
- Step breakdown: our LRS (C) step beside the same step with an identity element-wise map, the conditioner
  networks alone, the Adam step alone and batch production alone, and the share of the step each part costs.
- Input pipeline: time per batch of TensorBatches (POWER-sized tensor) and ImageBatches (CIFAR-sized uint8
  images, 0 and 2 workers).
- Targets, PASS or MISS, then a torch.profiler top-10 table of the operation behind each MISSED one.

Every time is the median over --repeats calls after --warmup untimed ones. The calls a ratio compares are timed
round-robin in one group (Timer.samples), so drift in machine load (other processes) hits both sides alike.
nflows 0.14 calls torch.triangular_solve, deprecated in torch 2.x: `import_nflows` swaps in torch.linalg's
solver at import (in this process only; site-packages stays as installed).
"""

import argparse
import copy
import ctypes
import dataclasses
import inspect
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from functools import partial
from importlib import metadata
from pathlib import Path

import torch
from original_splines import original_lrs, original_quadratic, original_rq
from torch import nn
from torch.profiler import ProfilerActivity, profile

from lrsflows.data.image_datasets import TensorImages
from lrsflows.flows.tabular import build_tabular_flow
from lrsflows.splines import FAMILIES as SPLINE_FAMILIES
from lrsflows.splines import SplineSettings, num_params, spline
from lrsflows.train.batches import ImageBatches, TensorBatches
from lrsflows.train.trainer import adam

FAMILIES = ("lrs", "rq", "quadratic")
# nflows 0.14's coupling layer of each family it has.
NFLOWS_COUPLINGS = {
    "rq": "PiecewiseRationalQuadraticCouplingTransform",
    "quadratic": "PiecewiseQuadraticCouplingTransform",
}
ARCH_TAGS = {"coupling": "C", "autoregressive": "A"}
KERNEL_OPERATIONS = ("forward", "inverse", "forward+backward")
FLOW_OPERATIONS = ("training step", "log_prob", "sample")
AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16}
TAIL_BOUND = 3.0
INPUT_HALF_RANGE = 3.5  # kernel inputs reach past the box, so the linear tails are timed too
LEARNING_RATE = 5e-4
STEP_OVER_NFLOWS_TARGET = 0.6
STEP_OVER_ZUKO_TARGET = 0.8
COMPILED_STEP_OVER_NFLOWS_TARGET = 0.45
EVALUATION_OVER_ZUKO_TARGET = 0.75  # log_prob and sample
BACKWARD_OVER_FORWARD_TARGET = 2.0  # a kernel's forward+backward time over its forward time
ANALYTIC_OVER_AUTOGRAD_TARGET = 0.6
BEYOND_CONDITIONERS_TARGET = 0.25
PARAMETER_TOLERANCE = 0.01  # our RQ-NSF (C) and the peers' parameter counts agree within this share
SCRIPT = Path(__file__).resolve()
MEMORY_WARMUP = 4  # steps until a lone flow's heap stops growing (3 were needed on the development machine)

# glibc malloc: serve blocks below 32 MiB from the heap (no fresh mmap, so no page faults on reuse) and never
# give freed heap memory back. mallopt takes an int, so its trim threshold is capped at INT_MAX (2 GiB - 1).
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 64 * 2**30
INT_MAX = 2**31 - 1
TUNABLES = f"glibc.malloc.mmap_threshold={MMAP_THRESHOLD}:glibc.malloc.trim_threshold={TRIM_THRESHOLD}"
ALLOCATORS = {
    "default": "glibc malloc defaults (dynamic mmap threshold, trimming on)",
    "tunables": f"GLIBC_TUNABLES={TUNABLES} before the process starts",
    "mallopt": f"mallopt(M_MMAP_THRESHOLD, 32 MiB) + mallopt(M_TRIM_THRESHOLD, {INT_MAX}) at start-up",
}


def keep_large_buffers_mapped() -> bool:
    """glibc only: mallopt the mmap threshold to 32 MiB and the trim threshold to INT_MAX, so freed tensor buffers
    stay in the heap for the next step instead of being unmapped and faulted in again. Call before the first
    tensor; True when glibc accepted both settings."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    return bool(libc.mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(
        libc.mallopt(m_trim_threshold, min(TRIM_THRESHOLD, INT_MAX))
    )


def apply_allocator(setting: str):
    """Put this process under an ALLOCATORS setting: tunables re-exec the process with GLIBC_TUNABLES set."""
    if setting == "tunables" and os.environ.get("GLIBC_TUNABLES") != TUNABLES:
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "GLIBC_TUNABLES": TUNABLES})
    if setting == "mallopt" and not keep_large_buffers_mapped():
        raise SystemExit("mallopt refused the settings (not glibc?)")


def model_label(family: str, arch: str) -> str:
    """A flow's row label: its family's table label and the arch tag, "LRS (C)"."""
    return f"{SPLINE_FAMILIES[family].label} ({ARCH_TAGS[arch]})"


LRS_COUPLING = model_label("lrs", "coupling")
RQ_COUPLING = model_label("rq", "coupling")
NFLOWS = f"nflows {RQ_COUPLING}"
ZUKO = f"zuko {RQ_COUPLING}"
PEERS = (NFLOWS, ZUKO)  # every flow ratio is over each of these


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Problem sizes: the defaults are the POWER preset and CIFAR-10; QUICK is a smoke test's."""

    kernel_inputs: int = 65536
    kernel_dims: int = 8
    bins: int = 8
    features: int = 6
    flow_steps: int = 10
    hidden: int = 256
    blocks: int = 2
    batch: int = 512
    eval_points: int = 10_000
    tabular_rows: int = 1_659_917
    images: int = 50_000
    image_batch: int = 256
    image_batches_per_call: int = 20


QUICK = Sizes(
    kernel_inputs=1024,
    kernel_dims=4,
    flow_steps=2,
    hidden=32,
    batch=64,
    eval_points=256,
    tabular_rows=4096,
    images=256,
    image_batch=32,
    image_batches_per_call=2,
)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat, no torch.compile (smoke test)")
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time torch.compile'd kernels (default: on, off with --quick)",
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per operation (5; --quick: 1)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls first (compilation happens here)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=tuple(AUTOCAST_DTYPES),
        default=["fp32"],
        help="our flows' precisions; fp32 always runs (targets and the breakdown use it)",
    )
    parser.add_argument("--kernel-inputs", type=int, default=None, help="spline kernel batch (default 65536)")
    parser.add_argument(
        "--allocator", choices=tuple(ALLOCATORS), default="default", help="glibc malloc setting of this process"
    )
    parser.add_argument(
        "--compile-budget", type=float, default=600, help="seconds for the compiled training step's child process"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown report here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=tuple(CHILDREN), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--flow", default="", help=argparse.SUPPRESS)  # the memory child's flow
    args = parser.parse_args()
    sizes = QUICK if args.quick else Sizes()
    if args.kernel_inputs is not None:
        sizes = dataclasses.replace(sizes, kernel_inputs=args.kernel_inputs)
    args.sizes = sizes
    args.compile = not args.quick if args.compile is None else args.compile
    args.repeats = args.repeats or (1 if args.quick else 5)
    args.device = torch.device(args.device)
    if args.device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no CUDA device.")
    args.precision = ["fp32"] + [precision for precision in args.precision if precision != "fp32"]
    return args


@dataclasses.dataclass(frozen=True)
class Sample:
    """One call's cost: wall seconds, page faults (minor + major) and system CPU seconds of this process."""

    seconds: float
    faults: float
    system: float


class Timer:
    """The one timing helper: per call of a group of calls run round-robin after a warm-up, the median seconds and
    the mean page faults and system time (getrusage is tick-grained, so means, not medians)."""

    def __init__(self, repeats: int, warmup: int, device: torch.device):
        self.repeats, self.warmup = repeats, warmup
        self.synchronize = torch.cuda.synchronize if device.type == "cuda" else lambda: None

    def measure(self, call) -> Sample:
        self.synchronize()
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        call()
        self.synchronize()
        seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
        faults = after.ru_minflt + after.ru_majflt - before.ru_minflt - before.ru_majflt
        return Sample(seconds, faults, after.ru_stime - before.ru_stime)

    def samples(self, calls: dict) -> dict:
        """{label: Sample}; interleaving the calls gives every one the same share of machine noise."""
        for _ in range(self.warmup):
            for call in calls.values():
                call()
        measured = {label: [] for label in calls}
        for _ in range(self.repeats):
            for label, call in calls.items():
                measured[label].append(self.measure(call))
        return {
            label: Sample(
                statistics.median(sample.seconds for sample in runs),
                statistics.fmean(sample.faults for sample in runs),
                statistics.fmean(sample.system for sample in runs),
            )
            for label, runs in measured.items()
        }

    def medians(self, calls: dict) -> dict:
        """{label: median seconds}."""
        return {label: sample.seconds for label, sample in self.samples(calls).items()}


# --- nflows 0.14 ---------------------------------------------------------------------------------------------------


def _lu_inverse_no_cache(self, inputs):
    """nflows LULinear.inverse_no_cache with torch.linalg.solve_triangular in place of torch.triangular_solve
    (deprecated, warns on every first call and is slated for removal); same maths: x = U^-1 L^-1 (y - b)."""
    lower, upper = self._create_lower_upper()
    outputs = torch.linalg.solve_triangular(lower, (inputs - self.bias).t(), upper=False, unitriangular=True)
    outputs = torch.linalg.solve_triangular(upper, outputs, upper=True)
    return outputs.t(), -self.logabsdet() * inputs.new_ones(inputs.shape[0])


def import_nflows():
    """nflows with its torch 2.13 shim applied, or None when the bench extra is not installed."""
    try:
        import nflows
        from nflows.transforms.lu import LULinear
    except ImportError:
        return None
    LULinear.inverse_no_cache = _lu_inverse_no_cache
    return nflows


def nflows_flow(coupling_name: str, sizes: Sizes):
    """nflows' RQ-NSF or Q-NSF (C) as the NSF uci.py recipe builds it: [permutation, LU, coupling] x S, then a final
    permutation and LU, base N(0, I); the same architecture as build_tabular_flow's coupling flow."""
    from nflows import distributions, flows, transforms
    from nflows.nn.nets import ResidualNet
    from nflows.utils.torchutils import create_alternating_binary_mask

    features = sizes.features
    coupling = getattr(transforms, coupling_name)

    def linear():
        return transforms.CompositeTransform(
            [transforms.RandomPermutation(features), transforms.LULinear(features, identity_init=True)]
        )

    def conditioner(in_features, out_features):
        return ResidualNet(
            in_features,
            out_features,
            hidden_features=sizes.hidden,
            num_blocks=sizes.blocks,
            dropout_probability=0.0,
            use_batch_norm=False,
        )

    layers = []
    for step in range(sizes.flow_steps):
        layers += [
            linear(),
            coupling(
                mask=create_alternating_binary_mask(features, even=step % 2 == 0),
                transform_net_create_fn=conditioner,
                num_bins=sizes.bins,
                tails="linear",
                tail_bound=TAIL_BOUND,
                apply_unconditional_transform=True,
            ),
        ]
    layers.append(linear())
    return flows.Flow(transforms.CompositeTransform(layers), distributions.StandardNormal([features]))


# --- zuko 1.6 -----------------------------------------------------------------------------------------------------


def import_zuko():
    """zuko, or None when the bench extra is not installed."""
    try:
        import zuko
    except ImportError:
        return None
    return zuko


class ZukoFlow(nn.Module):
    """zuko's lazy Flow behind the log_prob(inputs) / sample(num_samples) calls our flows and nflows' take."""

    def __init__(self, flow):
        super().__init__()
        self.flow = flow

    def log_prob(self, inputs):
        return self.flow().log_prob(inputs)

    def sample(self, num_samples):
        return self.flow().sample((num_samples,))


def zuko_flow(sizes: Sizes) -> ZukoFlow:
    """zuko's RQ coupling flow laid out as nflows_flow: [permutation, LU, coupling] x S, permutation, LU, N(0, I);
    splines on [-3, 3] with K bins and identity tails. Each coupling's MLP is swapped for nflows' ResidualNet layout
    in zuko.nn blocks (linear, B pre-activation residual blocks of two linears, linear). What zuko's API lacks:
    the unconditional spline on the untransformed half and the LU layer's bias (see parameter_lines)."""
    from zuko.distributions import DiagNormal
    from zuko.flows import Flow, GeneralCouplingTransform, UnconditionalDistribution, UnconditionalTransform
    from zuko.nn import Linear, Residual
    from zuko.transforms import LULinearTransform, MonotonicRQSTransform, PermutationTransform

    features, hidden = sizes.features, sizes.hidden

    def linear():
        permutation = UnconditionalTransform(PermutationTransform, torch.randperm(features), buffer=True)
        return [permutation, UnconditionalTransform(LULinearTransform, torch.eye(features))]

    def residual_net(in_features, out_features):
        blocks = [
            Residual(nn.ReLU(), Linear(hidden, hidden), nn.ReLU(), Linear(hidden, hidden)) for _ in range(sizes.blocks)
        ]
        return nn.Sequential(Linear(in_features, hidden), *blocks, Linear(hidden, out_features))

    transforms = []
    for step in range(sizes.flow_steps):
        coupling = GeneralCouplingTransform(
            features,
            mask=torch.arange(features) % 2 == step % 2,
            univariate=partial(MonotonicRQSTransform, bound=TAIL_BOUND),
            shapes=[(sizes.bins,), (sizes.bins,), (sizes.bins - 1,)],
            hidden_features=[hidden],
        )
        coupling.hyper = residual_net(coupling.hyper[0].in_features, coupling.hyper[-1].out_features)
        transforms += linear() + [coupling]
    transforms += linear()
    base = UnconditionalDistribution(DiagNormal, torch.zeros(features), torch.ones(features), buffer=True)
    return ZukoFlow(Flow(transforms, base))


# --- spline kernels -----------------------------------------------------------------------------------------------


def spline_settings(sizes: Sizes) -> SplineSettings:
    return SplineSettings(num_bins=sizes.bins, tail_bound=TAIL_BOUND)


def our_kernel(kind, settings, **options):
    def transform(inputs, params, inverse):
        return spline(kind, inputs, params, inverse, settings, **options)

    return transform


def has_autograd_reference() -> bool:
    """Whether spline() takes analytic_gradients (False: the same maths differentiated by autograd)."""
    return "analytic_gradients" in inspect.signature(spline).parameters


def original_kernel(function):
    def transform(inputs, params, inverse):
        return function(inputs, params, inverse=inverse, tail_bound=TAIL_BOUND)

    return transform


ORIGINALS = {"lrs": original_lrs, "rq": original_rq, "quadratic": original_quadratic}


def kernel_implementations(kind, settings, compile_ours):
    """{'ours', 'compiled', 'original', 'autograd'} for one family, leaving out what this run does not have."""
    implementations = {"ours": our_kernel(kind, settings)}
    if has_autograd_reference():
        implementations["autograd"] = our_kernel(kind, settings, analytic_gradients=False)
    if compile_ours:
        implementations["compiled"] = torch.compile(our_kernel(kind, settings), dynamic=False)
    if kind in ORIGINALS:
        implementations["original"] = original_kernel(ORIGINALS[kind])
    return implementations


def kernel_call(transform, operation, inputs, params):
    """A zero-argument call running one operation; forward+backward differentiates w.r.t. inputs and params."""
    if operation == "forward+backward":
        inputs = inputs.clone().requires_grad_(True)
        params = params.clone().requires_grad_(True)

        def call():
            outputs, logabsdet = transform(inputs, params, False)
            torch.autograd.grad(outputs.sum() + logabsdet.sum(), [inputs, params])

        return call
    inverse = operation == "inverse"
    return lambda: transform(inputs, params, inverse)


def kernel_calls(args):
    """{(family, operation, implementation): call} on random float32 inputs, logits N(0, 1)."""
    sizes = args.sizes
    generator = torch.Generator().manual_seed(args.seed)
    settings = spline_settings(sizes)
    calls = {}
    for kind in FAMILIES:
        shape = (sizes.kernel_inputs, sizes.kernel_dims)
        inputs = ((2 * torch.rand(shape, generator=generator) - 1) * INPUT_HALF_RANGE).to(args.device)
        params = torch.randn(shape + (num_params(kind, settings),), generator=generator).to(args.device)
        for implementation, transform in kernel_implementations(kind, settings, args.compile).items():
            # the autograd reference differs from ours only in its backward
            for operation in KERNEL_OPERATIONS if implementation != "autograd" else ("forward+backward",):
                calls[kind, operation, implementation] = kernel_call(transform, operation, inputs, params)
    return calls


def rate(elements, seconds):
    return f"{elements / seconds / 1e6:.1f} M/s ({seconds * 1e3:.2f} ms)"


def ratio_cell(numerator, denominator):
    return "—" if numerator is None or denominator is None else f"{numerator / denominator:.2f}x"


def kernel_section(args, times):
    sizes = args.sizes
    elements = sizes.kernel_inputs * sizes.kernel_dims
    lines = [
        "## Spline kernels",
        f"{sizes.kernel_inputs} inputs x {sizes.kernel_dims} dims = {elements} elements, K={sizes.bins}, float32, "
        f"logits N(0,1), inputs U[-{INPUT_HALF_RANGE}, {INPUT_HALF_RANGE}], tail bound {TAIL_BOUND}. Original: "
        "scripts/original_splines.py (lrs, rq: the LRS fork's formulation; quadratic: NSF's quadratic spline). "
        "Autograd: our maths differentiated by autograd (spline(..., analytic_gradients=False)), "
        + (
            "forward+backward only."
            if has_autograd_reference()
            else "reference not available (spline() has no analytic_gradients yet)."
        )
        + " Speed-ups are time ratios, larger is faster.",
        "",
        "| family | op | ours eager | ours compiled | original eager | autograd eager | ours/original eager | "
        "compiled/original eager | compiled/eager ours | ours/autograd |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    names = ("ours", "compiled", "original", "autograd")
    for kind in FAMILIES:
        for operation in KERNEL_OPERATIONS:
            ours, compiled, original, autograd = (times.get((kind, operation, name)) for name in names)
            cells = [rate(elements, seconds) if seconds else "—" for seconds in (ours, compiled, original, autograd)]
            speed_ups = [ratio_cell(original, ours), ratio_cell(original, compiled), ratio_cell(ours, compiled)]
            speed_ups.append(ratio_cell(autograd, ours))
            lines.append(f"| {kind} | {operation} | " + " | ".join(cells + speed_ups) + " |")
    return lines


# --- whole flows --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Model:
    """A flow under test: its label, module and the autocast dtype its calls run under (None: fp32)."""

    label: str
    flow: nn.Module
    autocast: torch.dtype | None = None
    optimizer: Callable = adam  # ours: the trainer's (fused) Adam; nflows: plain Adam, as its users run it

    def context(self, device):
        if self.autocast is None:
            return nullcontext()
        return torch.autocast(device.type, dtype=self.autocast)


def our_flow(family, arch, sizes: Sizes):
    """build_tabular_flow at the POWER preset (LU + random permutation, unconditional transform, no batch norm)."""
    return build_tabular_flow(
        sizes.features,
        family=family,
        arch=arch,
        num_flow_steps=sizes.flow_steps,
        hidden_features=sizes.hidden,
        num_blocks=sizes.blocks,
        spline=spline_settings(sizes),
        dropout=0.0,
        use_batch_norm=False,
        unconditional_transform=True,
        linear="lu",
    )


def peer_flows(sizes: Sizes, peers) -> dict:
    """{label: flow} of the installed peers: nflows' RQ-NSF and Q-NSF (C), zuko's RQ-NSF (C)."""
    nflows, zuko = peers
    built = {}
    if nflows is not None:
        for family, coupling in NFLOWS_COUPLINGS.items():
            built[f"nflows {model_label(family, 'coupling')}"] = partial(nflows_flow, coupling)
    if zuko is not None:
        built[ZUKO] = zuko_flow
    return built


def models(args, peers, families=FAMILIES, archs=tuple(ARCH_TAGS), precisions=None, peer_labels=None):
    """Our flows per precision, then the peers' (plain Adam, as their users run it); each from the same seed."""
    built = []
    for precision in precisions or args.precision:
        suffix = "" if precision == "fp32" else f" {precision}"
        for family in families:
            for arch in archs:
                torch.manual_seed(args.seed)
                flow = our_flow(family, arch, args.sizes).to(args.device)
                built.append(Model(model_label(family, arch) + suffix, flow, AUTOCAST_DTYPES[precision]))
    for label, build in peer_flows(args.sizes, peers).items():
        if peer_labels is None or label in peer_labels:
            torch.manual_seed(args.seed)
            built.append(Model(label, build(args.sizes).to(args.device), optimizer=torch.optim.Adam))
    return built


def training_step(model: Model, batch, device):
    """forward, backward and an Adam step, as the trainer takes one (without clipping and scheduling)."""
    optimizer = model.optimizer(model.flow.parameters(), lr=LEARNING_RATE)

    def call():
        with model.context(device):
            loss = -model.flow.log_prob(batch).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return call


def without_grad(model: Model, run, device):
    """`run(flow)` under no_grad and the model's autocast, as evaluation and sampling run."""

    def call():
        with torch.no_grad(), model.context(device):
            run(model.flow)

    return call


def normal_rows(args, rows):
    """`rows` N(0, I) vectors of the flows' dimension on the device, the same for every seed-sharing caller."""
    generator = torch.Generator().manual_seed(args.seed)
    return torch.randn(rows, args.sizes.features, generator=generator).to(args.device)


def flow_calls(args, built):
    """{operation: {model label: call}}: one interleaved group per operation."""
    sizes, device = args.sizes, args.device
    batch, points = normal_rows(args, sizes.batch), normal_rows(args, sizes.eval_points)
    return {
        "training step": {model.label: training_step(model, batch, device) for model in built},
        "log_prob": {model.label: without_grad(model, lambda flow: flow.log_prob(points), device) for model in built},
        "sample": {
            model.label: without_grad(model, lambda flow: flow.sample(sizes.eval_points), device) for model in built
        },
    }


def parameter_count(module):
    return sum(parameter.numel() for parameter in module.parameters())


def over_peers(group: dict, label: str) -> str:
    """ " (0.81x / 0.95x)": the time of `label` over each peer's in `group` ("—" for a peer not installed)."""
    ratios = [f"{group[label] / group[peer]:.2f}x" if peer in group else "—" for peer in PEERS]
    return f" ({' / '.join(ratios)})"


def zuko_shortfall(sizes: Sizes) -> int:
    """Parameters nflows' RQ-NSF (C) has and zuko's cannot: the unconditional spline on each coupling's
    untransformed half and every LU layer's bias."""
    untransformed = sizes.features // 2
    return sizes.flow_steps * untransformed * num_params("rq", spline_settings(sizes)) + (sizes.flow_steps + 1) * (
        sizes.features
    )


def check_parameter_counts(counts: dict, sizes: Sizes, tolerance: float | None = PARAMETER_TOLERANCE) -> list:
    """Report lines on the parameter counts of our RQ-NSF (C) and LRS (C) and the peers' RQ-NSF (C). Asserts that
    zuko's falls short of ours by exactly zuko_shortfall and, unless tolerance is None (tiny sizes, where that
    shortfall is a larger share), that each installed peer's is within `tolerance` of ours."""
    ours = counts[RQ_COUPLING]
    lines = [
        f"- parameters: ours {RQ_COUPLING} {ours:,}, {LRS_COUPLING} {counts[LRS_COUPLING]:,} "
        f"({counts[LRS_COUPLING] / ours - 1:+.1%}: LRS's spline takes "
        f"{num_params('lrs', spline_settings(sizes)) - num_params('rq', spline_settings(sizes))} more parameters "
        f"per element at K = {sizes.bins}, so its conditioners' last layers are wider)"
    ]
    if ZUKO in counts:
        assert counts[ZUKO] + zuko_shortfall(sizes) == ours, f"{ZUKO}: {counts[ZUKO]:,} parameters, ours {ours:,}"
    for peer in (peer for peer in PEERS if peer in counts):
        difference = counts[peer] / ours - 1
        assert tolerance is None or abs(difference) <= tolerance, f"{peer}: {counts[peer]:,} parameters, ours {ours:,}"
        checked = "not checked at these sizes" if tolerance is None else f"within {tolerance:.0%}"
        lines.append(f"- parameters: {peer} {counts[peer]:,} ({difference:+.3%} of ours, {checked})")
    return lines


def flow_section(args, built, times, peers, compiled):
    sizes = args.sizes
    lines = [
        "## Whole flows",
        f"POWER preset: {sizes.flow_steps} steps, hidden {sizes.hidden}, {sizes.blocks} residual blocks, "
        f"K={sizes.bins}, tail bound {TAIL_BOUND}, {sizes.features} dims, LU + random permutation, unconditional "
        f"transform, no batch norm, dropout 0. Training step: batch {sizes.batch}, forward + backward + Adam step; "
        f"log_prob of {sizes.eval_points} points; sample({sizes.eval_points}). Milliseconds, and in brackets the "
        f"time over {NFLOWS}'s / over {ZUKO}'s (smaller is faster).",
        "",
        "| model | parameters | " + " | ".join(FLOW_OPERATIONS) + " |",
        "| --- | --- | " + " | ".join("---" for _ in FLOW_OPERATIONS) + " |",
    ]
    for model in built:
        cells = [
            f"{times[operation][model.label] * 1e3:.1f}" + over_peers(times[operation], model.label)
            for operation in FLOW_OPERATIONS
        ]
        lines.append(f"| {model.label} | {parameter_count(model.flow):,} | " + " | ".join(cells) + " |")
    lines.append("")
    counts = {model.label: parameter_count(model.flow) for model in built}
    lines += check_parameter_counts(counts, sizes, None if args.quick else PARAMETER_TOLERANCE)
    lines += compiled_lines(compiled)
    nflows, zuko = peers
    if nflows is None or zuko is None:
        lines.append("- peer rows skipped, not installed: pip install -e '.[bench]' (or make bench).")
    lines += [
        f"- {ZUKO}: zuko's GeneralCouplingTransform + MonotonicRQSTransform(bound={TAIL_BOUND:g}), its MLP swapped "
        "for the residual layout in zuko.nn blocks; zuko has no unconditional spline on the untransformed half and "
        "its LULinearTransform no bias, hence its few hundred parameters fewer. Peers run plain Adam, ours fused Adam.",
        "- nflows 0.14's Q-NSF maps vertex logits with softplus + 1e-3 instead of NSF's exp, so it is a different "
        "function from the published Q-NSF (NSF's code, which our Q-NSF reproduces); the timing comparison still "
        "stands.",
    ]
    return lines


# --- a training step's parts --------------------------------------------------------------------------------------


class IdentityMap(nn.Module):
    """Stands in for an element-wise map: outputs = inputs, log-det 0 * sum(params). The log-det keeps the params in
    the graph, so the conditioner's backward runs exactly as in the real step and only the spline goes."""

    def __init__(self, elementwise):
        super().__init__()
        self.num_params = elementwise.num_params
        self.num_size_logits = elementwise.num_size_logits

    def forward(self, inputs, params, inverse=False):
        return inputs, 0.0 * params.sum(-1)


def without_splines(flow):
    """A copy of `flow` whose coupling/autoregressive layers apply IdentityMap instead of their spline."""
    flow = copy.deepcopy(flow)
    for module in list(flow.modules()):
        if hasattr(module, "elementwise"):
            module.elementwise = IdentityMap(module.elementwise)
    return flow


def conditioners_only(model: Model, batch, device):
    """Forward + backward of every conditioner network on the inputs it sees in a real step, nothing else."""
    flow = copy.deepcopy(model.flow)
    recorded = []
    hooks = [
        module.conditioner.register_forward_hook(lambda net, inputs, output: recorded.append((net, inputs)))
        for module in flow.modules()
        if hasattr(module, "conditioner")
    ]
    with torch.no_grad(), model.context(device):
        flow.log_prob(batch)
    for hook in hooks:
        hook.remove()

    def call():
        with model.context(device):
            total = sum(net(*inputs).float().sum() for net, inputs in recorded)
        total.backward()

    return call


def optimizer_only(model: Model, batch, device):
    """An Adam step alone, on gradients from one real backward pass."""
    flow = copy.deepcopy(model.flow)
    optimizer = model.optimizer(flow.parameters(), lr=LEARNING_RATE)
    with model.context(device):
        loss = -flow.log_prob(batch).mean()
    loss.backward()
    return optimizer.step


def tabular_batches(args):
    """An epoch of TensorBatches over a POWER-sized device tensor per call (so the reshuffle is amortised), and
    the number of batches in it."""
    sizes = args.sizes
    stream = TensorBatches(normal_rows(args, sizes.tabular_rows), sizes.batch, seed=args.seed)
    count = sizes.tabular_rows // sizes.batch

    def call():
        for _ in range(count):
            next(stream)

    return call, count


PART_LABELS = {
    "step": "full training step",
    "identity": "step with identity element-wise maps",
    "conditioners": "conditioner networks alone (forward + backward)",
    "optimizer": "Adam step alone",
    "batch": "one batch from TensorBatches (epoch-amortised)",
}


def breakdown_calls(args, model: Model):
    """{part: call} for our LRS (C) flow, and the batches per tabular call (to scale that one to a batch)."""
    device, batch = args.device, normal_rows(args, args.sizes.batch)
    batches, count = tabular_batches(args)
    calls = {
        "step": training_step(dataclasses.replace(model, flow=copy.deepcopy(model.flow)), batch, device),
        "identity": training_step(dataclasses.replace(model, flow=without_splines(model.flow)), batch, device),
        "conditioners": conditioners_only(model, batch, device),
        "optimizer": optimizer_only(model, batch, device),
        "batch": batches,
    }
    return calls, count


def breakdown_parts(times):
    """Milliseconds of each part of a step, derived from the measured calls."""
    step, identity = times["step"], times["identity"]
    conditioners, optimizer = times["conditioners"], times["optimizer"]
    return {
        "element-wise maps (splines): step - identity step": step - identity,
        "conditioner networks (their matmuls, ReLUs, residual adds)": conditioners,
        "Adam step": optimizer,
        "the rest (LU layers, permutations, coupling split/merge, base density, loss): identity step - "
        "conditioners - Adam": identity - conditioners - optimizer,
        "producing the batch (outside the step)": times["batch"],
        "everything beyond the conditioner networks: step - conditioners": step - conditioners,
    }


def breakdown_section(model: Model, times):
    step = times["step"]
    lines = [
        "## A training step's parts",
        f"Our {model.label}, batch as above; the calls below were timed in one interleaved group.",
        "",
        "| measured call | ms |",
        "| --- | --- |",
    ]
    lines += [f"| {PART_LABELS[part]} | {seconds * 1e3:.2f} |" for part, seconds in times.items()]
    lines += ["", "| part of the step | ms | share of the step |", "| --- | --- | --- |"]
    parts = breakdown_parts(times)
    lines += [f"| {part} | {seconds * 1e3:.2f} | {seconds / step:.0%} |" for part, seconds in parts.items()]
    return lines


# --- input pipeline -----------------------------------------------------------------------------------------------


def image_batches(args, dataset, workers):
    """ImageBatches as the image trainer builds them (shuffle, flips, 8-bit dequantisation); a call draws
    image_batches_per_call batches. Worker start-up falls in the warm-up (the workers persist)."""
    sizes = args.sizes
    stream = ImageBatches(
        dataset,
        sizes.image_batch,
        args.device,
        num_bits=8,
        num_workers=workers,
        shuffle=True,
        flip=True,
        seed=args.seed,
    )

    def call():
        for _ in range(sizes.image_batches_per_call):
            next(stream)

    return call


def pipeline_section(args, image_times, tabular_batch, step):
    sizes = args.sizes
    lines = [
        "## Input pipeline",
        f"Tabular: TensorBatches over a random ({sizes.tabular_rows:,}, {sizes.features}) tensor on {args.device}, "
        f"batch {sizes.batch}, from the step breakdown's group. Images: ImageBatches over {sizes.images:,} in-memory "
        f"uint8 images (3, 32, 32), batch {sizes.image_batch}, shuffled, flipped, dequantised to 8 bits on "
        f"{args.device}; {sizes.image_batches_per_call} batches per timed call.",
        "",
        "| stream | ms per batch | items/s | share of the LRS (C) training step |",
        "| --- | --- | --- | --- |",
        f"| tabular, TensorBatches | {tabular_batch * 1e3:.3f} | {sizes.batch / tabular_batch:,.0f} | "
        f"{tabular_batch / step:.1%} |",
    ]
    for workers, seconds in image_times.items():
        per_batch = seconds / sizes.image_batches_per_call
        throughput = sizes.image_batch / per_batch
        lines.append(f"| images, ImageBatches, {workers} workers | {per_batch * 1e3:.3f} | {throughput:,.0f} | — |")
    return lines


def measure_pipeline(args, timer):
    """{workers: median seconds per call} for the image streams with 0 and 2 DataLoader workers."""
    sizes = args.sizes
    images = torch.randint(0, 256, (sizes.images, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator())
    calls = {workers: image_batches(args, TensorImages(images), workers) for workers in (0, 2)}
    return timer.medians(calls)


# --- child processes: the compiled step, memory traffic per allocator setting -------------------------------------

COMPILED = f"{LRS_COUPLING} compiled"


class CompiledFlow(nn.Module):
    """A flow whose log_prob is torch.compile(flow), as the trainer runs it with trainer.compile=true."""

    def __init__(self, flow):
        super().__init__()
        self.flow, self.compiled = flow, torch.compile(flow)

    def log_prob(self, inputs):
        return self.compiled(inputs)


def compiled_child(args, peers, timer) -> dict:
    """Our LRS (C) training step compiled beside its eager self and the peers' RQ-NSF (C): compile seconds (the first
    call), median seconds, and a profile of the compiled step when it misses its target."""
    built = models(args, peers, families=("lrs",), archs=("coupling",), precisions=["fp32"], peer_labels=PEERS)
    built.append(dataclasses.replace(built[0], label=COMPILED, flow=CompiledFlow(copy.deepcopy(built[0].flow))))
    batch = normal_rows(args, args.sizes.batch)
    calls = {model.label: training_step(model, batch, args.device) for model in built}
    compile_seconds = timer.measure(calls[COMPILED]).seconds
    times = timer.medians(calls)
    result = {"compile_seconds": compile_seconds, "times": times}
    if NFLOWS in times and times[COMPILED] / times[NFLOWS] > COMPILED_STEP_OVER_NFLOWS_TARGET:
        result["profile"] = profile_table(calls[COMPILED], args.device)
    return result


def malloc_keeps_large_blocks() -> bool:
    """Whether glibc serves a 24 MiB malloc from the heap rather than a fresh mmap: the sign that an ALLOCATORS
    setting that keeps large buffers mapped holds in this process."""
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = (
        ctypes.c_void_p,
        [ctypes.c_size_t],
        [ctypes.c_void_p],
    )
    address = libc.malloc(24 * 2**20)
    try:
        heaps = [
            line.split()[0] for line in Path("/proc/self/maps").read_text().splitlines() if line.endswith("[heap]")
        ]
        return any(int(start, 16) <= address < int(end, 16) for start, end in (heap.split("-") for heap in heaps))
    finally:
        libc.free(address)


def memory_child(args, peers, timer) -> dict:
    """One flow's training step (args.flow) alone in this process, as a training run has it: page faults over the
    first MEMORY_WARMUP steps, then median seconds, mean faults and system seconds per step after them."""
    holds = malloc_keeps_large_blocks()
    families = tuple(family for family in ("lrs", "rq") if model_label(family, "coupling") == args.flow)
    (model,) = models(args, peers, families, ("coupling",), ["fp32"], peer_labels=(args.flow,))
    call = training_step(model, normal_rows(args, args.sizes.batch), args.device)
    warm_up = sum(timer.measure(call).faults for _ in range(MEMORY_WARMUP))
    sample = Timer(args.repeats, 0, args.device).samples({args.flow: call})[args.flow]
    return {"warm_up_faults": warm_up, "large_blocks_in_heap": holds, **dataclasses.asdict(sample)}


CHILDREN = {"compiled": compiled_child, "memory": memory_child}


def run_child(args, kind, allocator=None, timeout=None, flow=""):
    """(result, "") of `scripts/bench.py --child kind` in a fresh process under `allocator` (default: this run's),
    or (None, why not)."""
    command = [sys.executable, str(SCRIPT), "--child", kind, "--allocator", allocator or args.allocator, "--flow", flow]
    command += ["--repeats", str(args.repeats), "--warmup", str(args.warmup), "--device", str(args.device)]
    command += ["--seed", str(args.seed), "--threads", str(torch.get_num_threads())] + ["--quick"] * args.quick
    environment = {name: value for name, value in os.environ.items() if name != "GLIBC_TUNABLES"}
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment)
    except subprocess.TimeoutExpired:
        return None, f"not done within the {timeout:.0f} s budget (--compile-budget)"
    if run.returncode != 0:
        return None, "child process failed: " + (run.stderr.strip().splitlines() or ["?"])[-1]
    return json.loads(run.stdout.strip().splitlines()[-1]), ""


def compiled_lines(compiled) -> list:
    result, why_not = compiled
    if result is None:
        return [f"- {COMPILED} training step: not measured, {why_not}."]
    times = result["times"]
    return [
        f"- {COMPILED} training step (torch.compile(flow) as trainer.compile=true, own process, interleaved with "
        f"eager {LRS_COUPLING} and the peers): {times[COMPILED] * 1e3:.1f} ms{over_peers(times, COMPILED)}, "
        f"{times[COMPILED] / times[LRS_COUPLING]:.2f}x eager ours (eager there: {times[LRS_COUPLING] * 1e3:.1f} ms"
        f"{over_peers(times, LRS_COUPLING)}); compilation (first call) {result['compile_seconds']:.0f} s."
    ]


def measure_memory(args, peers) -> dict:
    """{(setting, flow label): run_child result}: each flow alone in a fresh process per ALLOCATORS setting (--quick:
    LRS (C) only, the process start-ups dominating)."""
    labels = [LRS_COUPLING, RQ_COUPLING] + [label for label in peer_flows(args.sizes, peers) if label in PEERS]
    labels = labels[:1] if args.quick else labels
    return {
        (setting, label): run_child(args, "memory", allocator=setting, flow=label)
        for setting in ALLOCATORS
        for label in labels
    }


def memory_section(memory) -> list:
    """Per allocator setting and flow: step time, page faults and system time per training step; whether it holds."""
    lines = [
        "## Memory traffic the OS sees",
        f"Training step as above, each flow alone in a fresh process per glibc malloc setting (as a training run "
        f"has it). Page faults (minor + major) and system CPU time: getrusage(RUSAGE_SELF) deltas around each call; "
        f"per step: median ms, mean faults and system ms over the timed steps after {MEMORY_WARMUP} warm-up steps, "
        f"whose faults are counted apart. Holds: a 24 MiB malloc lands in the heap, not a fresh mmap.",
        "",
        *(f"- {setting}: {description}" for setting, description in ALLOCATORS.items()),
        "",
        f"| setting | model | ms per step | page faults per step | system ms per step | page faults, first "
        f"{MEMORY_WARMUP} steps | holds |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (setting, label), (result, why_not) in memory.items():
        if result is None:
            lines.append(f"| {setting} | {label} | {why_not} | | | | |")
            continue
        lines.append(
            f"| {setting} | {label} | {result['seconds'] * 1e3:.1f} | {result['faults']:,.0f} | "
            f"{result['system'] * 1e3:.2f} | {result['warm_up_faults']:,.0f} | "
            f"{'yes' if result['large_blocks_in_heap'] else 'no'} |"
        )
    return lines


# --- targets and profiles -----------------------------------------------------------------------------------------


@dataclasses.dataclass
class Target:
    """One goal: the measured time ratio (None: not measured, for `missing`) at most `limit`, and the operation to
    profile when it is missed."""

    statement: str
    figure: float | None
    limit: float
    profile_label: str
    missing: str = ""
    floor: float | None = None  # the ratio the conditioner networks alone already cost (same networks as the peer's)

    @property
    def passed(self) -> bool | None:
        return None if self.figure is None else self.figure <= self.limit


def ratio(times: dict, numerator, denominator) -> float | None:
    return times[numerator] / times[denominator] if numerator in times and denominator in times else None


def kernel_targets(times):
    backward = ("lrs", "forward+backward", "ours")
    return [
        Target(
            f"LRS kernel forward+backward <= {BACKWARD_OVER_FORWARD_TARGET:g}x its forward (eager)",
            ratio(times, backward, ("lrs", "forward", "ours")),
            BACKWARD_OVER_FORWARD_TARGET,
            "lrs forward+backward, ours eager",
        ),
        Target(
            f"LRS kernel forward+backward <= {ANALYTIC_OVER_AUTOGRAD_TARGET:g}x the same maths differentiated by "
            "autograd",
            ratio(times, backward, ("lrs", "forward+backward", "autograd")),
            ANALYTIC_OVER_AUTOGRAD_TARGET,
            "lrs forward+backward, ours eager",
            "reference not available: spline() has no analytic_gradients yet",
        ),
    ]


def flow_targets(flow_times, breakdown_times, compiled):
    def against(operation, peer, limit):
        group = flow_times[operation]
        conditioners = breakdown_times["conditioners"] if operation == "training step" else None
        return Target(
            f"our {LRS_COUPLING} {operation} <= {limit:g}x {peer}'s (eager)",
            ratio(group, LRS_COUPLING, peer),
            limit,
            f"our {LRS_COUPLING} {operation}",
            f"{peer.split()[0]} not installed",
            conditioners / group[peer] if conditioners and peer in group else None,
        )

    result, why_not = compiled
    return [
        against("training step", NFLOWS, STEP_OVER_NFLOWS_TARGET),
        against("training step", ZUKO, STEP_OVER_ZUKO_TARGET),
        Target(
            f"our {COMPILED} training step <= {COMPILED_STEP_OVER_NFLOWS_TARGET:g}x {NFLOWS}'s",
            None if result is None else ratio(result["times"], COMPILED, NFLOWS),
            COMPILED_STEP_OVER_NFLOWS_TARGET,
            f"our {COMPILED} training step",
            why_not or "nflows not installed",
        ),
        against("log_prob", ZUKO, EVALUATION_OVER_ZUKO_TARGET),
        against("sample", ZUKO, EVALUATION_OVER_ZUKO_TARGET),
        Target(
            f"share of our {LRS_COUPLING} training step beyond the conditioner networks <= "
            f"{BEYOND_CONDITIONERS_TARGET:g}",
            1 - breakdown_times["conditioners"] / breakdown_times["step"],
            BEYOND_CONDITIONERS_TARGET,
            f"our {LRS_COUPLING} training step",
        ),
    ]


def target_lines(targets):
    lines = ["## Targets"]
    for target in targets:
        if target.passed is None:
            lines.append(f"- {target.statement}: SKIPPED ({target.missing})")
        else:
            floor = "" if target.floor is None else f" (conditioner networks alone: {target.floor:.2f}x)"
            lines.append(f"- {target.statement}: {target.figure:.2f}{floor} — {'PASS' if target.passed else 'MISS'}")
    return lines


def profile_table(call, device) -> str:
    """torch.profiler's top-10 ops by self CPU time over three calls after a warm one."""
    call()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as profiler:
        for _ in range(3):
            call()
        if device.type == "cuda":
            torch.cuda.synchronize()
    return profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=10, max_name_column_width=48)


def profile_lines(targets, profiled_calls, device):
    """One profile per operation behind a MISSED target (several targets may share one)."""
    labels = list(dict.fromkeys(target.profile_label for target in targets if target.passed is False))
    lines = ["## Profiles of the MISSED targets' operations"] if labels else []
    for label in labels:
        call = profiled_calls[label]  # a call, or a table profiled in a child process
        table = call if isinstance(call, str) else profile_table(call, device)
        lines += [f"### {label}", "```text", table.rstrip(), "```"]
    return lines


def profiled_calls(kernel_calls_by_key, flow_calls_by_operation, compiled):
    """{profile label: call (or a child's table)} for every operation a target can point at."""
    calls = {
        f"{kind} {operation}, ours {'eager' if implementation == 'ours' else implementation}": call
        for (kind, operation, implementation), call in kernel_calls_by_key.items()
        if implementation != "original"
    }
    for operation, group in flow_calls_by_operation.items():
        for label in (LRS_COUPLING, RQ_COUPLING):
            calls[f"our {label} {operation}"] = group[label]
    if compiled[0] is not None and "profile" in compiled[0]:
        calls[f"our {COMPILED} training step"] = compiled[0]["profile"]
    return calls


# --- report -------------------------------------------------------------------------------------------------------


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def version(package, installed) -> str:
    return metadata.version(package) if installed else "not installed"


def machine_lines(args, peers):
    device = torch.cuda.get_device_name(args.device) if args.device.type == "cuda" else "cpu"
    nflows, zuko = peers
    return [
        "# lrsflows benchmark",
        f"- machine: {platform.platform()}, {cpu_name()}, {os.cpu_count()} CPUs; device: {device}",
        f"- torch {torch.__version__}, {torch.get_num_threads()} threads; nflows "
        f"{version('nflows', nflows)}{' (torch.triangular_solve shim)' if nflows else ''}; zuko {version('zuko', zuko)}",
        f"- allocator, every process and every side of a comparison: {args.allocator}, {ALLOCATORS[args.allocator]} "
        "(the memory-traffic section sets each child's own)",
        f"- precision(s) of our flows: {', '.join(args.precision)}; torch.compile'd kernels: {args.compile}; "
        f"median of {args.repeats} calls after {args.warmup} warm-up, calls compared in a ratio interleaved"
        f"{'; --quick sizes' if args.quick else ''}",
    ]


def main():
    started = time.perf_counter()
    args = parse_args()
    apply_allocator(args.allocator)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    # Every family, direction and grad mode of the compiled kernel is one more graph of the same Python function.
    torch._dynamo.config.recompile_limit = 64
    peers = (import_nflows(), import_zuko())
    timer = Timer(args.repeats, args.warmup, args.device)
    if args.child is not None:
        print(json.dumps(CHILDREN[args.child](args, peers, timer)))
        return

    kernels = kernel_calls(args)
    kernel_times = timer.medians(kernels)
    built = models(args, peers)
    flows = flow_calls(args, built)
    flow_times = {operation: timer.medians(calls) for operation, calls in flows.items()}
    compiled = run_child(args, "compiled", timeout=args.compile_budget) if args.compile else (None, "torch.compile off")
    memory = measure_memory(args, peers)
    lrs = next(model for model in built if model.label == LRS_COUPLING)
    parts, batches_per_call = breakdown_calls(args, lrs)
    breakdown_times = timer.medians(parts)
    breakdown_times["batch"] /= batches_per_call
    image_times = measure_pipeline(args, timer)

    targets = kernel_targets(kernel_times) + flow_targets(flow_times, breakdown_times, compiled)
    sections = [
        machine_lines(args, peers),
        kernel_section(args, kernel_times),
        flow_section(args, built, flow_times, peers, compiled),
        memory_section(memory),
        breakdown_section(lrs, breakdown_times),
        pipeline_section(args, image_times, breakdown_times["batch"], breakdown_times["step"]),
        target_lines(targets),
        profile_lines(targets, profiled_calls(kernels, flows, compiled), args.device),
        [f"Report produced in {time.perf_counter() - started:.0f} s."],
    ]
    text = "\n\n".join("\n".join(lines) for lines in sections if lines)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
