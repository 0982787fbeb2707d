"""What a newcomer meets first: --help, what a command without a preset trains, what a run says when it starts, and
the hparams tab it leaves in TensorBoard. Real subprocesses and real event files."""

import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from test_cli import lrsflows, run_dir_of

import lrsflows as package
from lrsflows.cli import CONFIG_DIR, run_name
from lrsflows.config import Config, validate, validate_choices, validate_kind_settings
from lrsflows.results.record import NOT_TRAINING
from lrsflows.train.kinds import build_flow
from lrsflows.train.summary import IDENTITY, defining_settings, model_summary

SUMMARY_HEADER = re.compile(r"^model: ([\d,]+) parameters \(([\d,]+) trainable\)$")
SUMMARY_ROW = re.compile(r"^  (\w+) +([\d,]+) +([\d,]+)$")
SCREEN = 25  # lines


def composed(*overrides: str) -> Config:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return OmegaConf.to_object(compose("config", overrides=list(overrides)))


def accepted(*overrides: str) -> Config:
    """The config a command composes, through the CLI's checks (its key=value overrides given)."""
    config = composed(*overrides)
    validate(config)
    validate_choices(config)
    validate_kind_settings(config, given={item.split("=", 1)[0] for item in overrides})
    return config


# ----------------------------------------------------------------------------------------------------- --help


def test_help_starts_with_what_the_tool_does_its_tasks_and_presets(tmp_path):
    text = lrsflows("--help", cwd=tmp_path).stdout
    own, generated = text.split("== Config groups", 1)
    assert own.startswith("lrsflows trains and evaluates spline normalizing flows: LRS")
    assert "Hydra" not in own
    for said in ("task=train (default)", "task=eval", "task=sample", "experiment=paper/<dataset>", "make demo"):
        assert said in own, said
    assert re.search(r"^experiment=toy2d +the default", own, re.MULTILINE)
    # Hydra's own part follows: the groups and the config this command composes.
    assert "\nexperiment: demo, toy2d\n" in generated and "\nmodel: affine, lrs, q_nsf, rq_nsf\n" in generated
    assert "\ntask: train\n" in generated and "Use --hydra-help" in generated
    examples = [line.split()[3:] for line in own.splitlines() if line.strip().startswith("python -m lrsflows ")]
    assert [example[0] for example in examples] == ["dataset=rings", "task=eval", "task=sample"]
    for example in examples:
        accepted(*example)
    # The eval and sample examples read the checkpoint the train example writes.
    best = f"ckpt=outputs/runs/{run_name('rings', 'rq_nsf', 'coupling', 0, '')}/checkpoints/best.pt"
    assert best in examples[1] and best in examples[2]


# ---------------------------------------------------------------------------------- a command without a preset


def test_a_command_without_a_preset_trains_the_toy2d_setup():
    assert composed() == composed("experiment=toy2d")
    assert composed("dataset=rings", "model=rq_nsf") == composed("experiment=toy2d", "dataset=rings", "model=rq_nsf")
    # A preset replaces it: none of what toy2d sets leaks into a paper or image preset.
    toy2d = yaml.safe_load((Path(CONFIG_DIR) / "experiment" / "toy2d.yaml").read_text())
    for preset in ("paper/power", "paper/mnist", "smoke/images"):
        config = composed(f"experiment={preset}")
        leaked = {
            f"{section}.{key}"
            for section, values in toy2d.items()
            for key, value in values.items()
            if getattr(getattr(config, section), key) == value
            and getattr(getattr(Config(), section), key) != value  # not just the schema's default
        }
        assert leaked <= {"trainer.max_steps", "trainer.checkpoint_every"}, (preset, leaked)  # smoke/images: 1500, 500


def test_a_tabular_dataset_without_a_preset_is_accepted():
    config = accepted("dataset=power")
    assert config.dataset.kind == "tabular" and config == composed("experiment=toy2d", "dataset=power")


def test_an_image_dataset_without_a_preset_is_refused_naming_image_presets(tmp_path):
    completed = lrsflows("dataset=mnist", "trainer.progress_bar=false", cwd=tmp_path, check=False)
    assert completed.returncode == 1 and "Traceback" not in completed.stderr
    [line] = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert "dataset mnist is image data: it comes from the experiment= preset (experiment=toy2d when none" in line
    assert line.endswith("or a preset for image data (--help lists them).")
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------- what a run says, what it leaves


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The help's first example, cut to 20 steps: (its stdout, its run dir)."""
    work = tmp_path_factory.mktemp("first")
    overrides = ["dataset=rings", "model=rq_nsf", "trainer.max_steps=20", "trainer.val_every=10"]
    completed = lrsflows(*overrides, "trainer.progress_bar=false", cwd=work)
    return completed.stdout, work / run_dir_of(completed)


