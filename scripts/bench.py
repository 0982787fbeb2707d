"""Benchmark report (make bench): spline kernels, whole flows beside nflows 0.14, a step's cost, input pipeline.

Run: python scripts/bench.py [--quick] [--no-compile] [--threads T] [--device cpu|cuda] [--precision fp32 [bf16]]
                             [--repeats R] [--warmup W] [--kernel-inputs N] [--out FILE]

Sections:
- Spline kernels: forward, inverse and forward+backward (gradient of outputs.sum() + logabsdet.sum() w.r.t.
  inputs and params) of each family, ours eager and torch.compile'd (dynamic=False, compiled during warm-up)
  beside the original formulation, scripts/original_splines.py: the LRS fork's for lrs and rq, NSF's quadratic
  spline (the code behind the published Q-NSF numbers) for quadratic.
- Whole flows at the POWER preset: a training step (forward, backward, Adam step), log_prob of 10,000 points
  and sample(10,000) for our LRS, RQ-NSF and Q-NSF, coupling (C) and autoregressive (A), and nflows 0.14's
  RQ-NSF (C) and Q-NSF (C) built by the NSF uci.py recipe with the same architecture (skipped without nflows:
  pip install -e '.[bench]'). --precision bf16 adds our flows under bf16 autocast (nflows stays fp32). nflows
  0.14's Q-NSF maps vertex logits with softplus + 1e-3 instead of NSF's exp: a different function from the
  published Q-NSF (and from ours), timed beside it for speed only.
- Step breakdown: our LRS (C) step beside the same step with an identity element-wise map, the conditioner
  networks alone, the Adam step alone and batch production alone, and the share of the step each part costs.
- Input pipeline: time per batch of TensorBatches (POWER-sized tensor) and ImageBatches (CIFAR-sized uint8
  images, 0 and 2 workers).
- Targets, PASS or MISS, then a torch.profiler top-10 table of the operation behind each MISSED one.

Every figure is the median over --repeats calls after --warmup untimed ones. The calls a ratio compares are timed
round-robin in one group (Timer.medians), so drift in machine load (other processes) hits both sides alike.
nflows 0.14 calls torch.triangular_solve, deprecated in torch 2.x: `import_nflows` swaps in torch.linalg's
solver at import (in this process only; site-packages stays as installed).
"""

import argparse
import copy
import dataclasses
import os
import platform
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
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
EAGER_SPEED_UP_TARGET = 3.0
COMPILED_SPEED_UP_TARGET = 5.0
INVERSE_OVER_FORWARD_TARGET = 1.1
STEP_OVER_NFLOWS_TARGET = 0.8
LOG_PROB_OVER_NFLOWS_TARGET = 0.7
SAMPLE_OVER_NFLOWS_TARGET = 0.7
BEYOND_CONDITIONERS_TARGET = 0.15


def model_label(family: str, arch: str) -> str:
    """A flow's row label: its family's table label and the arch tag, "LRS (C)"."""
    return f"{SPLINE_FAMILIES[family].label} ({ARCH_TAGS[arch]})"


LRS_COUPLING = model_label("lrs", "coupling")
RQ_COUPLING = model_label("rq", "coupling")
REFERENCE = f"nflows {RQ_COUPLING}"


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
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown report here")
    parser.add_argument("--seed", type=int, default=0)
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


class Timer:
    """The one timing helper: median seconds per call of a group of calls run round-robin after a warm-up."""

    def __init__(self, repeats: int, warmup: int, device: torch.device):
        self.repeats, self.warmup = repeats, warmup
        self.synchronize = torch.cuda.synchronize if device.type == "cuda" else lambda: None

    def seconds(self, call) -> float:
        self.synchronize()
        start = time.perf_counter()
        call()
        self.synchronize()
        return time.perf_counter() - start

    def medians(self, calls: dict) -> dict:
        """{label: median seconds}; interleaving the calls gives every one the same share of machine noise."""
        for _ in range(self.warmup):
            for call in calls.values():
                call()
        samples = {label: [] for label in calls}
        for _ in range(self.repeats):
            for label, call in calls.items():
                samples[label].append(self.seconds(call))
        return {label: statistics.median(times) for label, times in samples.items()}


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


# --- spline kernels -----------------------------------------------------------------------------------------------


def spline_settings(sizes: Sizes) -> SplineSettings:
    return SplineSettings(num_bins=sizes.bins, tail_bound=TAIL_BOUND)


def our_kernel(kind, settings):
    def transform(inputs, params, inverse):
        return spline(kind, inputs, params, inverse, settings)

    return transform


def original_kernel(function):
    def transform(inputs, params, inverse):
        return function(inputs, params, inverse=inverse, tail_bound=TAIL_BOUND)

    return transform


ORIGINALS = {"lrs": original_lrs, "rq": original_rq, "quadratic": original_quadratic}


