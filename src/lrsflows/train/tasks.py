"""The three tasks of the entry point (train, eval, sample) on typed configs: data + model + trainer + results.json."""

import dataclasses
import json
import logging
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image  # pillow comes with matplotlib

from ..config import Arch, Config, DatasetConfig, DatasetKind, ModelConfig, Precision, Task, TrainerConfig
from ..data.dequantization import to_display
from ..data.errors import DataError
from ..data.images import load_image_splits
from ..data.splits import load_splits
from ..errors import RunError, Stopped, WriteError, fail
from ..flows import build_image_flow, build_tabular_flow
from ..results.record import FAILURE_FILE, flatten, provenance
from . import checkpoint, distributed
from .batches import ImageBatches, TensorBatches, dequantized_batches, tensor_batches
from .distributed import Process
from .evaluate import Estimate, log_likelihoods, per_example
from .files import write_atomically, write_json
from .image_pictures import reconstruction, sample_grids
from .logger import RunLogger
from .plots import density_figure
from .trainer import Trainer

log = logging.getLogger(__name__)
RECONSTRUCTED_IMAGES = 8


@dataclasses.dataclass
class RunData:
    """What a run trains on and is scored on, whatever the dataset kind.

    `validation()` and `test()` start a fresh, reproducible pass over this process's share of their split;
    `train()` opens its resumable training stream (only training needs one, so it is opened on demand).
    `dtype` is the floating type of every batch, which the model takes too. 2-D data also carries its exact
    log-density.
    """

    kind: DatasetKind
    shape: tuple[int, ...]
    dtype: torch.dtype
    train: Callable[[], Iterator[torch.Tensor]]
    validation: Callable[[], Iterable[torch.Tensor]]
    test: Callable[[], Iterable[torch.Tensor]]
    num_bits: int | None = None
    true_log_prob: Callable[[torch.Tensor], torch.Tensor] | None = None
    val_indices: np.ndarray | None = None


def plain(settings) -> dict:
    """A config dataclass as JSON-able builtins (enums as their values), for checkpoints and results."""
    return json.loads(json.dumps(dataclasses.asdict(settings), default=lambda value: value.value))


def describe_run(task: Task, config: dict, flow: torch.nn.Module, run_dir: Path, device: torch.device) -> dict:
    """What every results.json says about its run: what was trained, with which configuration, its size, and
    where and when it was computed (`config` is the training run's resolved config, also for eval)."""
    return {
        **provenance(task.value, config, str(device)),
        "dataset": config["dataset"]["name"],
        "model": config["model"]["name"],
        "family": config["model"]["family"],
        "arch": config["model"]["arch"],
        "seed": config["seed"],
        "num_parameters": sum(parameter.numel() for parameter in flow.parameters()),
        "git_revision": git_revision(),
        "run_dir": str(run_dir),
    }


def git_revision() -> str:
    """The source revision a result came from; '+dirty' when tracked files differ from it."""
    here = Path(__file__).parent
    try:
        revision = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return revision + ("+dirty" if changes else "")


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def load_data(dataset: DatasetConfig, data_dir: str, trainer: TrainerConfig, seed: int, process: Process) -> RunData:
    """The dataset's streams for this process (its share of every batch and split when there are several)."""
    if dataset.kind == DatasetKind.image:
        return _image_data(dataset, data_dir, trainer, seed, process)
    dtype = torch.float64 if trainer.precision == Precision.fp64 else torch.float32
    splits = load_splits(
        dataset.name, dataset.kind, data_dir, dataset.num_train, dataset.num_val, dataset.num_test, dataset.seed
    ).to(process.device, dtype)
    share = dict(rank=process.rank, world_size=process.world_size)
    return RunData(
        kind=dataset.kind,
        shape=(splits.features,),
        dtype=dtype,
        train=lambda: TensorBatches(splits.train, trainer.batch_size, seed, **share),
        validation=lambda: tensor_batches(splits.val, trainer.eval_batch_size, **share),
        test=lambda: tensor_batches(splits.test, trainer.eval_batch_size, **share),
        true_log_prob=splits.true_log_prob,
    )


