"""A multirun as a researcher follows it: "job k/N" with the sweep's elapsed time and ETA, a stop that every job
honours (each running one saves its last.pt), and at the end the sweep's table, its unfinished or failed jobs and
the exact command that continues it.

The sweep's state lives in files under its folder, because jobs may run in other processes (the parallel launcher):
sweep.json (job count, start, the continuing command), jobs/<k> (one file per ended job) and STOP (a stop request,
polled by every job's training loop: lrsflows.stop_request)."""

import json
import logging
import os
import shlex
import signal
import sys
import time
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from . import stop_request
from .errors import invocation

log = logging.getLogger(__name__)
STATE_FILE = "sweep.json"
STOP_FILE = "STOP"
ENDED_DIR = "jobs"
# A job's outcome, as cli.main returns it (None: it finished) and jobs/<k> records it.
FINISHED, SKIPPED, STOPPED, FAILED = "finished", "skipped", "stopped", "failed"


def stop_file(sweep_dir: Path) -> Path:
    """Where a stop request for the sweep's jobs appears (stop_request.request): running jobs stop after their
    current step with last.pt written, jobs yet to start are skipped."""
    return sweep_dir / STOP_FILE


def continuing_command(sweep_dir: Path, arguments: list[str]) -> str:
    """This sweep's command with its folder named and trainer.resume=true: rerun, it skips the finished jobs and
    resumes the others from their last.pt."""
    kept = [arg for arg in arguments if not arg.startswith(("hydra.sweep.dir=", "trainer.resume="))]
    if not {"-m", "--multirun"} & set(kept):
        kept.insert(0, "-m")
    words = [*invocation(), *kept, f"hydra.sweep.dir={sweep_dir.absolute()}", "trainer.resume=true"]
    return shlex.join(words)


def runs_in_launcher(sweep_dir: Path) -> bool:
    """Whether this process is the sweep's launcher (the basic launcher runs its jobs in it): a signal to a job
    here is a signal to the sweep. A job elsewhere (a joblib worker, a cluster job) stops alone; there a stop of the
    sweep reaches the launcher itself."""
    return _state(sweep_dir)["launcher_pid"] == os.getpid()


def continuing_command_of(sweep_dir: Path) -> str:
    """The continuing command on_multirun_start recorded for the sweep in `sweep_dir`."""
    return _state(sweep_dir)["command"]


def job_count(config: DictConfig) -> int:
    """How many jobs the basic sweeper makes of the sweep's parameters and command-line overrides."""
    params = config.hydra.sweeper.get("params") or {}
    overrides = [f"{key}={value}" for key, value in params.items()] + list(config.hydra.overrides.task)
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    parsed = OverridesParser.create().parse_overrides(overrides)
    return sum(len(batch) for batch in BasicSweeper.split_arguments(parsed, None))


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


class SweepProgress(Callback):
    """Hydra callback (conf/config.yaml hydra.callbacks): progress per job, a clean stop, the summary at the end."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        stop_file(sweep_dir).unlink(missing_ok=True)  # a continued sweep starts afresh
        for ended in (sweep_dir / ENDED_DIR).glob("*"):
            ended.unlink()
        (sweep_dir / ENDED_DIR).mkdir(exist_ok=True)
        state = {
            "jobs": job_count(config),
            "started": time.time(),
            "command": continuing_command(sweep_dir, sys.argv[1:]),
            "launcher_pid": os.getpid(),
        }
        (sweep_dir / STATE_FILE).write_text(json.dumps(state, indent=2))
        log.info(
            "sweep of %d jobs in %s; to continue it after an interruption: %s",
            state["jobs"],
            sweep_dir,
            state["command"],
        )
        # A signal to this process (the launcher's, when jobs run elsewhere) becomes a stop request that running
        # jobs honour after their step; the sweep's summary then says how to continue.
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda number, frame: stop_request.request(stop_file(sweep_dir), number))

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        jobs = _state(Path(config.hydra.sweep.dir))["jobs"]
        log.info("job %d/%d: %s", config.hydra.job.num + 1, jobs, " ".join(config.hydra.overrides.task))

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        state = _state(sweep_dir)
        outcome = job_return.return_value if job_return.status.name == "COMPLETED" else FAILED
        (sweep_dir / ENDED_DIR / str(config.hydra.job.num)).write_text(outcome or FINISHED)
        ended = list((sweep_dir / ENDED_DIR).iterdir())
        done, jobs = len(ended), state["jobs"]
        elapsed = time.time() - state["started"]
        worked = sum(path.read_text() != SKIPPED for path in ended)
        stopping = stop_request.requested(stop_file(sweep_dir)) is not None
        eta = (
            f", about {_duration(elapsed / worked * (jobs - done))} left"
            if worked and done < jobs and not stopping
            else ""
        )
        log.info(
            "job %d/%d %s; %d of %d ended, sweep %s%s",
            *(config.hydra.job.num + 1, jobs, outcome or FINISHED, done, jobs, _duration(elapsed), eta),
        )

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        """The sweep's table and report.html, what did not finish, and how to continue; exit 128 + n after a stop."""
        from .results.command import NothingToTabulate, tabulate
        from .results.report import write_report

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            text, collection = tabulate(sweep_dir)
        except NothingToTabulate as nothing:
            text, collection = nothing.listing, nothing.collection
        print(text, flush=True)
        log.info("report: %s", write_report(sweep_dir, collection=collection))
        state = _state(sweep_dir)
        jobs = state["jobs"]
        finished, listed = len(collection.runs), len(collection.incomplete)
        if finished < jobs:
            log.info(
                "%d of %d jobs finished (%d unfinished or failed, listed above; %d not started); continue the sweep, "
                "skipping the finished jobs: %s",
                *(finished, jobs, listed, max(jobs - finished - listed, 0), state["command"]),
            )
        stop = stop_request.requested(stop_file(sweep_dir))
        if stop is not None:
            raise SystemExit(128 + stop)
        if finished < jobs:
            raise SystemExit(1)  # each job that failed or stopped said why


def _state(sweep_dir: Path) -> dict:
    """What on_multirun_start recorded in sweep.json."""
    return json.loads((sweep_dir / STATE_FILE).read_text())
