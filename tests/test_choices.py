"""Every accepted choice works: each value the config schema accepts, and every paper preset with every model.

Each case composes the config through Hydra's compose API (so whatever conf/config.yaml's defaults list holds
is applied), builds the model the composed config describes, checks its size against a count derived from
the composed config and the spline registry, and runs two real training steps (the Trainer, the real batch
streams) on tiny generated data of the dataset's true shape: a finite loss, and every parameter moved.

Every value list here comes from the registries the schema names (families, archs, linear layers,
preprocessings, data kinds), its Enums and bools, and the conf/ directory listings at collection time; nothing
is typed by hand. Paper presets keep their model sizes; only the batch and the data are tiny.
"""

import dataclasses
import enum
import io
import math
import shutil
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import lrsflows.cli  # noqa: F401  (registers the schema and the run-dir resolvers the primary config uses)
from lrsflows import config as schema
from lrsflows.cli import CONFIG_DIR
from lrsflows.config import Precision, Task
from lrsflows.data.image_datasets import TensorImages
from lrsflows.data.images import ImageSplits
from lrsflows.data.specs import dataset_spec
from lrsflows.data.splits import Splits
from lrsflows.errors import RunError
from lrsflows.flows.tabular import ARCHITECTURES
from lrsflows.splines import SplineSettings
from lrsflows.train import checkpoint, distributed, kinds, tasks
from lrsflows.train.kinds import KINDS
from lrsflows.train.trainer import Trainer
from lrsflows.transforms.autoregressive import AutoregressiveTransform
from lrsflows.transforms.coupling import CouplingTransform
from lrsflows.transforms.elementwise import elementwise_families, elementwise_map
from lrsflows.transforms.normalization import ActNorm

CONF = Path(CONFIG_DIR)
PAPER = sorted(
    path.relative_to(CONF / "experiment").with_suffix("").as_posix()
    for path in (CONF / "experiment" / "paper").glob("*.yaml")
)
OTHER_EXPERIMENTS = sorted(
    path.relative_to(CONF / "experiment").with_suffix("").as_posix()
    for path in (CONF / "experiment").rglob("*.yaml")
    if path.parent != CONF / "experiment" / "paper"
)
MODELS = sorted(path.stem for path in (CONF / "model").glob("*.yaml"))
DATASETS = sorted(path.stem for path in (CONF / "dataset").glob("*.yaml"))

# Two real steps: the last step also validates and writes checkpoints, as every run's last step does.
TWO_STEPS = {
    "trainer.max_steps": 2,
    "trainer.val_every": 2,
    "trainer.checkpoint_every": 2,
    "trainer.log_every": 1,
    "trainer.pictures_every": 0,
    "trainer.progress_bar": False,
    "trainer.device": "cpu",
    "trainer.devices": 1,
    "trainer.compile": False,  # the tabular paper presets compile; two steps would not pay it back
}
TINY_BATCH = {
    "image": {"trainer.batch_size": 2, "trainer.eval_batch_size": 2, "dataset.num_workers": 0},
    "tabular": {"trainer.batch_size": 8, "trainer.eval_batch_size": 16},
    "toy2d": {
        "trainer.batch_size": 8,
        "trainer.eval_batch_size": 16,
        "dataset.num_train": 64,
        "dataset.num_val": 16,
        "dataset.num_test": 16,
    },
}
NUM_VECTORS = {"train": 64, "val": 16, "test": 16}  # generated tabular rows per split
NUM_IMAGES = {"train": 8, "val": 2, "test": 2}  # generated images per split
TINY_VECTOR_MODEL = {"model.num_flow_steps": 2, "model.hidden_features": 16, "model.num_blocks": 1, "model.num_bins": 4}
# The small bases of the per-choice walk: a 2-D flow, and the CPU-sized image preset.
BASES = {"2d": {"experiment": "toy2d", **TINY_VECTOR_MODEL}, "image": {"experiment": "smoke/images"}}


# ----------------------------------------------------------------------------------------------------- compose


def overrides_of(settings: dict) -> list[str]:
    def text(value):
        if isinstance(value, bool):
            return str(value).lower()
        return value.value if isinstance(value, enum.Enum) else str(value)

    return [f"{key}={text(value)}" for key, value in settings.items()]


