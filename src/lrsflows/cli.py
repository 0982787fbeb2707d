"""The single entry point: `python -m lrsflows [overrides]` or the `lrsflows` console script (a Hydra app)."""

import hashlib
import logging
import os
import shlex
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from . import stop_request
from .config import (
    ConfigError,
    Task,
    check_known_keys,
    plain,
    register_schema,
    validate,
    validate_choices,
    validate_kind_settings,
)
from .data.errors import DataError
from .data.specs import data_kind
from .errors import (
    RunError,
    Stopped,
    WriteError,
    continue_with,
    fail,
    invocation,
    resume_advice,
    signal_name,
    stop_on_signals,
    stopped,
)
from .sweep import FAILED, SKIPPED, STOPPED, continuing_command_of, runs_in_launcher, stop_file

# The Hydra configs: lrsflows/conf in an installed wheel (setup.py copies them there), else the checkout's conf/
# beside src/ (an editable install).
PACKAGED_CONFIG_DIR = Path(__file__).resolve().parent / "conf"
CONFIG_DIR = str(
    PACKAGED_CONFIG_DIR
    if (PACKAGED_CONFIG_DIR / "config.yaml").is_file()
    else Path(__file__).resolve().parents[2] / "conf"
)
MAX_SUFFIX = 160  # file names stop at 255 bytes
log = logging.getLogger(__name__)
RUN_LOG = "run.log"  # what a run says (console lines, with time and source)
STARTED = datetime.now()  # one time stamp per process, however often Hydra resolves the run dir


def run_name(dataset: str, model: str, arch: str, seed: int, overrides: str) -> str:
    """<dataset>/<model>-<arch>/seed<seed>[_<other overrides>]: the same command always names the same dir.

    Overrides too long for one file name are replaced by a digest (.hydra/overrides.yaml lists them).
    """
    suffix = overrides.replace("/", ".")
    if len(suffix) > MAX_SUFFIX:
        suffix = f"overrides-{hashlib.sha1(suffix.encode()).hexdigest()[:12]}"
    return f"{dataset}/{model}-{getattr(arch, 'value', arch)}/seed{seed}" + (f"_{suffix}" if suffix else "")


def run_dir(output_dir: str, task: str, dataset: str, model: str, arch: str, seed: int, overrides: str) -> str:
    """Training runs live under runs/ by name (so they can be resumed); eval and sample runs get the process's
    start time and id, so two started in the same second never share a folder."""
    task = getattr(task, "value", task)
    if task == Task.train.value:
        return f"{output_dir}/runs/{run_name(dataset, model, arch, seed, overrides)}"
    return f"{output_dir}/{task}/{STARTED:%Y-%m-%d_%H-%M-%S}_{os.getpid()}"


