"""The three tasks of the entry point (train, eval, sample) on typed configs: data + model + trainer + results.json.

What differs between tabular, 2-D and image data is the data kind's (kinds.py); the tasks are written once.
"""

import logging
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..config import (
    Config,
    DatasetConfig,
    Task,
    TrainerConfig,
    plain,
    typed,
)
from ..data.errors import DataError
from ..errors import RunError, Stopped, WriteError, fail
from ..files import write_atomically, write_json
from ..results.paper import row_labels
from ..results.provenance import provenance
from ..results.record import FAILURE_FILE
from ..results.tables import with_error
from ..transforms.elementwise import elementwise_families
from . import checkpoint, distributed, restore
from .distributed import Process
from .kinds import KINDS, Drawn, Picturing, RunData, build_flow
from .logger import RunLogger
from .summary import defining_settings, final_metrics, model_summary
from .trainer import Trainer

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def load_data(dataset: DatasetConfig, data_dir: str, trainer: TrainerConfig, seed: int, process: Process) -> RunData:
    """The dataset's streams for this process (its share of every batch and split when there are several)."""
    return KINDS[dataset.kind].load(dataset, data_dir, trainer, seed, process)


def save_pictures(
    flow,
    config: Config,
    data: RunData | None,
    run_dir: Path,
    logger: RunLogger | None,
    step: int,
    record: dict | None = None,
    drawn: Drawn | None = None,
) -> list[Path]:
    """The data kind's pictures as PNGs in <run dir>/pictures (and TensorBoard when a logger is given), titled so a
    report can show them alone: dataset, model as the tables name it ("LRS (C)"), step and, given a finished
    run's `record`, the step of its best checkpoint (the one pictured) and its test score."""
    family = elementwise_families()[config.model.family].label
    parts = [config.dataset.name, row_labels(pd.Series([family]), pd.Series([config.model.arch])).item()]
    if record is None:
        parts.append(f"step {step}")
    else:
        metric = record["metric"].removeprefix("test_").replace("_", " ")
        parts += [
            f"step {record['best_step']} of {record['steps']} (best validation)",
            f"test {metric} {with_error(record['value'], record['error'], 3)} {record['unit']}",
        ]
        if record.get("kl_gap") is not None:
            parts.append(f"KL gap {with_error(record['kl_gap'], record['kl_gap_error'], 3)} nats")
    kind = KINDS[config.dataset.kind]
    request = Picturing(run_dir / "pictures", step, " · ".join(parts), logger, data, drawn)
    return kind.pictures(flow, config.dataset, request)


def train(config: Config, run_dir: Path) -> dict | None:
    """Train, then evaluate the best-validation checkpoint on the test split; write results.json.

    Every process of a data-parallel group runs this; the main one writes the files and returns the record.
    """
    if config.trainer.deterministic:
        make_deterministic()
    if config.trainer.threads is not None:  # the CLI resolves it; data-parallel workers start with torch's default
        torch.set_num_threads(config.trainer.threads)
    process = distributed.join(config.trainer.device)
    try:
        return _train(config, run_dir, process)
    finally:
        distributed.leave()


def train_worker(config: dict, run_dir: str) -> dict | None:
    """One process of `trainer.devices=N` (started by distributed.launch): errors as one sentence, exit 1. A stop
    by a signal reaches every process (the launcher passes it on) and may come before this function runs or
    after it returns, so the launcher says so, and the processes exit 128 + the signal's number in silence."""
    if not logging.getLogger().handlers:  # a spawned process: say what the run says as the CLI's console does
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    try:
        return train(typed(Config, config), Path(run_dir))
    except Stopped as error:
        # Out at once: a stopped process's checkpoint is saved, and unwinding the interpreter while the process
        # group's communication threads are still alive can end in std::terminate (a crash dump on stderr).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(error.exit_code)
    except WriteError as error:
        fail(error.advice(training=True))
    except (DataError, RunError) as error:
        fail(str(error))


