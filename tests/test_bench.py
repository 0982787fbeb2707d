"""Smoke test of the benchmark report (scripts/bench.py --quick): every section comes out, in a few seconds; the
peers' parameter counts agree with ours at the POWER preset."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import bench  # noqa: E402

SECTIONS = (
    "## Spline kernels",
    "## Whole flows",
    "## Memory traffic the OS sees",
    "## A training step's parts",
    "## Input pipeline",
    "## Targets",
)
HAS_ZUKO = importlib.util.find_spec("zuko") is not None
NO_ZUKO = "zuko not installed (the bench extra: pip install -e '.[bench]')"


def test_quick_report_has_every_section_and_bf16_rows(tmp_path):
    out = tmp_path / "report.md"
    run = subprocess.run(
        [sys.executable, str(SCRIPTS / "bench.py"), "--quick", "--precision", "bf16", "--threads", "1", "--out", out],
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
    memory = report.split("## Memory traffic the OS sees")[1].split("\n## ")[0]
    for setting in bench.ALLOCATORS:
        assert f"| {setting} | LRS (C) | " in memory
    assert "child process failed" not in memory
    targets = report.split("## Targets")[1].split("\n## ")[0]
    assert targets.count("PASS") + targets.count("MISS") + targets.count("SKIPPED") == 8
    if HAS_ZUKO:
        assert "| zuko RQ-NSF (C) |" in report


def test_mallopt_keeps_large_blocks_in_the_heap():
    """The ctypes variant holds: run in a fresh process, since it changes this process's malloc for good."""
    code = "import bench; assert bench.keep_large_buffers_mapped(); assert bench.malloc_keeps_large_blocks()"
    run = subprocess.run([sys.executable, "-c", code], cwd=SCRIPTS, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]


@pytest.mark.skipif(not HAS_ZUKO, reason=NO_ZUKO)
def test_peer_parameter_counts_agree_at_the_power_preset():
    pytest.importorskip("nflows", reason="nflows not installed (the bench extra: pip install -e '.[bench]')")
    sizes = bench.Sizes()
    bench.import_nflows()
    flows = {
        bench.LRS_COUPLING: bench.our_flow("lrs", "coupling", sizes),
        bench.RQ_COUPLING: bench.our_flow("rq", "coupling", sizes),
        bench.NFLOWS: bench.nflows_flow(bench.NFLOWS_COUPLINGS["rq"], sizes),
        bench.ZUKO: bench.zuko_flow(sizes),
    }
    counts = {label: bench.parameter_count(flow) for label, flow in flows.items()}
    lines = bench.check_parameter_counts(counts, sizes)  # asserts the 1% agreement and zuko's exact shortfall
    assert counts[bench.NFLOWS] == counts[bench.RQ_COUPLING]
    assert any("zuko RQ-NSF (C)" in line and "within 1%" in line for line in lines)


def test_compiled_step_report_times_the_trainers_step_of_a_preset(tmp_path):
    """scripts/bench_compile.py's eager row for the POWER preset (a compiled row costs a minute of compilation; the
    compiled step itself is trained by test_choices' trainer.compile walk)."""
    out = tmp_path / "compile.md"
    command = [sys.executable, str(SCRIPTS / "bench_compile.py"), "--presets", "power", "--modes", "false"]
    run = subprocess.run(
        command + ["--steps", "1", "--threads", "1", "--out", out], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    [row] = [line for line in out.read_text().splitlines() if line.startswith("| POWER LRS (C) |")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1:3] == ["512", "false"] and float(cells[3]) > 0 and cells[5] == "1.00×"
