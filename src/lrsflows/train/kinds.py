"""The three kinds of data a run can train on, each one object owning all that differs between them: how its
splits are loaded, which flow it builds, its test metric, the scale of its loss, its pictures and the results
table its runs belong to. The tasks (tasks.py) are written once against this interface.
"""

import dataclasses
import inspect
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from ..config import Config, DatasetConfig, ModelConfig, Precision, TrainerConfig
from ..data.dequantization import to_display
from ..data.images import load_image_splits
from ..data.splits import load_splits
from ..data.toy2d import density
from ..errors import RunError
from ..files import write_atomically
from ..flows import build_image_flow, build_tabular_flow
from ..splines import SplineSettings
from . import distributed
from .batches import ImageBatches, TensorBatches, dequantized_batches, tensor_batches
from .distributed import Process
from .evaluate import Estimate, log_likelihoods, per_example
from .image_pictures import grid_figure, readable_grid, reconstruction, sample_grids
from .logger import RunLogger
from .plots import density_figure

RECONSTRUCTED_IMAGES = 8
SHOWN_SAMPLES = 256  # the most of task=sample's images one grid shows


@dataclasses.dataclass
class RunData:
    """What a run trains on and is scored on, whatever the dataset kind.

    `validation()` and `test()` start a fresh, reproducible pass over this process's share of their split;
    `train()` opens its resumable training stream (only training needs one, so it is opened on demand).
    `dtype` is the floating type of every batch, which the model takes too. 2-D data also carries its exact
    log-density, images the indices of the training images held out for validation.
    """

    shape: tuple[int, ...]
    dtype: torch.dtype
    train: Callable[[], Iterator[torch.Tensor]]
    validation: Callable[[], Iterable[torch.Tensor]]
    test: Callable[[], Iterable[torch.Tensor]]
    true_log_prob: Callable[[torch.Tensor], torch.Tensor] | None = None
    val_indices: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class Drawn:
    """What task=sample drew: its samples as samples.npy holds them, and the temperature they were drawn at."""

    samples: torch.Tensor
    temperature: float

    @property
    def label(self) -> str:
        return f"n = {len(self.samples)} · T = {self.temperature}"

    @property
    def name(self) -> str:
        """The picture's file name without suffix: samples_n300_T0.5."""
        return f"samples_n{len(self.samples)}_T{self.temperature}"


@dataclasses.dataclass(frozen=True)
class Picturing:
    """What a kind's pictures are for: the folder they go to, TensorBoard (None: files only), the step they show,
    their title, a training run's data (for pictures that need real examples) and task=sample's drawn samples
    (pictured instead of fresh ones)."""

    folder: Path
    step: int
    title: str
    logger: RunLogger | None = None
    data: RunData | None = None
    drawn: Drawn | None = None


class Vectors:
    """Tabular data: fixed splits read from the data root, the paper's tabular/2-D flow, test log-likelihood in
    nats (mean ± 2 s.e.), no pictures."""

    name = "tabular"
    table = "tabular"

    def load(self, dataset: DatasetConfig, data_dir: str, trainer: TrainerConfig, seed: int, process: Process):
        """This process's streams (its share of every batch and split when there are several)."""
        dtype = self.dtype(trainer)
        splits = load_splits(
            dataset.name, dataset.kind, data_dir, dataset.num_train, dataset.num_val, dataset.num_test, dataset.seed
        ).to(process.device, dtype)
        share = dict(rank=process.rank, world_size=process.world_size)
        return RunData(
            shape=(splits.features,),
            dtype=dtype,
            train=lambda: TensorBatches(splits.train, trainer.batch_size, seed, **share),
            validation=lambda: tensor_batches(splits.val, trainer.eval_batch_size, **share),
            test=lambda: tensor_batches(splits.test, trainer.eval_batch_size, **share),
            true_log_prob=splits.true_log_prob,
        )

    def dtype(self, trainer: TrainerConfig) -> torch.dtype:
        """The floating type of batches and model: float64 for trainer.precision=fp64, else float32."""
        return torch.float64 if trainer.precision == Precision.fp64 else torch.float32

    def build(self, model: ModelConfig, dataset: DatasetConfig, shape: tuple[int, ...]) -> torch.nn.Module:
        """The paper's tabular/2-D flow (docs/architectures.md §Tabular and 2-D flows) for vectors of `shape`."""
        return from_config(build_tabular_flow, model, shape[0])

    def loss_scale(self, data: RunData) -> int | None:
        """The dimension whose bits the loss is counted in (images), None for a loss in nats."""
        return None

    def score(self, flow: torch.nn.Module, data: RunData, process: Process) -> dict:
        """Test log-likelihood in nats over the whole test split, mean ± 2 s.e., and where the exact density is
        known (2-D data) E log p_true and the KL gap. Each process scores its share; the per-example values are
        gathered, so the numbers equal one process's."""
        batches = list(data.test())
        model = distributed.gather(log_likelihoods(flow, batches), process)
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

    def pictures(self, flow, dataset: DatasetConfig, request: Picturing) -> list[Path]:
        """The kind's pictures as PNGs in `request.folder` (and TensorBoard when it has a logger), each titled with
        `request.title` and what it shows. Tabular data has none."""
        return []

    def displayed(self, samples: torch.Tensor, dataset: DatasetConfig) -> torch.Tensor:
        """Samples as samples.npy stores them."""
        return samples