def compose_config(settings: dict) -> schema.Config:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        composed = compose("config", overrides=overrides_of(settings), return_hydra_config=False)
    return OmegaConf.to_object(composed)


def compose_tiny_run(settings: dict) -> schema.Config:
    """`settings` as composed, plus two steps on a tiny batch of the dataset's kind; `settings` win any clash."""
    kind = compose_config(settings).dataset.kind
    config = compose_config({**TWO_STEPS, **TINY_BATCH[kind], **settings})
    assert isinstance(config, schema.Config), type(config)
    return config


# ------------------------------------------------------------------------------------------------- tiny data


@pytest.fixture(autouse=True)
def generated_data(monkeypatch):
    """Tabular files and image datasets replaced by random data of the dataset's real shape and type: standardised
    float vectors, uint8 images (the real stream dequantises them); 2-D densities are generated as usual."""
    real_load_splits = kinds.load_splits

    def load_splits(name, kind, data_dir, num_train, num_val, num_test, seed):
        if kind != "tabular":
            return real_load_splits(name, kind, data_dir, num_train, num_val, num_test, seed)
        generator = torch.Generator().manual_seed(seed)
        features = dataset_spec(name).features
        return Splits(*(torch.randn(size, features, generator=generator) for size in NUM_VECTORS.values()))

    def load_image_splits(name, data_dir, valid_frac, seed):
        generator = torch.Generator().manual_seed(seed)
        shape = dataset_spec(name).shape
        splits = {
            split: TensorImages(torch.randint(0, 256, (size, *shape), generator=generator, dtype=torch.uint8))
            for split, size in NUM_IMAGES.items()
        }
        return ImageSplits(splits["train"], splits["val"], splits["test"], np.arange(NUM_IMAGES["val"]), shape)

    monkeypatch.setattr(kinds, "load_splits", load_splits)
    monkeypatch.setattr(kinds, "load_image_splits", load_image_splits)


@pytest.fixture
def checkpoints(monkeypatch) -> dict[str, int]:
    """The two-step runs serialise their checkpoints into memory (name -> bytes): paper-sized image models
    would otherwise write and fsync over half a gigabyte per case."""
    written = {}

    def save(state, path):
        buffer = io.BytesIO()
        torch.save(state, buffer)
        written[Path(path).name] = buffer.getbuffer().nbytes

    monkeypatch.setattr(checkpoint, "save", save)
    return written


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine, two OpenMP threads that spin-wait on each other turned
    2-second image cases into 100-second ones."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# ------------------------------------------------------------------------------- expected sizes, from the config


def params_per_element(model: schema.ModelConfig) -> int:
    """What one element's map takes: the family's spline parameters for model.num_bins, or the affine map's."""
    return elementwise_map(model.family, SplineSettings.of(model)).num_params


def lu_parameters(features: int) -> int:
    """Strictly lower and upper triangles, the diagonal and the bias."""
    return features * (features - 1) + 2 * features


def residual_net_parameters(
    inputs: int, outputs: int, hidden: int, blocks: int, batch_norm: bool, kernel_area: int = 1
) -> int:
    """in->hidden, `blocks` x (two hidden->hidden layers [two batch norms]), hidden->out; 3x3 convs: kernel_area 9."""
    block = 2 * (kernel_area * hidden + 1) * hidden + (4 * hidden if batch_norm else 0)
    return (inputs + 1) * hidden + blocks * block + (hidden + 1) * outputs


def vector_flow_expectations(model: schema.ModelConfig, features: int) -> tuple[int, list[int]]:
    """(total parameters, conditioner output widths per step) of the tabular/2-D flow the config describes:
    num_flow_steps x [linear layer, coupling or MADE step], then a last linear layer."""
    per_element = params_per_element(model)
    linear = lu_parameters(features) if model.linear == "lu" else 0
    total = (model.num_flow_steps + 1) * linear
    widths = []
    for step in range(model.num_flow_steps):
        if model.arch == "coupling":
            transformed = math.ceil(features / 2) if step % 2 == 0 else features // 2  # alternating masks
            kept = features - transformed
            widths.append(transformed * per_element)
            total += residual_net_parameters(
                kept, widths[-1], model.hidden_features, model.num_blocks, model.use_batch_norm
            )
            if model.unconditional_transform and elementwise_families()[model.family].unconditional:
                total += kept * per_element
        else:
            widths.append(features * per_element)
            total += residual_net_parameters(
                features, widths[-1], model.hidden_features, model.num_blocks, model.use_batch_norm
            )
    return total, widths


