"""The single entry point: `python -m lrsflows [overrides]` or the `lrsflows` console script (Hydra)."""

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
def main(config: DictConfig) -> None:
    if config.task != "demo":
        raise SystemExit(f"unknown task {config.task!r}; the only task so far is 'demo'.")
    from .demo import run_demo

    run_demo(seed=config.seed, **OmegaConf.to_container(config.demo))


if __name__ == "__main__":
    main()