def kernel_implementations(kind, settings, compile_ours):
    """{'ours', 'compiled', 'original'} for one family, leaving out what this run does not have."""
    implementations = {"ours": our_kernel(kind, settings)}
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
            for operation in KERNEL_OPERATIONS:
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
        "Speed-ups are time ratios, larger is faster.",
        "",
        "| family | op | ours eager | ours compiled | original eager | ours/original eager | "
        "compiled/original eager | compiled/eager ours |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for kind in FAMILIES:
        for operation in KERNEL_OPERATIONS:
            ours, compiled, original = (times.get((kind, operation, name)) for name in ("ours", "compiled", "original"))
            cells = [rate(elements, seconds) if seconds else "—" for seconds in (ours, compiled, original)]
            speed_ups = [ratio_cell(original, ours), ratio_cell(original, compiled), ratio_cell(ours, compiled)]
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


def models(args, nflows):
    """Our six flows per precision, then nflows' two; each built from the same seed."""
    built = []
    for precision in args.precision:
        suffix = "" if precision == "fp32" else f" {precision}"
        for family in FAMILIES:
            for arch in ARCH_TAGS:
                torch.manual_seed(args.seed)
                flow = our_flow(family, arch, args.sizes).to(args.device)
                built.append(Model(model_label(family, arch) + suffix, flow, AUTOCAST_DTYPES[precision]))
    if nflows is not None:
        for family, coupling in NFLOWS_COUPLINGS.items():
            torch.manual_seed(args.seed)
            flow = nflows_flow(coupling, args.sizes).to(args.device)
            built.append(Model(f"nflows {model_label(family, 'coupling')}", flow, optimizer=torch.optim.Adam))
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


def flow_section(args, built, times, nflows):
    sizes = args.sizes
    lines = [
        "## Whole flows",
        f"POWER preset: {sizes.flow_steps} steps, hidden {sizes.hidden}, {sizes.blocks} residual blocks, "
        f"K={sizes.bins}, tail bound {TAIL_BOUND}, {sizes.features} dims, LU + random permutation, unconditional "
        f"transform, no batch norm, dropout 0. Training step: batch {sizes.batch}, forward + backward + Adam step; "
        f"log_prob of {sizes.eval_points} points; sample({sizes.eval_points}). Milliseconds, and in brackets the "
        f"time over {REFERENCE}'s (smaller is faster).",
        "",
        "| model | parameters | " + " | ".join(FLOW_OPERATIONS) + " |",
        "| --- | --- | " + " | ".join("---" for _ in FLOW_OPERATIONS) + " |",
    ]
    for model in built:
        cells = []
        for operation in FLOW_OPERATIONS:
            group = times[operation]
            relative = f" ({group[model.label] / group[REFERENCE]:.2f}x)" if REFERENCE in group else ""
            cells.append(f"{group[model.label] * 1e3:.1f}{relative}")
        lines.append(f"| {model.label} | {parameter_count(model.flow):,} | " + " | ".join(cells) + " |")
    lines.append("")
    if nflows is None:
        lines.append("nflows rows skipped: nflows is not installed (pip install -e '.[bench]', or make bench).")
        return lines
    counts = {model.label: parameter_count(model.flow) for model in built}
    for label in (model_label(family, "coupling") for family in NFLOWS_COUPLINGS):
        ours, theirs = counts[label], counts[f"nflows {label}"]
        verdict = "equal" if ours == theirs else "DIFFERENT"
        lines.append(f"- parameters, {label}: ours {ours:,}, nflows {theirs:,} — {verdict}")
    lines.append(
        "- nflows 0.14's Q-NSF maps vertex logits with softplus + 1e-3 instead of NSF's exp, so it is a different "
        "function from the published Q-NSF (NSF's code, which our Q-NSF reproduces); the timing comparison still "
        "stands."
    )
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


# --- targets and profiles -----------------------------------------------------------------------------------------


@dataclasses.dataclass
class Target:
    """One goal: the measured figure (None: not measured, for `missing`) against `limit`, and the operation to
    profile when it is missed."""

    statement: str
    figure: float | None
    limit: float
    at_least: bool  # PASS when figure >= limit (a speed-up); otherwise when figure <= limit (a time ratio)
    profile_label: str
    missing: str = ""

    @property
    def passed(self) -> bool | None:
        if self.figure is None:
            return None
        return self.figure >= self.limit if self.at_least else self.figure <= self.limit


def kernel_targets(times):
    def speed_up(operation, implementation):
        ours = times.get(("lrs", operation, implementation))
        return None if ours is None else times["lrs", operation, "original"] / ours

    eager = [
        Target(
            f"LRS {operation} >= {EAGER_SPEED_UP_TARGET:g}x faster than the original (eager)",
            speed_up(operation, "ours"),
            EAGER_SPEED_UP_TARGET,
            True,
            f"lrs {operation}, ours eager",
        )
        for operation in ("forward", "inverse")
    ]
    inverse_over_forward = Target(
        f"our LRS inverse time <= {INVERSE_OVER_FORWARD_TARGET:g}x our LRS forward time",
        times["lrs", "inverse", "ours"] / times["lrs", "forward", "ours"],
        INVERSE_OVER_FORWARD_TARGET,
        False,
        "lrs inverse, ours eager",
    )
    compiled = [
        Target(
            f"LRS {operation}, compiled ours >= {COMPILED_SPEED_UP_TARGET:g}x faster than the eager original",
            speed_up(operation, "compiled"),
            COMPILED_SPEED_UP_TARGET,
            True,
            f"lrs {operation}, ours compiled",
            "torch.compile off",
        )
        for operation in KERNEL_OPERATIONS
    ]
    return eager + [inverse_over_forward] + compiled