def image_flow_expectations(model: schema.ModelConfig, shape: tuple[int, int, int]) -> tuple[int, list[int]]:
    """(total parameters, conditioner output channels per step) of the image flow the config describes:
    per level a squeeze (x4 channels; multi-scale levels first factor half out), steps_per_level x [ActNorm,
    1x1 conv, coupling of the first half of the channels], a 1x1 conv."""
    per_element = params_per_element(model)
    channels, total, widths = shape[0], 0, []
    for level in range(model.num_levels):
        if model.multi_scale and level > 0:
            channels //= 2
        channels *= 4
        transformed = math.ceil(channels / 2)
        for _ in range(model.steps_per_level):
            widths.append(transformed * per_element)
            total += (2 * channels if model.actnorm else 0) + lu_parameters(channels)
            total += residual_net_parameters(
                channels - transformed,
                widths[-1],
                model.hidden_channels,
                model.num_blocks,
                model.use_batch_norm,
                kernel_area=9,
            )
        total += lu_parameters(channels)
    return total, widths


def check_model_size(flow: torch.nn.Module, config: schema.Config, data: tasks.RunData) -> None:
    model = config.model
    if config.dataset.kind == "image":
        total, widths = image_flow_expectations(model, data.shape)
        steps = [module for module in flow.modules() if isinstance(module, CouplingTransform)]
        got = [step.conditioner.final.out_channels for step in steps]
        assert sum(isinstance(module, ActNorm) for module in flow.modules()) == (len(widths) if model.actnorm else 0)
    else:
        total, widths = vector_flow_expectations(model, data.shape[0])
        if model.arch == "coupling":
            steps = [module for module in flow.modules() if isinstance(module, CouplingTransform)]
            got = [step.conditioner.final.out_features for step in steps]
        else:
            steps = [module for module in flow.modules() if isinstance(module, AutoregressiveTransform)]
            got = [step.made.final.out_features for step in steps]
    assert got == widths, f"conditioner output widths {got}, expected {widths} from the composed config"
    parameters = sum(parameter.numel() for parameter in flow.parameters())
    assert parameters == total, f"{parameters} parameters, expected {total} from the composed config"


# ---------------------------------------------------------------------------------------------------- training


class Recorder:
    """Stands in for the TensorBoard logger: keeps every logged scalar."""

    def __init__(self):
        self.values: dict[str, list[float]] = {}

    def scalars(self, step, values):
        for key, value in values.items():
            self.values.setdefault(key, []).append(value)

    def figure(self, *args, **kwargs):
        pass

    image = hparams = close = flush = figure


def train_two_steps(config: schema.Config, checkpoints: dict[str, int]) -> None:
    """Build the composed model on the generated data through the real data streams, check its size, take the
    two steps with the real Trainer; the loss must be finite and every parameter must have moved."""
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    if config.trainer.deterministic:
        tasks.make_deterministic()
    try:
        process = distributed.join(config.trainer.device)
        tasks.seed_everything(config.seed)
        data = tasks.load_data(config.dataset, config.paths.data_dir, config.trainer, config.seed, process)
        flow = kinds.build_flow(config, data.shape, process.device)
        check_model_size(flow, config, data)
        assert all(parameter.dtype == data.dtype for parameter in flow.parameters())
        before = {name: parameter.detach().clone() for name, parameter in flow.named_parameters()}
        recorder = Recorder()
        trainer = Trainer(
            flow,
            data.train(),
            data.validation,
            config.trainer,
            Path("checkpoints"),  # written into `checkpoints` (the fixture), not to disk
            recorder,
            {"config": schema.plain(config)},
            process,
            pictures=None,
            image_dimension=KINDS[config.dataset.kind].loss_scale(data),
        )
        trainer.fit()
    finally:
        torch.use_deterministic_algorithms(previous_deterministic)
    assert trainer.step == 2
    losses = recorder.values.get("train/loss", [])
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses), f"training losses {losses}"
    validation = recorder.values.get("val/log_prob", [])
    assert len(validation) == 1 and math.isfinite(validation[0]), f"validation log-probability {validation}"
    unmoved = [name for name, parameter in flow.named_parameters() if torch.equal(parameter.detach(), before[name])]
    assert not unmoved, f"two training steps left these parameters unchanged: {unmoved}"
    assert sorted(checkpoints) == ["best.pt", "last.pt"] and all(checkpoints.values())