def _image_data(dataset: DatasetConfig, data_dir: str, trainer: TrainerConfig, seed: int, process: Process) -> RunData:
    if trainer.precision == Precision.fp64:
        raise RunError("trainer.precision=fp64 is for tabular and 2-D data; train image flows in fp32, bf16 or fp16.")
    splits = load_image_splits(dataset.name, data_dir, dataset.valid_frac, dataset.seed)
    share = dict(rank=process.rank, world_size=process.world_size)

    def evaluation(split):
        return lambda: dequantized_batches(
            split, trainer.eval_batch_size, process.device, dataset.num_bits, seed, dataset.num_workers, **share
        )

    return RunData(
        kind=DatasetKind.image,
        shape=tuple(splits.shape),
        dtype=torch.float32,
        train=lambda: ImageBatches(
            splits.train,
            trainer.batch_size,
            process.device,
            dataset.num_bits,
            dataset.num_workers,
            dataset.shuffle,
            dataset.flip,
            seed,
            **share,
        ),  # fmt: skip
        validation=evaluation(splits.val),
        test=evaluation(splits.test),
        num_bits=dataset.num_bits,
        val_indices=splits.val_indices,
    )


def build_flow(model: ModelConfig, data: RunData, device: torch.device) -> torch.nn.Module:
    """The paper's tabular/2-D flow or its Glow-style image flow (docs/architectures.md), on
    `device` in the data's floating type."""
    return _architecture(model, data).to(device, data.dtype)


def _architecture(model: ModelConfig, data: RunData) -> torch.nn.Module:
    shared = dict(
        num_blocks=model.num_blocks,
        num_bins=model.num_bins,
        tail_bound=model.tail_bound,
        dropout=model.dropout,
        use_batch_norm=model.use_batch_norm,
        min_bin_width=model.min_bin_width,
        min_bin_height=model.min_bin_height,
        min_derivative=model.min_derivative,
    )
    if data.kind != DatasetKind.image:
        return build_tabular_flow(
            data.shape[0],
            model.family.value,
            model.arch.value,
            num_flow_steps=model.num_flow_steps,
            hidden_features=model.hidden_features,
            unconditional_transform=model.unconditional_transform,
            unconditional_init=model.unconditional_init.value,
            linear=model.linear.value,
            **shared,
        )
    if model.arch != Arch.coupling:
        raise RunError(
            "image flows are coupling flows (as in the LRS and NSF image experiments); use model.arch=coupling."
        )
    return build_image_flow(
        data.shape,
        model.family.value,
        num_levels=model.num_levels,
        steps_per_level=model.steps_per_level,
        hidden_channels=model.hidden_channels,
        multi_scale=model.multi_scale,
        num_bits=data.num_bits,
        preprocessing=model.preprocessing.value,
        alpha=model.alpha,
        actnorm=model.actnorm,
        **shared,
    )


def typed(schema, values: dict):
    """A config section saved in a checkpoint, back as its schema's dataclass (enums and types checked)."""
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values))


