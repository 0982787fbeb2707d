"""TensorBoard logging with one set of tag names for every model, so runs overlay in one chart."""

from pathlib import Path

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams


class RunLogger:
    """Scalars, figures and the hparams tab of one run, in `<run dir>/tensorboard`."""

    def __init__(self, log_dir: Path, first_step: int = 0):
        # purge_step drops events a killed run wrote after its last checkpoint, so a resumed run's curves
        # do not double back on themselves.
        self.writer = SummaryWriter(str(log_dir), purge_step=first_step + 1 if first_step else None)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def figure(self, tag: str, figure, step: int) -> None:
        self.writer.add_figure(tag, figure, step, close=False)

    def image(self, tag: str, image, step: int) -> None:
        """A uint8 (C, H, W) picture."""
        self.writer.add_image(tag, image, step)

    def hparams(self, settings: dict, metrics: dict[str, float]) -> None:
        """Fill the hparams tab in this run's own event file (SummaryWriter.add_hparams would open a sub-run)."""
        experiment, start, end = hparams(settings, metrics)
        for summary in (experiment, start, end):
            self.writer.file_writer.add_summary(summary)
        self.scalars(0, metrics)

    def close(self) -> None:
        self.writer.close()
