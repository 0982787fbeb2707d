"""The single entry point: `python -m lrsflows [overrides]` or the `lrsflows` console script (a Hydra app)."""

import hashlib
from datetime import datetime
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from .config import Task, register_schema
from .data.errors import DataError
from .errors import RunError, fail

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")
MAX_SUFFIX = 160  # file names stop at 255 bytes


def run_name(dataset: str, model: str, arch: str, seed: int, overrides: str) -> str:
    """<dataset>/<model>-<arch>/seed<seed>[_<other overrides>]: the same command always names the same dir.

    Overrides too long for one file name are replaced by a digest (.hydra/overrides.yaml lists them).
    """
    suffix = overrides.replace("/", ".")
    if len(suffix) > MAX_SUFFIX:
        suffix = f"overrides-{hashlib.sha1(suffix.encode()).hexdigest()[:12]}"
    return f"{dataset}/{model}-{getattr(arch, 'value', arch)}/seed{seed}" + (f"_{suffix}" if suffix else "")


def run_dir(output_dir: str, task: str, dataset: str, model: str, arch: str, seed: int, overrides: str) -> str:
    """Training runs live under runs/ by name (so they can be resumed); eval and sample runs are time-stamped."""
    task = getattr(task, "value", task)
    if task == Task.train.value:
        return f"{output_dir}/runs/{run_name(dataset, model, arch, seed, overrides)}"
    return f"{output_dir}/{task}/{datetime.now():%Y-%m-%d_%H-%M-%S}"


class CreateOutputDir(Callback):
    """Create the run (or sweep) dir before Hydra does, so an unwritable one is one sentence, not a traceback."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        self._create(config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self._create(config.hydra.sweep.dir)

    @staticmethod
    def _create(folder: str) -> None:
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            fail(
                f"cannot create the output folder {folder} ({error.strerror or error}); "
                "choose a writable one with paths.output_dir=<folder>."
            )


register_schema()
OmegaConf.register_new_resolver("lrsflows.run_name", run_name, replace=True)
OmegaConf.register_new_resolver("lrsflows.run_dir", run_dir, replace=True)


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
def main(config: DictConfig) -> None:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    from .train import distributed, tasks

    settings = OmegaConf.to_object(config)
    output = Path(HydraConfig.get().runtime.output_dir)
    try:
        if settings.task is Task.train and settings.trainer.devices > 1 and not distributed.already_distributed():
            record = distributed.launch(settings.trainer.devices, tasks.train_worker, tasks.plain(settings), str(output))
        elif settings.task is Task.train:
            record = tasks.train(settings, output)
        elif settings.task is Task.eval:
            record = tasks.evaluate(settings, output)
        else:
            print(f"samples: {tasks.sample(settings, output)}")
            return
    except (DataError, RunError) as error:
        fail(str(error))
    except ChildFailedError:
        raise SystemExit(1) from None  # the failing process has printed its one-sentence error
    if record is not None:
        print(summary(record))


def summary(record: dict) -> str:
    metric = record["metric"].removeprefix("test_").replace("_", " ")
    line = f"{record['dataset']} {record['model']} ({record['arch']}): test {metric} {record['value']:.3f} ± {record['error']:.3f} {record['unit']}"
    if record.get("kl_gap") is not None:
        line += f", KL gap {record['kl_gap']:.4f} ± {record['kl_gap_error']:.4f} nats"
    return f"{line}\nresults: {record['run_dir']}/results.json"


if __name__ == "__main__":
    main()
