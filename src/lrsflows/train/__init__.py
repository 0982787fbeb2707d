"""Training, evaluation, checkpoints and logging of one run (no Hydra objects below this package's tasks)."""
