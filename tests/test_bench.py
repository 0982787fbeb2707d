"""Smoke test of the benchmark report (scripts/bench.py --quick): every section comes out, in a few seconds."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench.py"
SECTIONS = ("## Spline kernels", "## Whole flows", "## A training step's parts", "## Input pipeline", "## Targets")


def test_quick_report_has_every_section_and_bf16_rows(tmp_path):
    out = tmp_path / "report.md"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--precision", "bf16", "--threads", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = out.read_text()
    assert report.strip() == run.stdout.strip()
    for section in SECTIONS:
        assert section in report
    assert "| LRS (C) bf16 |" in report and "| Q-NSF (A) |" in report
    targets = report.split("## Targets")[1]
    assert targets.count("PASS") + targets.count("MISS") + targets.count("SKIPPED") >= 10