def refused(config: schema.Config) -> str | None:
    """Why the code refuses this combination up front (image flows: coupling only, and not in float64)."""
    if config.dataset.kind != "image":
        return None
    if config.model.arch != "coupling":
        return "model.arch=coupling"
    if config.trainer.precision == Precision.fp64:
        return "fp64"
    return None


def run_case(settings: dict, checkpoints: dict[str, int]) -> None:
    config = compose_tiny_run(settings)
    reason = refused(config)
    if reason is None:
        train_two_steps(config, checkpoints)
        return
    with pytest.raises(RunError, match=reason):
        train_two_steps(config, checkpoints)


# ------------------------------------------------------------------ (a) every paper preset with every model


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("experiment", PAPER)
def test_every_paper_preset_with_every_model_trains(experiment, model, arch, checkpoints):
    """Paper-sized models (image presets: an autoregressive arch is refused with a RunError naming coupling)."""
    run_case({"experiment": experiment, "model": model, "model.arch": arch}, checkpoints)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("experiment", OTHER_EXPERIMENTS)
def test_every_other_experiment_with_every_model_trains(experiment, model, checkpoints):
    run_case({"experiment": experiment, "model": model}, checkpoints)


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_dataset_trains(dataset, checkpoints):
    """Each dataset on a small model of its kind (2-D: toy2d, tabular: a tiny model, images: smoke/images)."""
    kind = compose_config({"dataset": dataset}).dataset.kind
    base = {"toy2d": BASES["2d"], "tabular": TINY_VECTOR_MODEL, "image": BASES["image"]}[kind]
    run_case({**base, "dataset": dataset}, checkpoints)


def test_the_datasets_cover_every_dataset_kind():
    kinds = {compose_config({"dataset": dataset}).dataset.kind for dataset in DATASETS}
    assert kinds == set(KINDS)


# ------------------------------------------------------------------------ (b) every value of every schema field


def schema_choices() -> list[tuple[str, object]]:
    """(dotted key, value) for every value of every named choice (a registry's keys), Enum or bool field of the
    dataset, model and trainer sections; dataset.kind is set by the dataset (walked above), the task below."""
    choices = []
    config = schema.Config()
    for section in ("dataset", "model", "trainer"):
        for spec in dataclasses.fields(getattr(config, section)):
            key = f"{section}.{spec.name}"
            kind = typing.get_type_hints(type(getattr(config, section)))[spec.name]
            if key == "dataset.kind":
                continue
            if "registry" in spec.metadata:
                choices += [(key, value) for value in schema.choices_of(spec)]
            elif isinstance(kind, type) and issubclass(kind, enum.Enum):
                choices += [(key, value) for value in kind]
            elif kind is bool:
                choices += [(key, value) for value in (False, True)]
    return choices


CHOICES = schema_choices()
# The data kind of each base: a setting only walks the bases whose kind reads it.
BASE_KINDS = {"2d": "toy2d", "image": "image"}


def applies(key: str, base: str) -> bool:
    section, name = key.split(".")
    spec = next(spec for spec in dataclasses.fields(getattr(schema, f"{section.title()}Config")) if spec.name == name)
    return spec.metadata.get("kinds") is None or BASE_KINDS[base] in spec.metadata["kinds"]


def choice_id(choice) -> str:
    key, value = choice
    return f"{key}={value.value if isinstance(value, enum.Enum) else str(value).lower()}"