def test_results(flow: torch.nn.Module, data: RunData, process: Process) -> dict:
    """The paper's test metric over the whole test split, mean ± 2 s.e.: log-likelihood in nats (vectors; for
    2-D data also E log p_true and the KL gap), or bits/dim (images; also the original's 2·std/N error bar).
    Each process scores its share; the per-example values are gathered, so the numbers equal one process's."""
    batches = list(data.test())
    model = distributed.gather(log_likelihoods(flow, batches), process)
    if data.kind == DatasetKind.image:
        bits = -model / (math.prod(data.shape) * math.log(2))
        result = Estimate.of(bits)
        return {
            "metric": "test_bits_per_dim",
            "unit": "bits/dim",
            "higher_is_better": False,
            "value": result.mean,
            "error": result.error,
            "error_original": result.error / math.sqrt(result.count),  # the original code divides by N, not √N
            "num_test": result.count,
        }
    result = Estimate.of(model)
    record = {
        "metric": "test_log_likelihood",
        "unit": "nats",
        "higher_is_better": True,
        "value": result.mean,
        "error": result.error,
        "num_test": result.count,
        "true_log_prob": None,
        "true_log_prob_error": None,
        "kl_gap": None,
        "kl_gap_error": None,
    }
    if data.true_log_prob is not None:
        truth = distributed.gather(per_example(data.true_log_prob(batch.cpu()) for batch in batches), process)
        true_estimate, gap = Estimate.of(truth), Estimate.of(truth - model)
        record.update(
            true_log_prob=true_estimate.mean,
            true_log_prob_error=true_estimate.error,
            kl_gap=gap.mean,
            kl_gap_error=gap.error,
        )
    return record


def save_pictures(flow, data: RunData, run_dir: Path, logger: RunLogger | None, step: int) -> list[Path]:
    """2-D: the density/sample figure. Images: sample grids at three temperatures and a reconstruction check.
    Written as PNGs in <run dir>/pictures and, when a logger is given, to TensorBoard."""
    folder = run_dir / "pictures"
    if data.kind == DatasetKind.toy2d:
        figure = density_figure(flow, data.true_log_prob)
        path = folder / f"density_step{step:07d}.png"
        write_atomically(path, lambda handle: figure.savefig(handle, format="png", dpi=100))
        if logger is not None:
            logger.figure("density", figure, step)
        return [path]
    if data.kind != DatasetKind.image:
        return []
    pictures = {
        f"samples/temperature_{temperature}": grid for temperature, grid in sample_grids(flow, data.num_bits).items()
    }
    if logger is not None:
        fixed_batch = next(iter(data.validation()))[:RECONSTRUCTED_IMAGES]
        pictures["reconstruction"], error = reconstruction(flow, fixed_batch, data.num_bits)
        logger.scalars(step, {"val/reconstruction_error": error})
    paths = []
    for tag, grid in pictures.items():
        path = folder / f"{tag.replace('/', '_')}_step{step:07d}.png"
        write_png(path, grid)
        paths.append(path)
        if logger is not None:
            logger.image(tag, grid, step)
    return paths


def write_png(path: Path, grid: torch.Tensor) -> None:
    """A uint8 (C, H, W) picture as PNG (grey for one channel)."""
    array = grid.permute(1, 2, 0).numpy()
    picture = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    write_atomically(path, lambda handle: picture.save(handle, format="png"))


def train(config: Config, run_dir: Path) -> dict | None:
    """Train, then evaluate the best-validation checkpoint on the test split; write results.json.

    Every process of a data-parallel group runs this; the main one writes the files and returns the record.
    """
    if config.trainer.deterministic:
        make_deterministic()
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
    data = load_data(config.dataset, config.paths.data_dir, config.trainer, config.seed, process)
    flow = build_flow(config.model, data, process.device)
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
        {"config": plain(config)},
        process,
        pictures=(lambda step: save_pictures(flow, data, run_dir, logger, step)) if main else None,
        image_dimension=math.prod(data.shape) if data.kind == DatasetKind.image else None,
    )
    if state is not None:
        trainer.resume(state, other_run=None if own else source)
        if main:
            log.info("resuming %s at step %d%s", run_dir, trainer.step, "" if own else f" from {source}")
    try:
        trainer.fit()
        flow.load_state_dict(checkpoint.load(checkpoint_dir / "best.pt")["model"])
        scores = test_results(flow, data, process)
        if not main:
            return None
        record = {
            **describe_run(Task.train, plain(config), flow, run_dir, process.device),
            **scores,
            "steps": trainer.step,
            "best_step": trainer.best_step,
            "best_val": trainer.best_val,
            "wall_time_s": trainer.elapsed,
            "processes": process.world_size,
        }
        pictures = save_pictures(flow, data, run_dir, logger, trainer.step)
        if pictures:
            record["pictures"] = [str(path) for path in pictures]
        logger.hparams(
            {key: value for key, value in flatten(plain(config)).items() if value is not None},
            {f"hparam/{record['metric']}": record["value"]}
            | ({"hparam/kl_gap": record["kl_gap"]} if record.get("kl_gap") is not None else {}),
        )
    except BaseException:
        if logger is not None:
            logger.close(raising=False)
        raise
    logger.close()
    write_json(run_dir / "results.json", record)
    return record


