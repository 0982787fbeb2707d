"""What a run says about itself: its model's size by layer type when it starts, and the settings and scores that
tell it apart from other runs in TensorBoard's hparams tab when it ends."""

import dataclasses
import textwrap
from collections import Counter

import torch

from ..config import Config, plain
from ..results.record import NOT_TRAINING, flatten

# The settings that name a run (as its dir does), whatever their values.
IDENTITY = ("dataset.name", "model.name", "model.family", "model.arch", "seed")
SECTIONS = ("dataset", "model", "trainer")


def model_summary(flow: torch.nn.Module) -> str:
    """Parameters per layer type (the flow's modules grouped by class; each module counts only its own
    parameters, so the rows add up to the total), then the types that hold none, so it fits on one screen."""
    count, own = Counter(), Counter()
    for module in flow.modules():
        name = type(module).__name__
        count[name] += 1
        own[name] += sum(parameter.numel() for parameter in module.parameters(recurse=False))
    total = sum(parameter.numel() for parameter in flow.parameters())
    trainable = sum(parameter.numel() for parameter in flow.parameters() if parameter.requires_grad)
    holding = sorted((name for name in count if own[name]), key=lambda name: (-own[name], name))
    width = max(map(len, ["layer type", *holding]))
    lines = [
        f"model: {total:,} parameters ({trainable:,} trainable)",
        f"  {'layer type':<{width}}  {'count':>6}  {'parameters':>12}",
        *(f"  {name:<{width}}  {count[name]:>6,}  {own[name]:>12,}" for name in holding),
    ]
    empty = ", ".join(f"{name}×{count[name]}" for name in sorted(count) if not own[name])  # one word each, unsplit
    if empty:
        lines += textwrap.wrap(f"without parameters: {empty}", width=110, initial_indent="  ", subsequent_indent="    ")
    return "\n".join(lines)


def defining_settings(config: Config) -> dict:
    """The hparams of a run: what names it (IDENTITY) and each setting its data kind reads that is away from the
    schema's default, less those that cannot change a number (record.NOT_TRAINING). Two runs of the same settings
    get the same hparams however the settings were given (preset, command line), data-parallel workers included."""
    values, defaults = flatten(plain(config)), flatten(plain(Config()))
    kind = config.dataset.kind
    read = {
        f"{section}.{spec.name}"
        for section in SECTIONS
        for spec in dataclasses.fields(getattr(config, section))
        if spec.metadata.get("kinds") is None or kind in spec.metadata["kinds"]
    }
    return {
        key: "null" if value is None else value  # TensorBoard takes no None; null is how the command line says it
        for key, value in values.items()
        if key in IDENTITY or (key in read and key not in NOT_TRAINING and value != defaults[key])
    }


def final_metrics(record: dict) -> dict[str, float]:
    """The hparams tab's scores of a finished run (its results.json `record`): the test metric, the KL gap where
    the density is known, the best validation log-likelihood and the steps trained."""
    metrics = {f"hparam/{record['metric']}": record["value"]}
    if record.get("kl_gap") is not None:
        metrics["hparam/kl_gap"] = record["kl_gap"]
    return metrics | {"hparam/best_val_log_prob": record["best_val"], "hparam/steps": record["steps"]}
