"""TensorBoard logging with one set of tag names for every model, so runs overlay in one chart."""

import threading
from contextlib import contextmanager
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from ..errors import WriteError

_print_thread_error = threading.excepthook


def _drop_writer_thread_errors(args) -> None:
    """TensorBoard writes from a thread of its own, which dies with the OSError it meets (a full disk, a read-only
    folder) and has its traceback printed; RunLogger raises that error as one sentence at its next call instead."""
    if type(args.thread).__module__.startswith("tensorboard.") and issubclass(args.exc_type, OSError):
        return
    _print_thread_error(args)


threading.excepthook = _drop_writer_thread_errors


class RunLogger:
    """Scalars, figures and the hparams tab of one run, in `<run dir>/tensorboard`; a write that fails is a
    WriteError (at the call after the one whose event met it: events are written in the background)."""

    def __init__(self, log_dir: Path, first_step: int = 0):
        self.log_dir = log_dir
        # purge_step drops events a killed run wrote after its last checkpoint, so a resumed run's curves
        # do not double back on themselves.
        with self._writing():
            self.writer = SummaryWriter(str(log_dir), purge_step=first_step + 1 if first_step else None)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        with self._writing():
            for tag, value in values.items():
                self.writer.add_scalar(tag, value, step)

    def figure(self, tag: str, figure, step: int) -> None:
        with self._writing():
            self.writer.add_figure(tag, figure, step, close=False)

    def image(self, tag: str, image, step: int) -> None:
        """A uint8 (C, H, W) picture."""
        with self._writing():
            self.writer.add_image(tag, image, step)

    def hparams(self, settings: dict, metrics: dict[str, float]) -> None:
        """Fill the hparams tab in this run's own event file (SummaryWriter.add_hparams would open a sub-run)."""
        experiment, start, end = hparams(settings, metrics)
        with self._writing():
            for summary in (experiment, start, end):
                self.writer.file_writer.add_summary(summary)
        self.scalars(0, metrics)

    def flush(self) -> None:
        """Write every event logged so far, or raise why not: called before each last.pt is written, so the curves
        on disk reach the step a resumed run continues from (it purges only the events after that step)."""
        with self._writing():
            self.writer.flush()

    def close(self, raising: bool = True) -> None:
        """Write what is left and close the event file; `raising=False` when another error already ends the run
        (a full disk would otherwise hide it behind this one)."""
        try:
            with self._writing():
                self.writer.close()
        except WriteError:
            if raising:
                raise

    @contextmanager
    def _writing(self):
        try:
            yield
        except OSError as error:
            raise WriteError(self.log_dir, error) from error
