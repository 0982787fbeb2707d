"""A multirun as a researcher runs it: job k/N with an ETA, a SIGTERM that every job honours, the command it prints
continuing the sweep (unfinished jobs resumed from last.pt, finished ones skipped), the table and report at the end.
Real subprocesses through the parallel launcher, as `make demo` runs."""

import shlex
import signal
import subprocess
import sys
import time

from test_cli import TINY_2D, environment, start

SWEEP = ["-m", *TINY_2D, "hydra/launcher=parallel", "model=lrs"]
LONG_JOBS = ["dataset=checkerboard,rings,eight_gaussians", "trainer.max_steps=600", "trainer.val_every=100"]


def continuing_command(output: str) -> list[str]:
    """The command the sweep's last line about continuing gives, as argv for this Python."""
    line = next(line for line in reversed(output.splitlines()) if "continue the sweep" in line)
    words = shlex.split(line[line.index("python -m lrsflows ") :])
    return [sys.executable, *words[1:]]


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_stopped_sweep_continues_with_the_command_it_prints(tmp_path):
    sweep_dir = tmp_path / "sweep"
    process = start([*SWEEP, *LONG_JOBS, "trainer.checkpoint_every=100", f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path)
    checkpoints = lambda: list(sweep_dir.rglob("checkpoints/last.pt"))  # noqa: E731
    wait_for(lambda: len(checkpoints()) >= 2)
    process.send_signal(signal.SIGTERM)  # the launcher only: its jobs stop through the sweep's stop request
    stdout, stderr = process.communicate(timeout=120)
    output = stdout + stderr
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "Traceback" not in output
    assert "job 1/3" in output and "job 2/3" in output
    assert not list(sweep_dir.rglob("results.json"))  # stopped before any job finished
    command = continuing_command(output)
    assert f"hydra.sweep.dir={sweep_dir.absolute()}" in command and command[-1] == "trainer.resume=true"

    continued = subprocess.run(command, cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=300)
    output = continued.stdout + continued.stderr
    assert continued.returncode == 0, output
    assert output.count("resuming ") == 2  # the two jobs that were running, from their last.pt
    assert len(list(sweep_dir.rglob("results.json"))) == 3
    assert "3 of 3 ended" in output and "left" in output
    assert "| LRS" in output and (sweep_dir / "report.html").is_file()

    again = subprocess.run(command, cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (again.stdout + again.stderr).count("(results.json): skipped") == 3


def test_a_failed_job_is_listed_and_the_sweep_goes_on(tmp_path):
    """One job's bad setting fails that job alone; the others finish; the sweep lists it with the command."""
    sweep_dir = tmp_path / "sweep"
    completed = subprocess.run(
        [sys.executable, "-m", "lrsflows", *SWEEP, "dataset=rings", "trainer.max_steps=40", "trainer.val_every=20"]
        + ["model.num_bins=4,1000", f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 1, output
    assert "Traceback" not in output
    assert len(list(sweep_dir.rglob("results.json"))) == 1
    assert "error: model.min_bin_width" in output and "1 of 2 jobs finished" in output
    assert "model.num_bins=4,1000" in continuing_command(output)


def test_a_signal_to_a_job_of_the_basic_launcher_stops_the_whole_sweep(tmp_path):
    """Hydra's own launcher runs jobs in its process: the signal lands in the running job, which stops with its
    last.pt, and the jobs after it are skipped, not started."""
    sweep_dir = tmp_path / "sweep"
    basic = [argument for argument in SWEEP if argument != "hydra/launcher=parallel"]
    process = start([*basic, *LONG_JOBS, "trainer.checkpoint_every=100", f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path)
    wait_for(lambda: any(sweep_dir.rglob("checkpoints/last.pt")))
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    output = stdout + stderr
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "job 1/3 stopped" in output and "job 2/3 skipped" in output and "job 3/3 skipped" in output
    assert len(list(sweep_dir.rglob("checkpoints/last.pt"))) == 1
    assert "0 of 3 jobs finished (1 unfinished or failed, listed above; 2 not started)" in output
