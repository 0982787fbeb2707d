"""The three tasks of the entry point (train, eval, sample) on typed configs: data + model + trainer + results.json."""

import dataclasses
import json
import random
import subprocess
import time
from enum import Enum
from pathlib import Path

import numpy as np
import torch

from ..config import Config, DatasetConfig, ModelConfig
from ..data.splits import Splits, load_splits
from ..errors import RunError
from ..flows import build_tabular_flow
from . import checkpoint
from .batches import TensorBatches
from .evaluate import Estimate, log_likelihoods
from .files import write_atomically, write_json
from .logger import RunLogger
from .plots import density_figure
from .trainer import Trainer


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


def build_flow(model: ModelConfig, features: int) -> torch.nn.Module:
    settings = {key: value.value if isinstance(value, Enum) else value for key, value in vars(model).items()}
    settings.pop("name")
    return build_tabular_flow(features, **settings)


def load_dataset(dataset: DatasetConfig, data_dir: str, device: torch.device) -> Splits:
    return load_splits(
        dataset.name, dataset.kind, data_dir, dataset.num_train, dataset.num_val, dataset.num_test, dataset.seed
    ).to(device)


def test_results(flow: torch.nn.Module, splits: Splits, batch_size: int) -> dict:
    """Test log-likelihood (nats, mean ± 2 s.e. over the whole test split); for 2-D data also E log p_true and the KL gap."""
    model = log_likelihoods(flow, splits.test, batch_size)
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
    if splits.true_log_prob is not None:
        truth = splits.true_log_prob(splits.test.cpu())
        true_estimate, gap = Estimate.of(truth), Estimate.of(truth - model)
        record.update(
            true_log_prob=true_estimate.mean,
            true_log_prob_error=true_estimate.error,
            kl_gap=gap.mean,
            kl_gap_error=gap.error,
        )
    return record


def save_pictures(flow, splits: Splits, run_dir: Path, logger: RunLogger | None, step: int) -> Path:
    """The 2-D density/sample figure as a PNG in the run dir (and in TensorBoard when a logger is given)."""
    figure = density_figure(flow, splits.true_log_prob)
    path = run_dir / "pictures" / f"density_step{step:07d}.png"
    write_atomically(path, lambda handle: figure.savefig(handle, format="png", dpi=100))
    if logger is not None:
        logger.figure("density", figure, step)
    return path


def train(config: Config, run_dir: Path) -> dict:
    """Train, then evaluate the best-validation checkpoint on the test split; write results.json."""
    seed_everything(config.seed)
    device = select_device(config.trainer.device)
    splits = load_dataset(config.dataset, config.paths.data_dir, device)
    flow = build_flow(config.model, splits.features).to(device)
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
    logger = RunLogger(run_dir / "tensorboard", first_step=state["step"] if state else 0)
    is_2d = config.dataset.kind == "toy2d"

    def on_validation(step: int) -> None:
        if is_2d and config.trainer.plot_every and step % config.trainer.plot_every == 0:
            save_pictures(flow, splits, run_dir, logger, step)

    batches = TensorBatches(splits.train, config.trainer.batch_size, seed=config.seed)
    trainer = Trainer(
        flow, batches, splits.val, config.trainer, checkpoint_dir, logger, {"config": plain(config)}, on_validation
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
            **test_results(flow, splits, config.trainer.eval_batch_size),
            "steps": trainer.step,
            "best_step": best["step"],
            "best_val": best["val_log_prob"],
            "wall_time_s": trainer.elapsed,
            "num_parameters": sum(parameter.numel() for parameter in flow.parameters()),
            "git_revision": git_revision(),
            "run_dir": str(run_dir),
        }
        if is_2d:
            record["pictures"] = str(save_pictures(flow, splits, run_dir, logger, trainer.step))
        logger.hparams(
            {key: value for key, value in flatten(plain(config)).items() if value is not None},
            {"hparam/test_log_likelihood": record["value"]}
            | ({"hparam/kl_gap": record["kl_gap"]} if record["kl_gap"] is not None else {}),
        )
    finally:
        logger.close()
    write_json(run_dir / "results.json", record)
    return record


def _restore(config: Config) -> tuple[dict, torch.nn.Module, Splits, torch.device]:
    """The checkpoint named by ckpt=, its model (weights loaded, eval mode) and its dataset."""
    if config.ckpt is None:
        raise RunError(f"task={config.task.value} needs a checkpoint: add ckpt=<run dir>/checkpoints/best.pt.")
    state = checkpoint.load(config.ckpt)
    saved = state["config"]
    device = select_device(config.trainer.device)
    splits = load_dataset(DatasetConfig(**saved["dataset"]), config.paths.data_dir, device)
    flow = build_flow(ModelConfig(**saved["model"]), splits.features).to(device)
    flow.load_state_dict(state["model"])
    flow.eval()
    return state, flow, splits, device


def evaluate(config: Config, run_dir: Path) -> dict:
    """Evaluate a checkpoint on its dataset's test split; write results.json."""
    seed_everything(config.seed)
    started = time.perf_counter()
    state, flow, splits, _ = _restore(config)
    saved = state["config"]
    record = {
        "dataset": saved["dataset"]["name"],
        "model": saved["model"]["name"],
        "family": saved["model"]["family"],
        "arch": saved["model"]["arch"],
        "seed": saved["seed"],
        **test_results(flow, splits, config.trainer.eval_batch_size),
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
    """Draw n samples at `temperature` from a checkpoint into samples.npy (and a picture for 2-D data)."""
    seed_everything(config.seed)
    state, flow, splits, _ = _restore(config)
    chunks, remaining = [], config.n
    while remaining > 0:
        count = min(remaining, config.trainer.eval_batch_size)
        chunks.append(flow.sample(count, temperature=config.temperature).cpu())
        remaining -= count
    samples = torch.cat(chunks).numpy()
    path = run_dir / "samples.npy"
    write_atomically(path, lambda handle: np.save(handle, samples))
    if state["config"]["dataset"]["kind"] == "toy2d":
        save_pictures(flow, splits, run_dir, None, state["step"])
    return path