class Generated(Vectors):
    """2-D densities: splits drawn from a seeded generator (scored against their exact density where known, see
    Vectors.score), pictured as true density, model density and samples."""

    name = "toy2d"
    table = "toy2d"

    def pictures(self, flow, dataset: DatasetConfig, request: Picturing) -> list[Path]:
        source, drawn = density(dataset.name), request.drawn
        figure = density_figure(
            flow,
            f"{request.title} · {drawn.label}" if drawn else request.title,
            source.log_prob if source.has_log_prob else None,
            samples=drawn.samples if drawn else None,
        )
        name = drawn.name if drawn else f"density_step{request.step:07d}"
        return [publish(figure, request.folder / f"{name}.png", request.logger, "density", request.step)]


class Images:
    """Images: the official test set and a seeded validation fraction of the training set, dequantised batches,
    the Glow-style image flow, test bits/dim, sample grids and a reconstruction check."""

    name = "image"
    table = "images"

    def load(self, dataset: DatasetConfig, data_dir: str, trainer: TrainerConfig, seed: int, process: Process):
        if trainer.precision == Precision.fp64:
            raise RunError(
                "trainer.precision=fp64 is for tabular and 2-D data; train image flows in fp32, bf16 or fp16."
            )
        splits = load_image_splits(dataset.name, data_dir, dataset.valid_frac, dataset.seed)
        share = dict(rank=process.rank, world_size=process.world_size)
        loading = dict(device=process.device, num_bits=dataset.num_bits, num_workers=dataset.num_workers, **share)

        def evaluation(split):
            return lambda: dequantized_batches(split, trainer.eval_batch_size, seed=seed, **loading)

        return RunData(
            shape=tuple(splits.shape),
            dtype=torch.float32,
            train=lambda: ImageBatches(
                splits.train, trainer.batch_size, shuffle=dataset.shuffle, flip=dataset.flip, seed=seed, **loading
            ),
            validation=evaluation(splits.val),
            test=evaluation(splits.test),
            val_indices=splits.val_indices,
        )

    def dtype(self, trainer: TrainerConfig) -> torch.dtype:
        return torch.float32

    def build(self, model: ModelConfig, dataset: DatasetConfig, shape: tuple[int, ...]) -> torch.nn.Module:
        """The Glow-style image flow (docs/architectures.md §Image flows) for images of `shape` (C, H, W)."""
        if model.arch != "coupling":
            raise RunError(
                "image flows are coupling flows (as in the LRS and NSF image experiments); use model.arch=coupling."
            )
        return from_config(build_image_flow, model, tuple(shape), num_bits=dataset.num_bits)

    def loss_scale(self, data: RunData) -> int | None:
        return math.prod(data.shape)

    def score(self, flow, data: RunData, process: Process) -> dict:
        """Test bits/dim, mean ± 2 s.e., and the original code's error bar (2·std/N)."""
        log_likelihood = distributed.gather(log_likelihoods(flow, data.test()), process)
        result = Estimate.of(-log_likelihood / (math.prod(data.shape) * math.log(2)))
        return {
            "metric": "test_bits_per_dim",
            "unit": "bits/dim",
            "higher_is_better": False,
            "value": result.mean,
            "error": result.error,
            "error_original": result.error / math.sqrt(result.count),  # the original code divides by N, not √N
            "num_test": result.count,
        }

    def pictures(self, flow, dataset: DatasetConfig, request: Picturing) -> list[Path]:
        """Sample grids at three temperatures and, during training, a reconstruction check of validation images;
        for task=sample one grid of its samples (the first SHOWN_SAMPLES)."""
        title, step, logger, drawn = request.title, request.step, request.logger, request.drawn
        if drawn is not None:
            shown = drawn.samples[:SHOWN_SAMPLES]
            cap = f" (first {len(shown)} shown)" if len(shown) < len(drawn.samples) else ""
            figure = grid_figure(readable_grid(shown), f"{title} · {drawn.label}{cap}")
            return [publish(figure, request.folder / f"{drawn.name}.png", logger, "samples", step)]
        pictures = {
            f"samples/temperature_{t}": (grid, f"{title} · T = {t}")
            for t, grid in sample_grids(flow, dataset.num_bits).items()
        }
        if logger is not None and request.data is not None:
            fixed_batch = next(iter(request.data.validation()))[:RECONSTRUCTED_IMAGES]
            grid, error = reconstruction(flow, fixed_batch, dataset.num_bits)
            caption = f"{title} · reconstruction: images (top), x → z → x (bottom), largest error {error:.0e}"
            pictures["reconstruction"] = (grid, caption)
            logger.scalars(step, {"val/reconstruction_error": error})
        return [
            publish(
                grid_figure(grid, caption),
                request.folder / f"{tag.replace('/', '_')}_step{step:07d}.png",
                *(logger, tag, step),
            )
            for tag, (grid, caption) in pictures.items()
        ]

    def displayed(self, samples: torch.Tensor, dataset: DatasetConfig) -> torch.Tensor:
        return to_display(samples, dataset.num_bits)


