"""The three tasks of the entry point (train, eval, sample) on typed configs: data + model + trainer + results.json."""

import dataclasses
import json
import math
import random
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from enum import Enum
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image  # pillow comes with matplotlib

from ..config import Arch, Config, DatasetConfig, DatasetKind, ModelConfig, TrainerConfig
from ..data.dequantization import to_display
from ..data.images import load_image_splits
from ..data.splits import load_splits
from ..errors import RunError
from ..flows import build_image_flow, build_tabular_flow
from . import checkpoint
from .batches import ImageBatches, TensorBatches, dequantized_batches
from .evaluate import Estimate, log_likelihoods
from .files import write_atomically, write_json
from .image_pictures import reconstruction, sample_grids
from .logger import RunLogger
from .plots import density_figure
from .trainer import Trainer

RECONSTRUCTED_IMAGES = 8


@dataclasses.dataclass
class RunData:
    """What a run trains on and is scored on, whatever the dataset kind.

    `validation()` and `test()` start a fresh, reproducible pass over their split; `train(batch_size, seed)`
    opens the resumable training stream. 2-D data also carries its test points and exact log-density.
    """

    kind: DatasetKind
    shape: tuple[int, ...]
    train: Callable[[int, int], Iterator[torch.Tensor]]
    validation: Callable[[], Iterable[torch.Tensor]]
    test: Callable[[], Iterable[torch.Tensor]]
    num_bits: int | None = None
    test_points: torch.Tensor | None = None
    true_log_prob: Callable[[torch.Tensor], torch.Tensor] | None = None
    val_indices: np.ndarray | None = None


def plain(settings) -> dict:
    """A config dataclass as JSON-able builtins (enums as their values), for checkpoints and results."""
    return json.loads(json.dumps(dataclasses.asdict(settings), default=lambda value: value.value))


def flatten(tree: dict, prefix: str = "") -> dict:
    """{'model': {'num_bins': 8}} -> {'model.num_bins': 8}, the form TensorBoard's hparams tab shows."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


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


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def load_data(dataset: DatasetConfig, data_dir: str, trainer: TrainerConfig, seed: int, device: torch.device) -> RunData:
    if dataset.kind == DatasetKind.image:
        return _image_data(dataset, data_dir, trainer, seed, device)
    splits = load_splits(
        dataset.name, dataset.kind, data_dir, dataset.num_train, dataset.num_val, dataset.num_test, dataset.seed
    ).to(device)
    return RunData(
        kind=dataset.kind,
        shape=(splits.features,),
        train=lambda batch_size, stream_seed: TensorBatches(splits.train, batch_size, stream_seed),
        validation=lambda: splits.val.split(trainer.eval_batch_size),
        test=lambda: splits.test.split(trainer.eval_batch_size),
        test_points=splits.test,
        true_log_prob=splits.true_log_prob,
    )


def _image_data(dataset: DatasetConfig, data_dir: str, trainer: TrainerConfig, seed: int, device: torch.device) -> RunData:
    splits = load_image_splits(dataset.name, data_dir, dataset.valid_frac, dataset.seed)

    def evaluation(split):
        return lambda: dequantized_batches(
            split, trainer.eval_batch_size, device, dataset.num_bits, seed, dataset.num_workers
        )

    return RunData(
        kind=DatasetKind.image,
        shape=tuple(splits.shape),
        train=lambda batch_size, stream_seed: ImageBatches(
            splits.train, batch_size, device, dataset.num_bits, dataset.num_workers, dataset.shuffle, dataset.flip,
            stream_seed,
        ),  # fmt: skip
        validation=evaluation(splits.val),
        test=evaluation(splits.test),
        num_bits=dataset.num_bits,
        val_indices=splits.val_indices,
    )


def build_flow(model: ModelConfig, data: RunData) -> torch.nn.Module:
    """The paper's tabular/2-D flow (REFERENCE 4.1, 4.3) or its Glow-style image flow (REFERENCE 4.2)."""
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
            linear=model.linear.value,
            **shared,
        )
    if model.arch != Arch.coupling:
        raise RunError("image flows are coupling flows (REFERENCE 4.2); use model.arch=coupling.")
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


def test_results(flow: torch.nn.Module, data: RunData) -> dict:
    """The paper's test metric over the whole test split, mean ± 2 s.e.: log-likelihood in nats (vectors; for
    2-D data also E log p_true and the KL gap), or bits/dim (images; also the original's 2·std/N error bar)."""
    model = log_likelihoods(flow, data.test())
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
        truth = data.true_log_prob(data.test_points.cpu())
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
    pictures = {f"samples/temperature_{temperature}": grid for temperature, grid in sample_grids(flow, data.num_bits).items()}
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


