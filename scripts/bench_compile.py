"""The compiled training step of the paper presets (make bench-compile; bench_gpu.sh on a GPU): per preset and
trainer.compile setting, ms per step and steps/s, compilation time from a cold and from a warm inductor cache, the
break-even step count and its share of the preset's max_steps; the default pays where that share is ≤ 2%.

Run: python scripts/bench_compile.py [--device cpu|cuda] [--presets power mnist cifar10] [--modes false true
     reduce-overhead] [--image-batch B] [--steps N] [--out FILE]

Each measurement is a fresh process (`--child`) running the trainer's own step (Trainer._update: autocast, backward,
clipping, fused Adam, schedule) on random batches of the preset's shape: the first step's time minus a step's is
the compilation; cold has an empty TORCHINDUCTOR_CACHE_DIR, warm reuses the one the cold process filled (as a
resumed or repeated run does).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Preset: its overrides, example shape and a name for the report. CPU defaults: POWER and MNIST (CIFAR-10's step
# takes seconds on 2 cores); bench_gpu.sh runs POWER and CIFAR-10.
PRESETS = {
    "power": (["experiment=paper/power", "model=lrs", "model.arch=coupling"], (6,), "POWER LRS (C)"),
    "mnist": (["experiment=paper/mnist", "model=lrs"], (1, 28, 28), "MNIST LRS"),
    "cifar10": (["experiment=paper/cifar10", "model=lrs"], (3, 32, 32), "CIFAR-10 LRS"),
}
PAYBACK_SHARE = 0.02  # compile by default where the break-even step count is at most this share of the run


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--presets", nargs="+", default=["power", "mnist"], choices=list(PRESETS))
    parser.add_argument("--modes", nargs="+", default=["false", "true"], help="trainer.compile settings")
    parser.add_argument("--image-batch", type=int, help="images per step (default: the preset's batch size)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps after the first two")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/compile.md"))
    parser.add_argument("--child", nargs=2, metavar=("PRESET", "MODE"), help=argparse.SUPPRESS)
    return parser.parse_args()


def child(args) -> dict:
    """One preset under one trainer.compile setting in this process: seconds of each step."""
    import torch
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from lrsflows import cli
    from lrsflows import config as schema
    from lrsflows.train import kinds
    from lrsflows.train.distributed import Process
    from lrsflows.train.trainer import Trainer

    preset, mode = args.child
    overrides, shape, _ = PRESETS[preset]
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    schema.register_schema()
    settings = [f"trainer.compile={mode}", f"trainer.device={args.device}"]
    with initialize_config_dir(config_dir=str(cli.CONFIG_DIR), version_base="1.3"):
        config = OmegaConf.to_object(compose("config", overrides=overrides + settings))
    batch_size = args.image_batch if len(shape) == 3 and args.image_batch else config.trainer.batch_size
    torch.manual_seed(0)
    flow = kinds.build_flow(config, shape, device)
    trainer = Trainer(flow, iter(()), list, config.trainer, Path(tempfile.mkdtemp()), None, {}, Process(0, 1, device))
    batch = torch.rand(batch_size, *shape, device=device) * (256 if len(shape) == 3 else 1)
    seconds = []
    for _ in range(args.steps + 2):
        start = time.perf_counter()
        trainer._update(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return {"seconds": seconds, "batch": batch_size, "max_steps": config.trainer.max_steps}


def run_child(args, preset, mode, cache: Path) -> dict:
    command = [sys.executable, __file__, "--child", preset, mode, "--device", args.device, "--steps", str(args.steps)]
    command += ["--image-batch", str(args.image_batch)] * bool(args.image_batch)
    command += ["--threads", str(args.threads)] * bool(args.threads)
    environment = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache)}
    run = subprocess.run(command, capture_output=True, text=True, env=environment)
    if run.returncode != 0:
        raise SystemExit(f"{preset} with trainer.compile={mode} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def report(args) -> list:
    lines = [
        "# The compiled training step of the paper presets",
        "",
        f"Device {args.device}; the trainer's step (trainer.compile=<mode>) on random batches; ms per step: median "
        f"of {args.steps} steps after two; compilation: first step minus a step, cold (empty inductor cache) and warm "
        f"(the cache a previous run filled); break-even: cold compilation / time saved per step, as a share of the "
        f"preset's max_steps (the default compiles where it is ≤ {PAYBACK_SHARE:.0%}).",
        "",
        "| preset | batch | trainer.compile | ms per step | steps/s | speed-up | compile cold s | compile warm s | "
        "break-even steps | share of the run |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for preset in args.presets:
        eager = None
        for mode in args.modes:
            with tempfile.TemporaryDirectory() as cache:
                runs = [run_child(args, preset, mode, Path(cache)) for _ in range(1 if mode == "false" else 2)]
            step = statistics.median(runs[0]["seconds"][2:])
            row = [PRESETS[preset][2], str(runs[0]["batch"]), mode, f"{step * 1e3:.1f}", f"{1 / step:.1f}"]
            if mode == "false":
                eager = step
                lines.append("| " + " | ".join(row + ["1.00×", "—", "—", "—", "—"]) + " |")
                continue
            cold, warm = (sum(run["seconds"][:2]) - 2 * step for run in runs)
            saved = (eager - step) if eager else 0.0
            speed_up = f"{eager / step:.2f}×" if eager else "—"
            if saved > 0:
                steps = cold / saved
                share = steps / runs[0]["max_steps"]
                verdict = f"{share:.2%} of {runs[0]['max_steps']:,} ({'pays' if share <= PAYBACK_SHARE else 'no'})"
                payback = f"{steps:,.0f}"
            else:
                payback, verdict = "never", "no"
            lines.append("| " + " | ".join(row + [speed_up, f"{cold:.0f}", f"{warm:.0f}", payback, verdict]) + " |")
            print(lines[-1], flush=True)
    return lines


def main():
    args = parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    lines = report(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