def build_flow(config: Config, shape: tuple[int, ...], device: torch.device) -> torch.nn.Module:
    """The flow `config` describes for examples of `shape`, on `device` in its data kind's floating type: what
    training builds from its data and a checkpoint is rebuilt as."""
    kind = KINDS[config.dataset.kind]
    return kind.build(config.model, config.dataset, shape).to(device, kind.dtype(config.trainer))


# Builder parameters of the library only: the CLI trains unconditional densities, so the builder's default (no
# context) stands.
LIBRARY_ONLY = ("context_features", "embedding")


def from_config(builder: Callable, model: ModelConfig, first, **given) -> torch.nn.Module:
    """`builder(first, **given)` with each of its other parameters read from the model config by the same name
    (`spline` from the spline settings), so the config→builder mapping is written nowhere: a builder parameter
    the config lacks is an AttributeError, not a silent default (LIBRARY_ONLY's names excepted)."""
    parameters = list(inspect.signature(builder).parameters)[1:]
    names = [name for name in parameters if name not in given and name not in LIBRARY_ONLY]
    values = {name: SplineSettings.of(model) if name == "spline" else getattr(model, name) for name in names}
    return builder(first, **given, **values)


def publish(figure: Figure, path: Path, logger: RunLogger | None, tag: str, step: int) -> Path:
    """`figure` as a PNG at `path`, its title also in the PNG's Title text (alt text for a report), and in
    TensorBoard under `tag` when a logger is given."""
    metadata = {"Title": figure.get_suptitle()}
    write_atomically(path, lambda handle: figure.savefig(handle, format="png", dpi="figure", metadata=metadata))
    if logger is not None:
        logger.figure(tag, figure, step)
    return path


# The data kinds by the name dataset.kind gives (the name each dataset's spec, or a generated density, has).
KINDS = {kind.name: kind for kind in (Vectors(), Generated(), Images())}