def make_deterministic() -> None:
    """Bit-reproducible kernels where torch has them (an error names any operation that has none)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


def refuse_to_overwrite(config: Config, run_dir: Path) -> None:
    """A run dir that holds a run is continued only on request (trainer.resume=true) and only by the same
    settings, never started over; checked before anything is written."""
    last_path = run_dir / "checkpoints" / "last.pt"
    if not last_path.exists():
        if config.trainer.resume_from is not None:
            source = config.trainer.resume_from
            checkpoint.ensure_same_run(source, checkpoint.load(source, checkpoint.RESUME), plain(config))
        return
    if not config.trainer.resume:
        raise RunError(
            f"{run_dir} already holds a run (checkpoints/last.pt); add trainer.resume=true to continue it, "
            "or remove that folder to start over."
        )
    checkpoint.ensure_same_run(last_path, checkpoint.load(last_path, checkpoint.RESUME), plain(config))


def _train(config: Config, run_dir: Path, process: Process) -> dict | None:
    """Train, and leave failure.json behind if the run fails (not if it is interrupted: an interrupted run is
    unfinished and can be resumed, be it by a signal, a full disk or another process's death). The CLI has
    locked the run dir and checked it may be used."""
    last_path = run_dir / "checkpoints" / "last.pt"
    failure_path = run_dir / FAILURE_FILE
    if process.is_main:
        failure_path.unlink(missing_ok=True)
    try:
        return _fit_and_score(config, run_dir, process, last_path)
    except Exception as error:
        if process.world_size > 1 and not isinstance(error, (DataError, RunError)):
            distributed.wait_to_be_stopped()  # perhaps another process died
        if process.is_main and not isinstance(error, WriteError):  # a Stopped (a BaseException) is not caught
            _record_failure(failure_path, error)
        raise


def _record_failure(path: Path, error: Exception) -> None:
    """failure.json with the error's first line, so tables list the run as failed; never masks the error."""
    reason = str(error) if isinstance(error, (DataError, RunError)) else f"{type(error).__name__}: {error}"
    try:
        write_json(path, {"error": (reason.strip() or type(error).__name__).splitlines()[0]})
    except RunError:
        pass


def _fit_and_score(config: Config, run_dir: Path, process: Process, last_path: Path) -> dict | None:
    seed_everything(config.seed)
    kind = KINDS[config.dataset.kind]
    data = load_data(config.dataset, config.paths.data_dir, config.trainer, config.seed, process)
    flow = build_flow(config, data.shape, process.device)
    if process.is_main:
        log.info("%s", model_summary(flow))
    seed_everything(config.seed + process.rank)  # one model for all; each process its own noise and dropout
    checkpoint_dir = last_path.parent
    own = last_path.exists()
    source = last_path if own else (Path(config.trainer.resume_from) if config.trainer.resume_from else None)
    state = checkpoint.resumable(source, flow, plain(config)) if source is not None else None
    main = process.is_main
    if main and data.val_indices is not None:
        write_atomically(run_dir / "val_indices.npy", lambda handle: np.save(handle, data.val_indices))
    logger = RunLogger(run_dir / "tensorboard", first_step=state["step"] if state else 0) if main else None
    trainer = Trainer(
        flow,
        data.train(),
        data.validation,
        config.trainer,
        checkpoint_dir,
        logger,
        # Every checkpoint holds what rebuilding its flow needs: the settings and the shape of one example.
        {"config": plain(config), "data": {"shape": list(data.shape)}},
        process,
        pictures=(lambda step: save_pictures(flow, config, data, run_dir, logger, step)) if main else None,
        image_dimension=kind.loss_scale(data),
    )
    if state is not None:
        trainer.resume(state, other_run=None if own else source)
        if main:
            log.info("resuming %s at step %d%s", run_dir, trainer.step, "" if own else f" from {source}")
    try:
        trainer.fit()
        flow.load_state_dict(checkpoint.load(checkpoint_dir / "best.pt")["model"])
        scores = kind.score(flow, data, process)
        if not main:
            return None
        record = {
            **provenance(Task.train.value, plain(config), flow, run_dir, process.device),
            **scores,
            "steps": trainer.step,
            "best_step": trainer.best_step,
            "best_val": trainer.best_val,
            "wall_time_s": trainer.elapsed,
            "processes": process.world_size,
        }
        pictures = save_pictures(flow, config, data, run_dir, logger, trainer.step, record)
        if pictures:
            record["pictures"] = [str(path) for path in pictures]
        logger.hparams(defining_settings(config), final_metrics(record))
    except BaseException:
        if logger is not None:
            logger.close(raising=False)
        raise
    logger.close()
    write_json(run_dir / "results.json", record)
    return record


def _restore(config: Config, with_data: bool) -> tuple[dict, Config, torch.nn.Module, RunData | None, Process]:
    """The checkpoint named by ckpt=, the settings it was trained with, its model (weights loaded, eval mode) and,
    `with_data` or for a checkpoint that predates recorded data shapes, its dataset; in one process."""
    if config.ckpt is None:
        raise RunError(f"task={config.task.value} needs a checkpoint: add ckpt=<run dir>/checkpoints/best.pt.")
    state = checkpoint.load(config.ckpt, checkpoint.EVALUATE)
    trained = restore.trained_settings(config.ckpt, state)
    trained.trainer.eval_batch_size = config.trainer.eval_batch_size
    process = distributed.join(config.trainer.device)
    shape = restore.saved_shape(state)
    data = None
    if with_data or shape is None:
        data = load_data(trained.dataset, config.paths.data_dir, trained.trainer, trained.seed, process)
        shape = data.shape
    flow = restore.rebuild(config.ckpt, state, trained, shape, process.device)
    log.info("%s", model_summary(flow))
    return state, trained, flow, data, process


def evaluate(config: Config, run_dir: Path) -> dict:
    """Evaluate a checkpoint on its dataset's test split; write results.json."""
    seed_everything(config.seed)
    started = time.perf_counter()
    state, trained, flow, data, process = _restore(config, with_data=True)
    record = {
        **provenance(Task.eval.value, state["config"], flow, run_dir, process.device),
        **KINDS[trained.dataset.kind].score(flow, data, process),
        "steps": state["step"],
        "checkpoint": str(Path(config.ckpt).resolve()),
        "wall_time_s": time.perf_counter() - started,
    }
    write_json(run_dir / "results.json", record)
    return record


@torch.no_grad()
def sample(config: Config, run_dir: Path) -> Path:
    """Draw n samples at `temperature` from a checkpoint into samples.npy (display pixels for images), and
    picture those very samples in <run dir>/pictures/samples_n{n}_T{temperature}.png."""
    seed_everything(config.seed)
    state, trained, flow, _, _ = _restore(config, with_data=False)
    chunks, remaining = [], config.n
    while remaining > 0:
        count = min(remaining, config.trainer.eval_batch_size)
        chunks.append(flow.sample(count, temperature=config.temperature).cpu())
        remaining -= count
    kind = KINDS[trained.dataset.kind]
    samples = kind.displayed(torch.cat(chunks), trained.dataset)
    path = run_dir / "samples.npy"
    write_atomically(path, lambda handle: np.save(handle, samples.numpy()))
    save_pictures(flow, trained, None, run_dir, None, state["step"], drawn=Drawn(samples, config.temperature))
    return path
