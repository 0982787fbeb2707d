#!/usr/bin/env bash
# The bench reports on a CUDA machine: (1) fp32 and bf16 autocast flows, torch.compile'd kernels, a kernel batch
# large enough to fill the GPU -> outputs/bench/report-gpu.md; (2) steps/s of the trainer's step eager, compiled
# and with CUDA graphs (trainer.compile=false|true|reduce-overhead) for the POWER and CIFAR-10 presets, with
# compilation times and break-even steps -> outputs/bench/compile-gpu.md. About 10 minutes on one GPU.
# Run from the repository root after `make setup` (or with any Python that has lrsflows and nflows 0.14):
#   bash scripts/bench_gpu.sh [extra bench.py options]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(test -x .venv/bin/python && echo .venv/bin/python || echo python3)}
"$PYTHON" -c 'import nflows, zuko' 2>/dev/null || "$PYTHON" -m pip install --quiet -e '.[bench]'
"$PYTHON" scripts/bench_compile.py --device cuda --presets power cifar10 --modes false true reduce-overhead \
    --out outputs/bench/compile-gpu.md
"$PYTHON" scripts/bench.py --device cuda --precision fp32 bf16 --kernel-inputs 1048576 \
    --out outputs/bench/report-gpu.md "$@"
