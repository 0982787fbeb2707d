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
from dataclasses import dataclass, field
from enum import Enum

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


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


def _ranged(default, allowed: Range):
    return field(default=default, metadata={"range": allowed})


def count(default: int, minimum: int = 1):
    """An integer setting that must be at least `minimum` (1 where zero is meaningless)."""
    return _ranged(default, Range(low=minimum))


def positive(default):
    """A strictly positive number (rates, bounds, temperatures)."""
    return _ranged(default, Range(low=0, low_open=True))


def fraction(default: float, high: float = 1.0):
    """A number in [0, high): probabilities, fractions, minimum bin sizes."""
    return _ranged(default, Range(low=0, high=high, high_open=True))


class Task(str, Enum):
    train = "train"
    eval = "eval"
    sample = "sample"


class DatasetKind(str, Enum):
    tabular = "tabular"
    toy2d = "toy2d"
    image = "image"


class Family(str, Enum):
    """The spline families of lrsflows.splines.FAMILIES, and affine."""

    lrs = "lrs"
    rq = "rq"
    quadratic = "quadratic"  # NSF's code, behind the published Q-NSF numbers (boundary slopes below 1)
    quadratic_c1 = "quadratic_c1"  # our correction: boundary density exactly 1, C1 join with the tails
    affine = "affine"


class UnconditionalInit(str, Enum):
    """Initial parameters of a coupling's unconditional map (lrsflows.splines.INIT_CHOICES)."""

    original = "original"  # each family's original code: U[0,1) for lrs and rq, N(0,1) for quadratic(_c1)
    uniform = "uniform"  # U[0,1) for every family
    normal = "normal"  # N(0,1) for every family


class Arch(str, Enum):
    coupling = "coupling"
    autoregressive = "autoregressive"


class Linear(str, Enum):
    lu = "lu"
    permutation = "permutation"
    none = "none"


class Precision(str, Enum):
    fp32 = "fp32"
    fp64 = "fp64"
    bf16 = "bf16"
    fp16 = "fp16"


class Preprocessing(str, Enum):
    glow = "glow"
    realnvp = "realnvp"
    realnvp_2alpha = "realnvp_2alpha"


@dataclass
class PathsConfig:
    data_dir: str = MISSING
    output_dir: str = "outputs"


@dataclass
class DatasetConfig:
    name: str = MISSING
    kind: DatasetKind = MISSING
    # Sizes and seed of the generated splits of a 2-D density (tabular datasets have fixed splits).
    num_train: int = count(100_000)
    num_val: int = count(20_000)
    num_test: int = count(100_000)
    seed: int = 0
    # Images: bits kept per sub-pixel, the validation fraction of the official training set (seeded by `seed`),
    # DataLoader workers, reshuffling every epoch (off: the original iterates one fixed order), horizontal flips.
    num_bits: int = _ranged(8, Range(low=1, high=8))
    valid_frac: float = _ranged(0.02, Range(low=0, high=1, low_open=True, high_open=True))
    num_workers: int = count(2, minimum=0)
    shuffle: bool = False
    flip: bool = False


@dataclass
class ModelConfig:
    name: str = MISSING
    family: Family = MISSING
    arch: Arch = Arch.coupling
    num_flow_steps: int = count(10)
    hidden_features: int = count(256)
    num_blocks: int = count(2)
    num_bins: int = count(8, minimum=2)
    tail_bound: float = positive(3.0)
    dropout: float = fraction(0.0)
    use_batch_norm: bool = False
    unconditional_transform: bool = True
    unconditional_init: UnconditionalInit = UnconditionalInit.original
    linear: Linear = Linear.lu
    min_bin_width: float = fraction(1e-3)
    min_bin_height: float = fraction(1e-3)
    min_derivative: float = fraction(1e-3)
    # Image flows (docs/architectures.md §Image flows): levels of squeeze + steps x [ActNorm, 1x1 conv,
    # coupling], conv conditioners.
    num_levels: int = count(3)
    steps_per_level: int = count(7)
    hidden_channels: int = count(96)
    multi_scale: bool = False
    actnorm: bool = True
    preprocessing: Preprocessing = Preprocessing.glow
    alpha: float = fraction(0.05, high=0.5)  # realnvp preprocessing maps [0, 1] to [alpha, 1 - alpha]


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
    sync_batchnorm: bool = False
    # fp32, fp64 (the whole model), or bf16/fp16 autocast of the conditioners (splines stay float32; fp16 adds a
    # gradient scaler); torch.compile of the training step; deterministic algorithms where torch has them.
    precision: Precision = Precision.fp32
    compile: bool = False
    deterministic: bool = False


@dataclass
class Config:
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
    for section in (config, config.dataset, config.model, config.trainer):
        prefix = "" if section is config else f"{_section_name(config, section)}."
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


def _section_name(config: Config, section) -> str:
    return next(spec.name for spec in dataclasses.fields(config) if getattr(config, spec.name) is section)


def register_schema() -> None:
    """Make the schema available to conf/config.yaml's defaults list as `config_schema`."""
    ConfigStore.instance().store(name="config_schema", node=Config)