def train(config: Config, run_dir: Path) -> dict:
    """Train, then evaluate the best-validation checkpoint on the test split; write results.json."""
    seed_everything(config.seed)
    device = select_device(config.trainer.device)
    data = load_data(config.dataset, config.paths.data_dir, config.trainer, config.seed, device)
    flow = build_flow(config.model, data).to(device)
    checkpoint_dir = run_dir / "checkpoints"
    last_path = checkpoint_dir / "last.pt"
    state = None
    if last_path.exists():
        if not config.trainer.resume:
            raise RunError(
                f"{run_dir} already holds a run (checkpoints/last.pt); add trainer.resume=true to continue it, "
                "or remove that folder to start over."
            )
        state = checkpoint.load(last_path)
    if data.val_indices is not None:
        write_atomically(run_dir / "val_indices.npy", lambda handle: np.save(handle, data.val_indices))
    logger = RunLogger(run_dir / "tensorboard", first_step=state["step"] if state else 0)
    trainer = Trainer(
        flow,
        data.train(config.trainer.batch_size, config.seed),
        data.validation,
        config.trainer,
        checkpoint_dir,
        logger,
        {"config": plain(config)},
        pictures=lambda step: save_pictures(flow, data, run_dir, logger, step),
        image_dimension=math.prod(data.shape) if data.kind == DatasetKind.image else None,
    )
    if state is not None:
        trainer.resume(state)
        print(f"resuming {run_dir} at step {trainer.step}")
    try:
        trainer.fit()
        best = checkpoint.load(checkpoint_dir / "best.pt")
        flow.load_state_dict(best["model"])
        record = {
            "dataset": config.dataset.name,
            "model": config.model.name,
            "family": config.model.family.value,
            "arch": config.model.arch.value,
            "seed": config.seed,
            **test_results(flow, data),
            "steps": trainer.step,
            "best_step": best["step"],
            "best_val": best["val_log_prob"],
            "wall_time_s": trainer.elapsed,
            "num_parameters": sum(parameter.numel() for parameter in flow.parameters()),
            "git_revision": git_revision(),
            "run_dir": str(run_dir),
        }
        pictures = save_pictures(flow, data, run_dir, logger, trainer.step)
        if pictures:
            record["pictures"] = [str(path) for path in pictures]
        logger.hparams(
            {key: value for key, value in flatten(plain(config)).items() if value is not None},
            {f"hparam/{record['metric']}": record["value"]}
            | ({"hparam/kl_gap": record["kl_gap"]} if record.get("kl_gap") is not None else {}),
        )
    finally:
        logger.close()
    write_json(run_dir / "results.json", record)
    return record


def _restore(config: Config) -> tuple[dict, torch.nn.Module, RunData]:
    """The checkpoint named by ckpt=, its model (weights loaded, eval mode) and its dataset."""
    if config.ckpt is None:
        raise RunError(f"task={config.task.value} needs a checkpoint: add ckpt=<run dir>/checkpoints/best.pt.")
    state = checkpoint.load(config.ckpt)
    saved = state["config"]
    device = select_device(config.trainer.device)
    data = load_data(typed(DatasetConfig, saved["dataset"]), config.paths.data_dir, config.trainer, saved["seed"], device)
    flow = build_flow(typed(ModelConfig, saved["model"]), data).to(device)
    flow.load_state_dict(state["model"])
    flow.eval()
    return state, flow, data


def evaluate(config: Config, run_dir: Path) -> dict:
    """Evaluate a checkpoint on its dataset's test split; write results.json."""
    seed_everything(config.seed)
    started = time.perf_counter()
    state, flow, data = _restore(config)
    saved = state["config"]
    record = {
        "dataset": saved["dataset"]["name"],
        "model": saved["model"]["name"],
        "family": saved["model"]["family"],
        "arch": saved["model"]["arch"],
        "seed": saved["seed"],
        **test_results(flow, data),
        "steps": state["step"],
        "checkpoint": str(Path(config.ckpt).resolve()),
        "wall_time_s": time.perf_counter() - started,
        "num_parameters": sum(parameter.numel() for parameter in flow.parameters()),
        "git_revision": git_revision(),
        "run_dir": str(run_dir),
    }
    write_json(run_dir / "results.json", record)
    return record


@torch.no_grad()
def sample(config: Config, run_dir: Path) -> Path:
    """Draw n samples at `temperature` from a checkpoint into samples.npy (display pixels for images), plus pictures."""
    seed_everything(config.seed)
    state, flow, data = _restore(config)
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