# Before Q-NSF followed NSF's code, family "quadratic" was our C1 correction (now "quadratic_c1") and
# "quadratic_original" NSF's spline (now "quadratic"); checkpoints of then lack model.unconditional_init.
RENAMED_FAMILIES = {"quadratic": "quadratic_c1", "quadratic_original": "quadratic"}


def saved_model_config(values: dict) -> ModelConfig:
    """A checkpoint's model section as a ModelConfig, with an older checkpoint's family read by its old name."""
    if "unconditional_init" not in values:
        family = RENAMED_FAMILIES.get(values["family"], values["family"])
        values = {**values, "family": family, "unconditional_init": "uniform"}  # U[0,1) was then the only init
    return typed(ModelConfig, values)


def _restore(config: Config) -> tuple[dict, torch.nn.Module, RunData, Process]:
    """The checkpoint named by ckpt=, its model (weights loaded, eval mode) and its dataset, in one process."""
    if config.ckpt is None:
        raise RunError(f"task={config.task.value} needs a checkpoint: add ckpt=<run dir>/checkpoints/best.pt.")
    state = checkpoint.load(config.ckpt, checkpoint.EVALUATE)
    saved = state["config"]
    process = distributed.join(config.trainer.device)
    trainer_settings = checkpoint.saved_settings(
        config.ckpt, state, "trainer", lambda values: typed(TrainerConfig, values)
    )
    trainer_settings.eval_batch_size = config.trainer.eval_batch_size
    dataset = checkpoint.saved_settings(config.ckpt, state, "dataset", lambda values: typed(DatasetConfig, values))
    model = checkpoint.saved_settings(config.ckpt, state, "model", saved_model_config)
    data = load_data(dataset, config.paths.data_dir, trainer_settings, saved["seed"], process)
    flow = build_flow(model, data, process.device)
    checkpoint.ensure_fits(config.ckpt, state, flow, checkpoint.EVALUATE)
    flow.load_state_dict(state["model"])
    flow.eval()
    return state, flow, data, process


def evaluate(config: Config, run_dir: Path) -> dict:
    """Evaluate a checkpoint on its dataset's test split; write results.json."""
    seed_everything(config.seed)
    started = time.perf_counter()
    state, flow, data, process = _restore(config)
    record = {
        **describe_run(Task.eval, state["config"], flow, run_dir, process.device),
        **test_results(flow, data, process),
        "steps": state["step"],
        "checkpoint": str(Path(config.ckpt).resolve()),
        "wall_time_s": time.perf_counter() - started,
    }
    write_json(run_dir / "results.json", record)
    return record


@torch.no_grad()
def sample(config: Config, run_dir: Path) -> Path:
    """Draw n samples at `temperature` from a checkpoint into samples.npy (display pixels for images), plus pictures."""
    seed_everything(config.seed)
    state, flow, data, _ = _restore(config)
    chunks, remaining = [], config.n
    while remaining > 0:
        count = min(remaining, config.trainer.eval_batch_size)
        chunks.append(flow.sample(count, temperature=config.temperature).cpu())
        remaining -= count
    samples = torch.cat(chunks)
    if data.kind == DatasetKind.image:
        samples = to_display(samples, data.num_bits)
    path = run_dir / "samples.npy"
    write_atomically(path, lambda handle: np.save(handle, samples.numpy()))
    save_pictures(flow, data, run_dir, None, state["step"])
    return path
