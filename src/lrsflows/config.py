"""Typed schemas of the Hydra config tree, so a wrong value fails before any work with the valid choices named.

The YAML files under conf/ fill these dataclasses; OmegaConf checks every override against the field types
(a float that is not a number, an enum value that is not a member, a key that does not exist) and Hydra lists
the options of a config group when a group choice does not exist. Each numeric field carries its allowed range
beside its default (`count`, `positive`, `fraction`, ...); `validate` checks those ranges, the few rules that
join two fields, and keys that are not in the schema (added with `+`), each failure in one sentence. Code
below the CLI receives the dataclasses.
"""

import dataclasses
import difflib
import importlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf


class ConfigError(ValueError):
    """A setting outside what the schema allows; the message names the key, the value and what is allowed."""


@dataclass(frozen=True)
class Range:
    """The values a numeric setting may take: [low, high] with either end open, None for unbounded."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def admits(self, value) -> bool:
        if value is None:
            return True  # None is allowed exactly where the field's type is optional
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def describe(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '≥'} {self.low:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


# Data kinds a setting applies to (keys of lrsflows.train.kinds.KINDS); a setting without them applies to all.
VECTORS = ("tabular", "toy2d")
IMAGES = ("image",)
GENERATED = ("toy2d",)


def _ranged(default, allowed: Range | None = None, kinds: tuple[str, ...] | None = None):
    return field(default=default, metadata={"range": allowed, "kinds": kinds})


def applies_to(default, kinds: tuple[str, ...]):
    """A setting that only the data kinds `kinds` read; given for another kind it is refused, not ignored."""
    return _ranged(default, kinds=kinds)


def choice(default, registry: str, kinds: tuple[str, ...] | None = None):
    """A name that must be a key of `registry` ("module:attribute", a dict, tuple or function returning one).

    The registries belong to the code that implements the choices (the builders, the data kinds), so checking
    these names imports torch; `validate_choices` runs after the cheap checks."""
    return field(default=default, metadata={"registry": registry, "kinds": kinds})


def count(default: int, minimum: int = 1, kinds: tuple[str, ...] | None = None):
    """An integer setting that must be at least `minimum` (1 where zero is meaningless)."""
    return _ranged(default, Range(low=minimum), kinds)


def positive(default):
    """A strictly positive number (rates, bounds, temperatures)."""
    return _ranged(default, Range(low=0, low_open=True))


def fraction(default: float, high: float = 1.0, kinds: tuple[str, ...] | None = None):
    """A number in [0, high): probabilities, fractions, minimum bin sizes."""
    return _ranged(default, Range(low=0, high=high, high_open=True), kinds)


class Task(str, Enum):
    train = "train"
    eval = "eval"
    sample = "sample"


class Precision(str, Enum):
    fp32 = "fp32"
    fp64 = "fp64"
    bf16 = "bf16"
    fp16 = "fp16"


@dataclass
class PathsConfig:
    data_dir: str = MISSING
    output_dir: str = "outputs"


FAMILIES = "lrsflows.transforms.elementwise:elementwise_families"


@dataclass
class DatasetConfig:
    name: str = MISSING
    # Filled from the dataset's spec (or "toy2d" for a generated density) by conf/config.yaml.
    kind: str = choice(MISSING, "lrsflows.train.kinds:KINDS")
    # Sizes and seed of the generated splits of a 2-D density (tabular datasets have fixed splits; images split
    # their official training set with `seed`).
    num_train: int = count(100_000, kinds=GENERATED)
    num_val: int = count(20_000, kinds=GENERATED)
    num_test: int = count(100_000, kinds=GENERATED)
    seed: int = applies_to(0, GENERATED + IMAGES)
    # Images: bits kept per sub-pixel, the validation fraction of the official training set (seeded by `seed`),
    # DataLoader workers, reshuffling every epoch (off: the original iterates one fixed order), horizontal flips.
    num_bits: int = _ranged(8, Range(low=1, high=8), IMAGES)
    valid_frac: float = _ranged(0.02, Range(low=0, high=1, low_open=True, high_open=True), IMAGES)
    num_workers: int = count(2, minimum=0, kinds=IMAGES)
    shuffle: bool = applies_to(False, IMAGES)
    flip: bool = applies_to(False, IMAGES)


@dataclass
class ModelConfig:
    name: str = MISSING
    family: str = choice(MISSING, FAMILIES)  # a spline family of lrsflows.splines, or affine
    # Image flows are coupling flows (as in the LRS and NSF image experiments).
    arch: str = choice("coupling", "lrsflows.flows.tabular:ARCHITECTURES")
    num_flow_steps: int = count(10, kinds=VECTORS)
    hidden_features: int = count(256, kinds=VECTORS)
    num_blocks: int = count(2)
    # The spline settings (lrsflows.splines.SplineSettings.of reads them by these names).
    num_bins: int = count(8, minimum=2)
    tail_bound: float = positive(3.0)
    min_bin_width: float = fraction(1e-3)
    min_bin_height: float = fraction(1e-3)
    min_derivative: float = fraction(1e-3)
    dropout: float = fraction(0.0)
    use_batch_norm: bool = False
    unconditional_transform: bool = applies_to(True, VECTORS)
    # The initial parameters of a coupling's unconditional map: each family's original code, U[0,1) or N(0,1).
    unconditional_init: str = choice("original", "lrsflows.transforms.coupling:INIT_CHOICES", VECTORS)
    linear: str = choice("lu", "lrsflows.flows.tabular:LINEAR_LAYERS", VECTORS)
    # Image flows (docs/architectures.md §Image flows): levels of squeeze + steps x [ActNorm, 1x1 conv,
    # coupling], conv conditioners.
    num_levels: int = count(3, kinds=IMAGES)
    steps_per_level: int = count(7, kinds=IMAGES)
    hidden_channels: int = count(96, kinds=IMAGES)
    multi_scale: bool = applies_to(False, IMAGES)
    actnorm: bool = applies_to(True, IMAGES)
    preprocessing: str = choice("glow", "lrsflows.flows.image:PREPROCESSINGS", IMAGES)
    # realnvp preprocessing maps [0, 1] to [alpha, 1 - alpha]
    alpha: float = fraction(0.05, high=0.5, kinds=IMAGES)


@dataclass
class TrainerConfig:
    max_steps: int = count(10_000)
    batch_size: int = count(512)
    lr: float = positive(5e-4)
    anneal_lr: bool = True
    grad_clip: float | None = positive(5.0)  # null: no clipping
    val_every: int = count(250)
    eval_batch_size: int = count(8192)
    checkpoint_every: int = count(1000)
    log_every: int = count(10)
    pictures_every: int = count(0, minimum=0)
    resume: bool = False
    # Continue another run's last.pt (same model and data) under this command's trainer settings, e.g. a lower
    # lr after a divergence; the run keeps its own dir. Its best checkpoint is chosen among its own validations.
    resume_from: str | None = None
    device: str = "auto"
    progress_bar: bool = True
    # Processes: 1, or N data-parallel processes started through torch's elastic launcher (torchrun sets its own).
    devices: int = count(1)
    # Intra-op threads per process; null: the available cores divided by the processes running at once on this
    # machine (data-parallel processes x jobs a parallel launcher runs side by side), at least 1.
    threads: int | None = count(None)
    sync_batchnorm: bool = False
    # fp32, fp64 (the whole model), or bf16/fp16 autocast of the conditioners (splines stay float32; fp16 adds a
    # gradient scaler); deterministic algorithms where torch has them.
    precision: Precision = Precision.fp32
    # torch.compile of the training step: false, true, or a torch.compile mode by name (train/compiling.py).
    compile: Any = choice(False, "lrsflows.train.compiling:COMPILE_MODES")
    deterministic: bool = False


@dataclass
class Config:
    """Every setting of a run. The defaults are what every preset starts from (the paper's tabular sizes); a command
    without experiment= gets conf/experiment/toy2d.yaml on top of them (conf/config.yaml's defaults list)."""

    task: Task = Task.train
    seed: int = 0
    ckpt: str | None = None
    n: int = count(10_000)
    temperature: float = positive(1.0)
    paths: PathsConfig = field(default_factory=PathsConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def validate(config: Config) -> None:
    """Raise ConfigError (one sentence) for the first setting outside its Range or a rule joining two settings."""
    for prefix, section in _sections(config):
        for spec in dataclasses.fields(section):
            allowed = spec.metadata.get("range")
            value = getattr(section, spec.name)
            if allowed is not None and not allowed.admits(value):
                kind = "an integer" if spec.type in (int, "int") else "a number"
                raise ConfigError(
                    f"{prefix}{spec.name}={value!r} is not allowed: it must be {kind} {allowed.describe()}."
                )
    model, trainer = config.model, config.trainer
    for name in ("min_bin_width", "min_bin_height"):
        minimum = getattr(model, name)
        if minimum * model.num_bins >= 1.0:
            raise ConfigError(
                f"model.{name}={minimum:g} with model.num_bins={model.num_bins} leaves no room to learn: "
                f"{name} × num_bins must be below 1 (e.g. {name}={0.1 / model.num_bins:.2g})."
            )
    if trainer.batch_size % trainer.devices:
        raise ConfigError(
            f"trainer.batch_size={trainer.batch_size} does not split evenly over trainer.devices={trainer.devices}: "
            "choose a batch size divisible by the number of processes."
        )


def validate_choices(config: Config) -> None:
    """Raise ConfigError for a name that is not in its registry (a family, an arch, a data kind, ...)."""
    for prefix, section in _sections(config):
        for spec in dataclasses.fields(section):
            value = getattr(section, spec.name)
            if "registry" in spec.metadata and value not in (names := choices_of(spec)):
                raise ConfigError(
                    f"{prefix}{spec.name}={value!r} is not one of the choices: {', '.join(map(_spelled, names))}."
                )


def _spelled(name) -> str:
    """A choice as the command line spells it (booleans in lower case)."""
    return str(name).lower() if isinstance(name, bool) else str(name)


def validate_kind_settings(config: Config, given: Iterable[str] = ()) -> None:
    """Raise ConfigError for a setting that the dataset's kind does not read but that was given (on the command
    line, `given`, or set away from its default by a preset): it would be ignored yet still name the run dir."""
    given = set(given)
    kind = config.dataset.kind
    for prefix, section in _sections(config):
        for spec in dataclasses.fields(section):
            kinds = spec.metadata.get("kinds")
            key = f"{prefix}{spec.name}"
            if kinds is None or kind in kinds:
                continue
            value = getattr(section, spec.name)
            if key in given:
                remedy = f"leave {key} out"
            elif value != spec.default:
                remedy = (
                    f"it comes from the experiment= preset (experiment=toy2d when none is given), one for "
                    f"{' or '.join(kinds)} data; choose a dataset of that kind, or a preset for {kind} data "
                    "(--help lists them)"
                )
            else:
                continue
            raise ConfigError(
                f"{key}={value!r} applies only to {' and '.join(kinds)} data, but dataset {config.dataset.name} "
                f"is {kind} data: {remedy}."
            )


def choices_of(spec: dataclasses.Field) -> list:
    """The names a choice field accepts: its registry's keys ("module:attribute", a mapping, a sequence, or a
    function returning one)."""
    module, attribute = spec.metadata["registry"].split(":")
    names = getattr(importlib.import_module(module), attribute)
    return list(names() if callable(names) else names)


def _sections(config: Config):
    yield "", config
    for spec in dataclasses.fields(config):
        value = getattr(config, spec.name)
        if dataclasses.is_dataclass(value):
            yield f"{spec.name}.", value


def check_known_keys(values: dict, schema=Config, prefix: str = "") -> None:
    """Raise ConfigError for a key the schema does not have (a misspelling added with `+` would be ignored)."""
    fields = {spec.name: spec for spec in dataclasses.fields(schema)}
    for key, value in values.items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = (
                f"did you mean {prefix}{close[0]}?"
                if close
                else f"the keys of {prefix or 'the config'} are listed by --cfg job."
            )
            raise ConfigError(f"{prefix}{key} is not a setting of this program; {hint}")
        nested = fields[key].default_factory
        if isinstance(value, dict) and dataclasses.is_dataclass(nested):
            check_known_keys(value, nested, f"{prefix}{key}.")


def plain(settings) -> dict:
    """A config dataclass as JSON-able builtins (enums as their values), for checkpoints and results."""
    return json.loads(json.dumps(dataclasses.asdict(settings), default=lambda value: value.value))


def typed(schema, values: dict):
    """A config section saved in a checkpoint, back as its schema's dataclass (enums and types checked)."""
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values))


# Before Q-NSF followed NSF's code, family "quadratic" was our C1 correction (now "quadratic_c1") and
# "quadratic_original" NSF's spline (now "quadratic"); checkpoints of then lack model.unconditional_init.
RENAMED_FAMILIES = {"quadratic": "quadratic_c1", "quadratic_original": "quadratic"}


def saved_model_config(values: dict) -> ModelConfig:
    """A checkpoint's model section as a ModelConfig, with an older checkpoint's family read by its old name."""
    if "unconditional_init" not in values:
        family = RENAMED_FAMILIES.get(values["family"], values["family"])
        values = {**values, "family": family, "unconditional_init": "uniform"}  # U[0,1) was then the only init
    return typed(ModelConfig, values)


def register_schema() -> None:
    """Make the schema available to conf/config.yaml's defaults list as `config_schema`."""
    ConfigStore.instance().store(name="config_schema", node=Config)