def said_settings(stdout: str) -> dict:
    """The YAML a run logs first, read back."""
    lines = stdout.splitlines()
    start = lines.index("settings:") + 1
    end = next(index for index in range(start, len(lines)) if SUMMARY_HEADER.match(lines[index]))
    return yaml.safe_load("\n".join(lines[start:end]))


def said_summary(stdout: str) -> list[str]:
    """The model summary a run logs: from its header to the first line that is not part of it."""
    lines = stdout.splitlines()
    start = next(index for index, line in enumerate(lines) if SUMMARY_HEADER.match(line))
    end = next(index for index in range(start + 1, len(lines)) if not lines[index].startswith("  "))
    return lines[start:end]


def test_a_run_starts_by_saying_its_settings_and_its_model(run):
    stdout, run_dir = run
    saved = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)["config"]
    settings = said_settings(stdout)
    for section in ("dataset", "model"):
        assert settings[section] == saved[section]
    assert settings["paths"]["data_dir"] == "data"  # resolved: ${oc.env:LRSFLOWS_DATA_DIR,data}
    summary = said_summary(stdout)
    assert len(summary) < SCREEN, summary
    total, trainable = (int(text.replace(",", "")) for text in SUMMARY_HEADER.match(summary[0]).groups())
    flow = package.load_flow(run_dir / "checkpoints" / "best.pt")
    assert total == trainable == sum(parameter.numel() for parameter in flow.parameters()) > 0
    rows = [SUMMARY_ROW.match(line) for line in summary[2:] if SUMMARY_ROW.match(line)]
    assert sum(int(row[3].replace(",", "")) for row in rows) == total
    assert {row[1] for row in rows} == {"Linear"}
    run_log = (run_dir / "run.log").read_text()
    assert "][lrsflows.cli][INFO] - settings:\n" in run_log and f"][INFO] - {summary[0]}\n" in run_log


def test_eval_says_the_same_model_summary(run, tmp_path):
    stdout, run_dir = run
    evaluated = lrsflows("task=eval", f"ckpt={run_dir / 'checkpoints' / 'best.pt'}", cwd=tmp_path).stdout
    assert said_summary(evaluated) == said_summary(stdout)


def test_the_hparams_tab_holds_what_defines_the_run_and_its_scores(run):
    _, run_dir = run
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    plugin = {
        tag: plugin_data_pb2.HParamsPluginData.FromString(content)
        for tag, content in events.PluginTagToContent("hparams").items()
    }
    hparams = {
        key: value.string_value or value.number_value
        for key, value in plugin["_hparams_/session_start_info"].session_start_info.hparams.items()
    }
    # Who it is, then toy2d's settings (away from the schema's) and the command's: no setting images read, none
    # that cannot change a number (the progress bar, toy2d's checkpoint_every), none left at its default.
    assert set(hparams) == {
        *IDENTITY,
        "dataset.kind",
        "model.num_flow_steps",
        "model.hidden_features",
        "model.num_bins",
        "model.tail_bound",
        "model.unconditional_transform",
        "model.linear",
        "trainer.max_steps",
        "trainer.lr",
        "trainer.val_every",
    }
    assert hparams["model.family"] == "rq" and hparams["model.linear"] == "none" and hparams["trainer.max_steps"] == 20
    record = json.loads((run_dir / "results.json").read_text())
    metrics = [info.name.tag for info in plugin["_hparams_/experiment"].experiment.metric_infos]
    assert metrics == ["hparam/test_log_likelihood", "hparam/kl_gap", "hparam/best_val_log_prob", "hparam/steps"]
    scalars = {tag: events.Scalars(tag)[-1].value for tag in metrics}
    assert scalars == pytest.approx(
        {
            "hparam/test_log_likelihood": record["value"],
            "hparam/kl_gap": record["kl_gap"],
            "hparam/best_val_log_prob": record["best_val"],
            "hparam/steps": 20,
        }
    )


# ------------------------------------------------------------------------------------------- the biggest cases


def test_an_image_runs_hparams_hold_only_what_images_read():
    config = composed("experiment=paper/cifar10")
    settings = defining_settings(config)
    assert set(IDENTITY) <= set(settings)
    assert {
        "model.num_bins": 4,
        "model.dropout": 0.2,
        "trainer.batch_size": 256,
        "trainer.grad_clip": "null",
    }.items() <= (settings.items())
    assert not {"model.linear", "model.num_flow_steps", "dataset.num_train"} & set(settings)  # not read by images
    assert not NOT_TRAINING & (set(settings) - {"seed"})  # the seed names the run
    assert "model.num_levels" not in settings  # 3, the schema's default


def test_the_largest_flow_summary_fits_on_one_screen():
    config = composed("experiment=paper/imagenet64", "model=rq_nsf")
    flow = build_flow(config, (3, 64, 64), torch.device("cpu"))
    lines = model_summary(flow).splitlines()
    assert len(lines) < SCREEN and max(map(len, lines)) <= 120, lines
    assert f"{sum(parameter.numel() for parameter in flow.parameters()):,} parameters" in lines[0]
