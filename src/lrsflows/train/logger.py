"""TensorBoard logging with one set of tag names for every model, so runs overlay in one chart; every scalar also
goes to <run dir>/metrics.csv (step, wall_time, tag, value), for plots outside TensorBoard."""

import csv
import threading
import time
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


METRICS_FILE = "metrics.csv"
METRICS_COLUMNS = ("step", "wall_time", "tag", "value")  # wall_time: seconds since the epoch, as TensorBoard's


class RunLogger:
    """Scalars, figures and the hparams tab of one run, in `<run dir>/tensorboard`, and its scalars in
    `<run dir>/metrics.csv`; a write that fails is a WriteError (for TensorBoard at the call after the one whose
    event met it: events are written in the background)."""

    def __init__(self, log_dir: Path, first_step: int = 0):
        self.log_dir = log_dir
        self.metrics_path = log_dir.parent / METRICS_FILE
        # purge_step drops events a killed run wrote after its last checkpoint, so a resumed run's curves
        # do not double back on themselves; metrics.csv loses the same rows.
        with self._writing():
            self.writer = SummaryWriter(str(log_dir), purge_step=first_step + 1 if first_step else None)
            kept = _rows_up_to(self.metrics_path, first_step)
            self.metrics = self.metrics_path.open("w", newline="", encoding="utf-8")
            self.rows = csv.writer(self.metrics)
            self.rows.writerows([METRICS_COLUMNS, *kept])

    def scalars(self, step: int, values: dict[str, float]) -> None:
        now = time.time()
        with self._writing():
            for tag, value in values.items():
                self.writer.add_scalar(tag, value, step, walltime=now)
                self.rows.writerow((step, f"{now:.3f}", tag, repr(float(value))))

    def figure(self, tag: str, figure, step: int) -> None:
        with self._writing():
            self.writer.add_figure(tag, figure, step, close=False)

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
            self.metrics.flush()

    def close(self, raising: bool = True) -> None:
        """Write what is left and close the event file; `raising=False` when another error already ends the run
        (a full disk would otherwise hide it behind this one)."""
        try:
            with self._writing():
                self.writer.close()
                self.metrics.close()
        except WriteError:
            if raising:
                raise

    @contextmanager
    def _writing(self):
        try:
            yield
        except OSError as error:
            raise WriteError(self.log_dir, error) from error


def _rows_up_to(path: Path, last_step: int) -> list[list[str]]:
    """The rows of an earlier metrics.csv logged at or before `last_step` (a resumed run's checkpoint): none when
    the run starts afresh."""
    if not last_step or not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return [
            [row[column] for column in METRICS_COLUMNS]
            for row in csv.DictReader(handle)
            if int(row["step"]) <= last_step
        ]
