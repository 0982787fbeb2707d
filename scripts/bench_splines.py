"""CPU benchmark of our spline functions against the original code's formulation.

Run: python scripts/bench_splines.py [--n 65536 --dims 8 --bins 8 --repeats 5 --warmup 1 --threads T --out FILE]

For each family (lrs, rq, quadratic) it times forward, inverse and forward+backward (gradient of
outputs.sum() + logabsdet.sum() w.r.t. inputs and params) in float32, and the same for the
original LRS and RQ formulations (scripts/original_splines.py; the original has no separate
quadratic baseline here). All calls (ours, original, every family and op) are timed round-robin
in one process, so drift in machine load hits all alike; the median per call is reported.
Prints a Markdown report with PASS/MISS against the targets; --out also writes it to a file.
"""

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from lrsflows.splines import num_params, spline
from original_splines import original_lrs, original_rq

FAMILIES = ("lrs", "rq", "quadratic")
ORIGINALS = {"lrs": original_lrs, "rq": original_rq}
OPERATIONS = ("forward", "inverse", "forward+backward")
TAIL_BOUND = 3.0
INPUT_HALF_RANGE = 3.5
SPEED_UP_TARGET = 3.0
INVERSE_OVER_FORWARD_TARGET = 1.1


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=65536, help="inputs per batch")
    parser.add_argument("--dims", type=int, default=8, help="dimensions per input")
    parser.add_argument("--bins", type=int, default=8, help="spline bins K")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per implementation and operation")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls first")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown report here")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def ours(kind):
    def transform(inputs, params, inverse):
        return spline(kind, inputs, params, inverse=inverse, tail_bound=TAIL_BOUND)

    return transform


def original(kind):
    def transform(inputs, params, inverse):
        return ORIGINALS[kind](inputs, params, inverse=inverse, tail_bound=TAIL_BOUND)

    return transform


def make_call(transform, operation, inputs, params):
    """A zero-argument call running one operation; forward+backward differentiates w.r.t. inputs and params."""
    if operation == "forward+backward":
        inputs = inputs.clone().requires_grad_(True)
        params = params.clone().requires_grad_(True)

        def call():
            outputs, logabsdet = transform(inputs, params, False)
            torch.autograd.grad(outputs.sum() + logabsdet.sum(), [inputs, params])

        return call

    inverse = operation == "inverse"

    def call():
        transform(inputs, params, inverse)

    return call


def seconds(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def median_times(calls, repeats, warmup):
    """Median seconds per call for each of `calls`, timed round-robin so they share machine conditions."""
    for _ in range(warmup):
        for call in calls:
            call()
    samples = [[] for _ in calls]
    for _ in range(repeats):
        for call, times in zip(calls, samples):
            times.append(seconds(call))
    return [statistics.median(times) for times in samples]


def measure(args):
    """{(family, operation): (our seconds, original seconds or None)}.

    Every call of every family and operation is timed in one round-robin, so the speed-ups and the
    inverse/forward ratio compare calls made under the same machine load.
    """
    generator = torch.Generator().manual_seed(args.seed)
    labels, calls = [], []
    for kind in FAMILIES:
        inputs = (2 * torch.rand(args.n, args.dims, generator=generator) - 1) * INPUT_HALF_RANGE
        params = torch.randn(args.n, args.dims, num_params(kind, args.bins), generator=generator)
        implementations = {"ours": ours(kind)} | ({"original": original(kind)} if kind in ORIGINALS else {})
        for operation in OPERATIONS:
            for implementation, transform in implementations.items():
                labels.append((kind, operation, implementation))
                calls.append(make_call(transform, operation, inputs, params))
    times = dict(zip(labels, median_times(calls, args.repeats, args.warmup)))
    return {
        (kind, operation): (times[kind, operation, "ours"], times.get((kind, operation, "original")))
        for kind in FAMILIES
        for operation in OPERATIONS
    }


def machine_info():
    return [
        f"- platform: {platform.platform()} ({platform.processor() or platform.machine()})",
        f"- CPUs: {os.cpu_count()}, torch {torch.__version__}, torch threads: {torch.get_num_threads()}",
    ]


def rate(elements, seconds_per_call):
    return f"{elements / seconds_per_call / 1e6:.1f} M/s ({seconds_per_call * 1e3:.1f} ms)"


def table(results, elements):
    lines = [
        "| family | op | ours elements/s | original elements/s | speed-up (original/ours) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for (kind, operation), (our_time, original_time) in results.items():
        original_cell = "—" if original_time is None else rate(elements, original_time)
        speed_up = "—" if original_time is None else f"{original_time / our_time:.2f}x"
        lines.append(f"| {kind} | {operation} | {rate(elements, our_time)} | {original_cell} | {speed_up} |")
    return lines


def verdict(passed):
    return "PASS" if passed else "MISS"


def targets(results):
    lines = []
    for operation in ("forward", "inverse"):
        our_time, original_time = results["lrs", operation]
        speed_up = original_time / our_time
        lines.append(
            f"- LRS {operation} >= {SPEED_UP_TARGET:g}x faster than the original: "
            f"{speed_up:.2f}x — {verdict(speed_up >= SPEED_UP_TARGET)}"
        )
    inverse_over_forward = results["lrs", "inverse"][0] / results["lrs", "forward"][0]
    lines.append(
        f"- our LRS inverse time <= {INVERSE_OVER_FORWARD_TARGET:g}x our LRS forward time: "
        f"{inverse_over_forward:.2f}x — {verdict(inverse_over_forward <= INVERSE_OVER_FORWARD_TARGET)}"
    )
    return lines


def report(args, results):
    elements = args.n * args.dims
    header = (
        f"N={args.n} inputs x {args.dims} dims = {elements} elements, K={args.bins}, float32, logits N(0,1), "
        f"inputs U[-{INPUT_HALF_RANGE}, {INPUT_HALF_RANGE}], tail bound {TAIL_BOUND}; "
        f"median of {args.repeats} calls after {args.warmup} warm-up, all calls interleaved."
    )
    sections = [
        ["# Spline benchmark (CPU)"],
        machine_info(),
        [header],
        table(results, elements),
        ["## Targets"],
        targets(results),
    ]
    return "\n\n".join("\n".join(lines) for lines in sections)


def main():
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    text = report(args, measure(args))
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