class CreateOutputDir(Callback):
    """Create the run (or sweep) dir before Hydra does, so an unwritable one is one sentence, not a traceback."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        self._create(config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self._create(config.hydra.sweep.dir)

    # The outermost folder this process created, so a refused command can take the empty chain away again.
    created: Path | None = None

    @classmethod
    def _create(cls, folder: str) -> None:
        path = Path(folder).absolute()
        missing = [parent for parent in (path, *path.parents) if not parent.exists()]
        cls.created = missing[-1] if missing else None
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            fail(
                f"cannot create the output folder {folder} ({error.strerror or error}); "
                "choose a writable one with paths.output_dir=<folder>."
            )


register_schema()
OmegaConf.register_new_resolver("lrsflows.run_name", run_name, replace=True)
OmegaConf.register_new_resolver("lrsflows.run_dir", run_dir, replace=True)
OmegaConf.register_new_resolver("lrsflows.data_kind", data_kind, replace=True)


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
def main(config: DictConfig) -> str | None:
    """One run, or one job of a multirun: a job that fails says why in its sentence and the sweep goes on to list
    it at the end (sweep.SweepProgress); a job stopped by a signal in the launcher's process stops the sweep; a
    job of a stopping sweep, or a finished run asked to resume, is skipped. Returns the job's outcome for the
    sweep (sweep.SKIPPED, STOPPED, FAILED; None: it finished)."""
    if HydraConfig.get().mode != RunMode.MULTIRUN:
        resumed = [argument for argument in sys.argv[1:] if not argument.startswith("trainer.resume=")]
        continue_with(shlex.join([*invocation(), *resumed, "trainer.resume=true"]))
        return _run(config)
    sweep_dir = Path(HydraConfig.get().sweep.dir)
    continue_with(continuing_command_of(sweep_dir))
    stop_path = stop_file(sweep_dir)
    if stop_request.requested(stop_path) is not None:
        log.info("skipped: the sweep is stopping")
        return SKIPPED
    handlers = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    os.environ[stop_request.VARIABLE] = str(stop_path)
    try:
        return _run(config)
    except SystemExit as error:  # its sentence is printed; a signal's exit status (128 + n) stops the sweep
        if isinstance(error.code, int) and error.code > 128:
            if runs_in_launcher(sweep_dir):  # jobs elsewhere (a preempted cluster job) stop alone
                stop_request.request(stop_path, error.code - 128)
            return STOPPED
        return FAILED
    finally:
        os.environ.pop(stop_request.VARIABLE)
        for number, handler in handlers.items():
            signal.signal(number, handler)


def _run(config: DictConfig) -> str | None:
    """Check the settings, then run the task; every error a user can cause ends as one sentence and exit 1.

    Hydra itself writes nothing into the run dir (hydra.output_subdir is null): the job's config files are
    written here, once the settings are valid and (for training) the run dir is locked and may be (re)used,
    so a refused command changes nothing on disk.
    """
    output = Path(HydraConfig.get().runtime.output_dir)
    stop_on_signals(Task(config.task).value)
    try:
        check_known_keys(OmegaConf.to_container(config, resolve=False))
        settings = OmegaConf.to_object(config)
        validate(settings)
    except ConfigError as error:
        _refuse(output, error)
    # torch is imported only for settings that passed the checks above; the named choices (families, archs, data
    # kinds...) are checked against the registries of the code that implements them.
    import torch
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    from . import files
    from .train import distributed, tasks
    from .train.trainer import Diverged

    try:
        validate_choices(settings)
        validate_kind_settings(settings, given=_given_keys())
    except ConfigError as error:
        _refuse(output, error)
    if settings.trainer.threads is None:
        settings.trainer.threads = distributed.default_threads(settings.trainer.devices, _parallel_jobs())
    torch.set_num_threads(settings.trainer.threads)

    try:
        if settings.task is not Task.train:
            _save_job_config(config, output)
            if settings.task is Task.eval:
                record = tasks.evaluate(settings, output)
            else:
                log.info("samples: %s", tasks.sample(settings, output))
                return
        else:
            if settings.trainer.resume and (output / "results.json").exists():
                log.info("%s has finished (results.json): skipped", output)
                return SKIPPED
            with files.locked(output, held=distributed.is_launching_process()):
                tasks.refuse_to_overwrite(settings, output)
                _save_job_config(config, output)
                if settings.trainer.devices > 1 and not distributed.already_distributed():
                    record = distributed.launch(
                        settings.trainer.devices, tasks.train_worker, plain(settings), str(output)
                    )
                else:
                    record = tasks.train(settings, output)
    except Stopped as error:
        fail(str(error), error.exit_code)
    except Diverged as error:
        fail(f"{error}; {_after_divergence(error, settings.trainer.lr)}")
    except WriteError as error:
        fail(error.advice(training=settings.task is Task.train))
    except (DataError, RunError) as error:
        fail(str(error))
    except SignalException as error:  # the launcher was signalled and has stopped its workers, who say nothing
        _say_stopped(error.sigval)
    except ChildFailedError as error:
        _worker_failed(error, settings.trainer.devices)
    if record is not None:
        log.info(summary(record))


def _parallel_jobs() -> int:
    """How many jobs of this multirun run at once: the launcher's n_jobs (hydra/launcher=parallel; joblib's -1:
    one per core), else 1."""
    hydra_config = HydraConfig.get()
    return (hydra_config.launcher.get("n_jobs") if hydra_config.mode == RunMode.MULTIRUN else None) or 1


def _given_keys() -> set[str]:
    """The keys this command sets with key=value (not group choices such as dataset=power)."""
    return {item.split("=", 1)[0].lstrip("+~") for item in HydraConfig.get().overrides.task if "=" in item}


def _after_divergence(error, lr: float) -> str:
    """A command that works after a divergence: this one with a tenth of the learning rate, continuing the last
    good checkpoint when there is one (trainer.resume_from keeps the changed settings; trainer.resume would not)."""
    kept = [item for item in HydraConfig.get().overrides.task if not item.startswith(("trainer.lr=", "trainer.resume"))]
    command = ["python -m lrsflows", *kept, f"trainer.lr={lr / 10:g}"]
    if error.last_path is None:
        return f"start again with a lower learning rate: {' '.join(command)}"
    command.append(f"trainer.resume_from={error.last_path}")
    return f"continue it with a lower learning rate: {' '.join(command)}"


def _worker_failed(error, devices: int) -> NoReturn:
    """A worker that exited with an error has printed its sentence; one killed by a signal could not, and one
    stopped by a signal (all were) leaves it to the launcher."""
    rank, failure = error.get_first_failure()
    if failure.exitcode > 128:
        _say_stopped(failure.exitcode - 128)
    if failure.exitcode >= 0:
        raise SystemExit(failure.exitcode or 1)
    fail(
        f"training process {rank} of {devices} was killed by {signal_name(-failure.exitcode)} and the others were "
        f"stopped; {resume_advice()} (it continues from checkpoints/last.pt)."
    )


def _say_stopped(number: int) -> NoReturn:
    """A data-parallel run stopped by a signal: training processes save last.pt first when they can."""
    stop = stopped(number, Task.train.value)
    fail(str(stop), stop.exit_code)


def _save_job_config(config: DictConfig, output: Path) -> None:
    """What Hydra would write to <run dir>/.hydra (the job's config, Hydra's config and the command's overrides),
    and from now on what the run says, also in <run dir>/run.log, starting with its settings resolved (the data root
    and data kind as this run reads them), in a compact YAML that fits on one screen."""
    import yaml

    from .files import write_atomically

    hydra_config = HydraConfig.get()
    for name, node in (
        ("config.yaml", config),
        ("hydra.yaml", hydra_config),
        ("overrides.yaml", hydra_config.overrides.task),
    ):
        text = OmegaConf.to_yaml(node).encode()
        write_atomically(output / ".hydra" / name, lambda handle, text=text: handle.write(text))
    handler = _RunLogHandler(output / RUN_LOG, encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    logging.getLogger().addHandler(handler)
    settings = OmegaConf.to_container(config, resolve=True, enum_to_str=True)
    log.info("settings:\n%s", yaml.safe_dump(settings, sort_keys=False, default_flow_style=None, width=110).rstrip())


class _RunLogHandler(logging.FileHandler):
    """run.log: a line that cannot be written (a full disk) is dropped, not printed as a logging traceback; the
    run's own writes report the disk in one sentence."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def _refuse(output: Path, error: ConfigError) -> NoReturn:
    """A command refused before any work leaves no empty folder behind: the run dir and the parents this process
    created for it go while empty (one that holds anything stays)."""
    top = CreateOutputDir.created
    for folder in (output.absolute(), *output.absolute().parents):
        try:
            folder.rmdir()
        except OSError:
            break
        if top is None or folder == top:
            break
    fail(str(error))


def summary(record: dict) -> str:
    metric = record["metric"].removeprefix("test_").replace("_", " ")
    line = f"{record['dataset']} {record['model']} ({record['arch']}): test {metric} {record['value']:.3f} ± {record['error']:.3f} {record['unit']}"
    if record.get("kl_gap") is not None:
        line += f", KL gap {record['kl_gap']:.4f} ± {record['kl_gap_error']:.4f} nats"
    return f"{line}\nresults: {record['run_dir']}/results.json"


if __name__ == "__main__":
    main()
