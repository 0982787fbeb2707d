"""Where a result came from: what was trained with which configuration, its size, the source revision, the
library versions, device and date. Every results.json carries these fields beside its scores."""

import platform
import subprocess
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from .record import config_digest, training_config


def provenance(task: str, config: dict, flow: torch.nn.Module, run_dir: Path, device: torch.device) -> dict:
    """The fields of a results.json besides the scores (`config` is the training run's resolved config, plain,
    also for eval)."""
    training = training_config(config)
    return {
        "task": task,
        "data_kind": config["dataset"]["kind"],
        "config": training,
        "config_digest": config_digest(training),
        "lrsflows_version": library_version(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device": str(device),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "dataset": config["dataset"]["name"],
        "model": config["model"]["name"],
        "family": config["model"]["family"],
        "arch": config["model"]["arch"],
        "seed": config["seed"],
        "num_parameters": sum(parameter.numel() for parameter in flow.parameters()),
        "git_revision": git_revision(),
        "run_dir": str(run_dir),
    }


def library_version() -> str:
    try:
        return version("lrsflows")
    except PackageNotFoundError:
        return "unknown"


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
