#!/usr/bin/env bash
# The bench report on a CUDA machine: fp32 and bf16 autocast flows, torch.compile'd kernels, a kernel batch
# large enough to fill the GPU. Writes outputs/bench/report-gpu.md (under 5 minutes on one GPU).
# Run from the repository root after `make setup` (or with any Python that has lrsflows and nflows 0.14):
#   bash scripts/bench_gpu.sh [extra bench.py options]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(test -x .venv/bin/python && echo .venv/bin/python || echo python3)}
"$PYTHON" -c 'import nflows' 2>/dev/null || "$PYTHON" -m pip install --quiet -e '.[bench]'
"$PYTHON" scripts/bench.py --device cuda --precision fp32 bf16 --kernel-inputs 1048576 \
    --out outputs/bench/report-gpu.md "$@"
