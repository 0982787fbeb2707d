"""Typed schemas of the Hydra config tree, so a wrong value fails before any work with the valid choices named.

The YAML files under conf/ fill these dataclasses; OmegaConf checks every override against the field types
(a float that is not a number, an enum value that is not a member, a key that does not exist) and Hydra lists
the options of a config group when a group choice does not exist. Code below the CLI receives the dataclasses.
"""

from dataclasses import dataclass, field
from enum import Enum

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


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
    num_train: int = 100_000
    num_val: int = 20_000
    num_test: int = 100_000
    seed: int = 0
    # Images: bits kept per sub-pixel, the validation fraction of the official training set (seeded by `seed`),
    # DataLoader workers, reshuffling every epoch (off: the original iterates one fixed order), horizontal flips.
    num_bits: int = 8
    valid_frac: float = 0.02
    num_workers: int = 2
    shuffle: bool = False
    flip: bool = False


@dataclass
class ModelConfig:
    name: str = MISSING
    family: Family = MISSING
    arch: Arch = Arch.coupling
    num_flow_steps: int = 10
    hidden_features: int = 256
    num_blocks: int = 2
    num_bins: int = 8
    tail_bound: float = 3.0
    dropout: float = 0.0
    use_batch_norm: bool = False
    unconditional_transform: bool = True
    unconditional_init: UnconditionalInit = UnconditionalInit.original
    linear: Linear = Linear.lu
    min_bin_width: float = 1e-3
    min_bin_height: float = 1e-3
    min_derivative: float = 1e-3
    # Image flows (REFERENCE 4.2): levels of squeeze + steps x [ActNorm, 1x1 conv, coupling], conv conditioners.
    num_levels: int = 3
    steps_per_level: int = 7
    hidden_channels: int = 96
    multi_scale: bool = False
    actnorm: bool = True
    preprocessing: Preprocessing = Preprocessing.glow
    alpha: float = 0.05


@dataclass
class TrainerConfig:
    max_steps: int = 10_000
    batch_size: int = 512
    lr: float = 5e-4
    anneal_lr: bool = True
    grad_clip: float | None = 5.0
    val_every: int = 250
    eval_batch_size: int = 8192
    checkpoint_every: int = 1000
    log_every: int = 10
    pictures_every: int = 0
    resume: bool = False
    device: str = "auto"
    progress_bar: bool = True
    # Processes: 1, or N data-parallel processes started through torch's elastic launcher (torchrun sets its own).
    devices: int = 1
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
    n: int = 10_000
    temperature: float = 1.0
    paths: PathsConfig = field(default_factory=PathsConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def register_schema() -> None:
    """Make the schema available to conf/config.yaml's defaults list as `config_schema`."""
    ConfigStore.instance().store(name="config_schema", node=Config)
