"""What a result is: the training configuration that produced it and its digest (provenance.py: where and how).

Tables group runs by this digest, so two runs share a row only when they differ in nothing but the seed.
Keys that cannot change a number (where files go, which device, how often to log, task arguments) stay out.
"""

import hashlib
import json

# Top-level sections and dotted keys of the resolved config that do not change what is trained or scored.
NOT_TRAINING = frozenset(
    {
        "task",
        "seed",
        "ckpt",
        "n",
        "temperature",
        "paths",
        "trainer.device",
        "trainer.threads",
        "trainer.resume",
        "trainer.progress_bar",
        "trainer.log_every",
        "trainer.checkpoint_every",
    }
)
DIGEST_LENGTH = 10


def training_config(config: dict) -> dict:
    """The resolved config (plain, nested) without the keys in NOT_TRAINING."""

    def keep(tree: dict, prefix: str) -> dict:
        kept = {}
        for key, value in tree.items():
            name = f"{prefix}{key}"
            if name in NOT_TRAINING:
                continue
            kept[key] = keep(value, f"{name}.") if isinstance(value, dict) else value
        return kept

    return keep(config, "")


def config_digest(training: dict) -> str:
    """A short, stable digest of a training configuration (key order and whitespace do not matter)."""
    canonical = json.dumps(training, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:DIGEST_LENGTH]


def flatten(tree: dict, prefix: str = "") -> dict:
    """{'model': {'num_bins': 8}} -> {'model.num_bins': 8}."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# Left in a training run's dir when the run stops on an error ({"error": one sentence}); removed when it restarts.
FAILURE_FILE = "failure.json"