def test_the_walk_covers_every_named_choice_of_the_schema():
    """Every registry-backed field, and every Enum, is walked on at least one base whose kind reads it."""
    named = {
        f"{section}.{spec.name}"
        for section in ("dataset", "model", "trainer")
        for spec in dataclasses.fields(getattr(schema, f"{section.title()}Config"))
        if "registry" in spec.metadata
    } - {"dataset.kind"}
    walked = {key for key, _ in CHOICES}
    assert named <= walked
    assert {"model.family", "model.arch", "model.linear", "model.preprocessing", "trainer.precision"} <= walked
    assert all(any(applies(key, base) for base in BASES) for key in walked)


@pytest.mark.parametrize("choice", CHOICES, ids=choice_id)
@pytest.mark.parametrize("base", sorted(BASES))
def test_every_value_of_every_field_trains(base, choice, checkpoints):
    key, value = choice
    if not applies(key, base):
        pytest.skip(f"{key} is not read by {BASE_KINDS[base]} data (given, it is refused; test_bad_input checks that)")
    if key == "trainer.compile" and value not in (False, True, "reduce-overhead"):
        pytest.skip(
            "another torch.compile mode by name, passed to torch.compile as true's 'default' is; compiling again "
            "costs up to minutes on CPU (max-autotune benchmarks kernels) and would test torch, not this suite"
        )
    if base == "image" and key == "trainer.compile" and value:
        pytest.skip(
            "compiling the image flow takes about a minute on 2 CPU cores with a cold inductor cache (it "
            "passes); the 2-D case compiles and trains the same training step"
        )
    run_case({**BASES[base], key: value}, checkpoints)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
@pytest.mark.parametrize("family", list(elementwise_families()))
def test_every_family_with_every_arch_trains(family, arch, checkpoints):
    run_case({**BASES["2d"], "model.family": family, "model.arch": arch}, checkpoints)


# ---------------------------------------------------------------------------------- every task, end to end


@pytest.fixture(scope="module")
def trained_2d(tmp_path_factory) -> tuple[Path, dict]:
    """task=train end to end (data, model, two steps, test evaluation, results.json) on a tiny 2-D run."""
    run_dir = tmp_path_factory.mktemp("train")
    config = compose_tiny_run({**BASES["2d"], "task": Task.train})
    assert config.task == Task.train
    record = tasks.train(config, run_dir)
    return run_dir, record


def test_task_train(trained_2d):
    run_dir, record = trained_2d
    assert record["steps"] == 2 and math.isfinite(record["value"])
    assert (run_dir / "results.json").is_file() and (run_dir / "checkpoints" / "best.pt").is_file()


def test_task_eval(trained_2d, tmp_path):
    run_dir, record = trained_2d
    config = compose_config({"task": Task.eval, "ckpt": run_dir / "checkpoints" / "best.pt", "trainer.device": "cpu"})
    evaluated = tasks.evaluate(config, tmp_path)
    assert evaluated["value"] == pytest.approx(record["value"], abs=1e-9)


def test_task_sample(trained_2d, tmp_path):
    run_dir, _ = trained_2d
    config = compose_config(
        {"task": Task.sample, "ckpt": run_dir / "checkpoints" / "best.pt", "n": 7, "trainer.device": "cpu"}
    )
    samples = np.load(tasks.sample(config, tmp_path))
    assert samples.shape == (7, 2) and np.isfinite(samples).all()


def test_a_finished_run_resumes_with_trainer_resume(trained_2d, tmp_path):
    """trainer.resume=true continues a run from its last.pt (here two more steps); false refuses to overwrite it."""
    run_dir, _ = trained_2d
    shutil.copytree(run_dir, tmp_path / "run")
    settings = {**BASES["2d"], "trainer.max_steps": 4}
    with pytest.raises(RunError, match="trainer.resume=true"):
        tasks.refuse_to_overwrite(compose_tiny_run({**settings, "trainer.resume": False}), tmp_path / "run")
    resumed = compose_tiny_run({**settings, "trainer.resume": True})
    tasks.refuse_to_overwrite(resumed, tmp_path / "run")
    record = tasks.train(resumed, tmp_path / "run")
    assert record["steps"] == 4 and math.isfinite(record["value"])


def test_the_task_walk_covers_every_task():
    walked = {name.removeprefix("test_task_") for name in globals() if name.startswith("test_task_")}
    assert walked == {task.value for task in Task}