def flow_targets(flow_times, breakdown_times):
    def over_reference(operation, label):
        group = flow_times[operation]
        return group[label] / group[REFERENCE] if REFERENCE in group else None

    def against_nflows(label, operation, limit):
        return Target(
            f"our {label} {operation} <= {limit:g}x {REFERENCE}'s",
            over_reference(operation, label),
            limit,
            False,
            f"our {label} {operation}",
            "nflows not installed",
        )

    sampling = flow_times["sample"]
    return [
        against_nflows(label, operation, limit)
        for label in (LRS_COUPLING, RQ_COUPLING)
        for operation, limit in (("training step", STEP_OVER_NFLOWS_TARGET), ("log_prob", LOG_PROB_OVER_NFLOWS_TARGET))
    ] + [
        Target(
            f"our {LRS_COUPLING} sample <= our {RQ_COUPLING} sample",
            sampling[LRS_COUPLING] / sampling[RQ_COUPLING],
            1.0,
            False,
            f"our {LRS_COUPLING} sample",
        ),
        against_nflows(LRS_COUPLING, "sample", SAMPLE_OVER_NFLOWS_TARGET),
        Target(
            f"share of our {LRS_COUPLING} training step beyond the conditioner networks <= "
            f"{BEYOND_CONDITIONERS_TARGET:g}",
            1 - breakdown_times["conditioners"] / breakdown_times["step"],
            BEYOND_CONDITIONERS_TARGET,
            False,
            f"our {LRS_COUPLING} training step",
        ),
    ]


def target_lines(targets):
    lines = ["## Targets"]
    for target in targets:
        if target.passed is None:
            lines.append(f"- {target.statement}: SKIPPED ({target.missing})")
        else:
            lines.append(f"- {target.statement}: {target.figure:.2f} — {'PASS' if target.passed else 'MISS'}")
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
        lines += [f"### {label}", "```text", profile_table(profiled_calls[label], device).rstrip(), "```"]
    return lines


def profiled_calls(kernel_calls_by_key, flow_calls_by_operation):
    """{profile label: call} for every operation a target can point at."""
    calls = {
        f"{kind} {operation}, ours {'eager' if implementation == 'ours' else implementation}": call
        for (kind, operation, implementation), call in kernel_calls_by_key.items()
        if implementation != "original"
    }
    for operation, group in flow_calls_by_operation.items():
        for label in (LRS_COUPLING, RQ_COUPLING):
            calls[f"our {label} {operation}"] = group[label]
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


def machine_lines(args, nflows):
    device = torch.cuda.get_device_name(args.device) if args.device.type == "cuda" else "cpu"
    return [
        "# lrsflows benchmark",
        f"- machine: {platform.platform()}, {cpu_name()}, {os.cpu_count()} CPUs; device: {device}",
        f"- torch {torch.__version__}, {torch.get_num_threads()} threads; nflows: "
        f"{metadata.version('nflows') + ' (torch.triangular_solve shim)' if nflows else 'not installed'}",
        f"- precision(s) of our flows: {', '.join(args.precision)}; torch.compile'd kernels: {args.compile}; "
        f"median of {args.repeats} calls after {args.warmup} warm-up, calls compared in a ratio interleaved"
        f"{'; --quick sizes' if args.quick else ''}",
    ]


def main():
    started = time.perf_counter()
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    # Every family, direction and grad mode of the compiled kernel is one more graph of the same Python function.
    torch._dynamo.config.recompile_limit = 64
    nflows = import_nflows()
    timer = Timer(args.repeats, args.warmup, args.device)

    kernels = kernel_calls(args)
    kernel_times = timer.medians(kernels)
    built = models(args, nflows)
    flows = flow_calls(args, built)
    flow_times = {operation: timer.medians(calls) for operation, calls in flows.items()}
    lrs = next(model for model in built if model.label == LRS_COUPLING)
    parts, batches_per_call = breakdown_calls(args, lrs)
    breakdown_times = timer.medians(parts)
    breakdown_times["batch"] /= batches_per_call
    image_times = measure_pipeline(args, timer)

    targets = kernel_targets(kernel_times) + flow_targets(flow_times, breakdown_times)
    sections = [
        machine_lines(args, nflows),
        kernel_section(args, kernel_times),
        flow_section(args, built, flow_times, nflows),
        breakdown_section(lrs, breakdown_times),
        pipeline_section(args, image_times, breakdown_times["batch"], breakdown_times["step"]),
        target_lines(targets),
        profile_lines(targets, profiled_calls(kernels, flows), args.device),
        [f"Report produced in {time.perf_counter() - started:.0f} s."],
    ]
    text = "\n\n".join("\n".join(lines) for lines in sections if lines)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
