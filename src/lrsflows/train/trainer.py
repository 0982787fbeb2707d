"""The training loop: Adam, cosine annealing to 0, gradient-norm clipping, validation, best and last checkpoints."""

import contextlib
import logging
import math
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from .. import stop_request
from ..config import Precision, TrainerConfig
from ..errors import RunError, Stopped, resume_advice, signal_name
from . import checkpoint, distributed
from .compiling import compiled, uses_cuda_graphs
from .distributed import Process
from .evaluate import log_likelihoods
from .logger import RunLogger

log = logging.getLogger(__name__)
AUTOCAST_DTYPES = {Precision.bf16: torch.bfloat16, Precision.fp16: torch.float16}


class Trainer:
    """Fits a flow by maximum likelihood and keeps `checkpoints/last.pt` (resumable) and `best.pt` (best validation).

    `last.pt` holds model, optimizer, scheduler, gradient scaler, batch stream, step, best score and every
    process's RNG states, so `resume()` continues to exactly the result of an uninterrupted run. With several
    processes the flow is wrapped in DistributedDataParallel; only the main process writes files and logs.
    SIGTERM or SIGINT stops the loop after the current step with `last.pt` written.
    """

    def __init__(
        self,
        flow: torch.nn.Module,
        batches: Iterator[torch.Tensor],
        validation: Callable[[], Iterable[torch.Tensor]],
        settings: TrainerConfig,
        checkpoint_dir: Path,
        logger: RunLogger | None,
        record: dict,
        process: Process,
        pictures: Callable[[int], None] | None = None,
        image_dimension: int | None = None,
    ):
        """`batches`: this process's training stream (with state_dict/load_state_dict); `validation`: a fresh pass
        over this process's share of the validation split per call; `pictures(step)`: drawn every
        trainer.pictures_every steps; `image_dimension`: C·H·W for images, whose loss is then bits/dim as in
        the original (nats per example otherwise). `logger` is None on processes other than the main one."""
        self.flow, self.batches, self.validation, self.settings = flow, batches, validation, settings
        self.last_path, self.best_path = checkpoint_dir / "last.pt", checkpoint_dir / "best.pt"
        self.logger, self.record, self.process, self.pictures = logger, record, process, pictures
        self.bits_per_nat = 1 / (image_dimension * math.log(2)) if image_dimension else None
        self.model = _parallel_and_compiled(flow, settings, process)
        self.cuda_graphs = uses_cuda_graphs(settings.compile) and process.device.type == "cuda"
        self.autocast_dtype = AUTOCAST_DTYPES.get(settings.precision)
        self.scaler = torch.amp.GradScaler(process.device.type, enabled=settings.precision == Precision.fp16)
        self.optimizer = adam(flow.parameters(), settings.lr)
        # Stepped after every optimiser step, so step t (from 0) uses lr·(1 + cos(πt/T))/2: the original's schedule
        # exactly (it calls scheduler.step(t) at the start of step t), not shifted.
        self.scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=settings.max_steps, eta_min=0.0)
            if settings.anneal_lr
            else torch.optim.lr_scheduler.ConstantLR(self.optimizer, factor=1.0)
        )
        self.step = 0
        self.best_val, self.best_step = -math.inf, 0
        self.elapsed = 0.0
        self.stop_signal: int | None = None
        self.stop_file = stop_request.polled_file()  # a sweep's stop, asked through a file (None: not in a sweep)
        # (step, loss, gradient norm) of the first non-finite step since the start, zeros while there is none.
        self.nonfinite = torch.zeros(3, dtype=torch.float64, device=process.device)
        self.resumed_from: Path | None = None  # another run's last.pt this one started from (trainer.resume_from)

    def resume(self, state: dict, other_run: Path | None = None) -> None:
        """Continue from a last.pt: this run's own (exactly where it stopped), or `other_run`'s (trainer.resume_from):
        then this run's lr and max_steps take over the schedule from the saved step, and its best checkpoint is
        chosen among its own validations."""
        if len(state["rng"]) != self.process.world_size:
            raise RunError(
                f"{self.last_path} was written by {len(state['rng'])} process(es); resume it with "
                f"trainer.devices={len(state['rng'])} (or the same torchrun --nproc_per_node)."
            )
        self.flow.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.batches.load_state_dict(state["batches"])
        checkpoint.set_rng_state(state["rng"][self.process.rank])
        self.step, self.best_val, self.best_step = state["step"], state["best_val"], state["best_step"]
        self.elapsed = state["elapsed"]
        if other_run is not None:
            self.resumed_from = other_run
            self.best_val, self.best_step = -math.inf, 0
            self._retarget_schedule()

    def _retarget_schedule(self) -> None:
        """The learning rate this run's settings give at the current step, as if they had held from step 0."""
        lr, steps = self.settings.lr, self.settings.max_steps
        now = lr * (1 + math.cos(math.pi * self.step / steps)) / 2 if self.settings.anneal_lr else lr
        if self.settings.anneal_lr:
            self.scheduler.T_max = steps
        self.scheduler.base_lrs = [lr] * len(self.optimizer.param_groups)
        for group in self.optimizer.param_groups:
            group["initial_lr"], group["lr"] = lr, now
        self.scheduler._last_lr = [now] * len(self.optimizer.param_groups)

    def fit(self) -> None:
        settings = self.settings
        started, window_start, window_steps = time.perf_counter() - self.elapsed, time.perf_counter(), 0
        bar = tqdm(
            total=settings.max_steps,
            initial=self.step,
            disable=not (settings.progress_bar and self.process.is_main),
            dynamic_ncols=True,
            unit="step",
        )
        self.flow.train()
        with self._stop_on_signals():
            while self.step < settings.max_steps:
                loss, grad_norm = self._update(next(self.batches))
                self.step += 1
                window_steps += 1
                bar.update()
                if self._due(settings.log_every) or self._due(settings.val_every):
                    self._check_finite()
                if self._due(settings.log_every):
                    now, mean_loss = time.perf_counter(), loss.item()  # one host sync for the log and the bar
                    self._log(
                        {
                            "train/loss": mean_loss,
                            **self._log_likelihood("train", mean_loss),
                            "lr": self.scheduler.get_last_lr()[0],
                            "grad_norm": grad_norm.item(),
                            "steps_per_sec": window_steps / (now - window_start),
                        }
                    )
                    window_start, window_steps = now, 0
                    progress = {"loss": f"{mean_loss:.3f}"}
                    if math.isfinite(self.best_val):
                        progress["best val"] = f"{self.best_val:.3f}"
                    bar.set_postfix(progress, refresh=False)
                if self._due(settings.val_every):
                    self._validate()
                if self.pictures and settings.pictures_every and self.step % settings.pictures_every == 0:
                    with torch.random.fork_rng():  # sampling for pictures must not shift the training RNG
                        self.pictures(self.step)
                stopping = self._signalled()
                if stopping or self._due(settings.checkpoint_every):
                    self._check_finite()
                    self.elapsed = time.perf_counter() - started
                    self._save_last()
                if stopping:
                    raise Stopped(
                        self.stop_signal,
                        f"stopped by {signal_name(self.stop_signal)} at step {self.step}; {self.last_path} holds it — "
                        f"{resume_advice()}.",
                    )
        bar.close()
        self.elapsed = time.perf_counter() - started

    def _due(self, every: int) -> bool:
        """Whether a periodic action (log, validate, checkpoint) falls on this step; the last step has them all."""
        return self.step % every == 0 or self.step == self.settings.max_steps

    def _update(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step, without a host sync: a non-finite loss or gradient skips the update on the device
        (fused Adam's found_inf; with fp16 the gradient scaler's own skip) and is remembered for `_check_finite`."""
        if self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        # Autocast covers the conditioner networks; the spline functions run in float32 whatever the context.
        with torch.autocast(self.process.device.type, self.autocast_dtype, enabled=self.autocast_dtype is not None):
            loss = -self.model(batch).mean() * (self.bits_per_nat or 1.0)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        limit = self.settings.grad_clip if self.settings.grad_clip is not None else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.flow.parameters(), limit)
        loss = distributed.mean(loss.detach(), self.process)
        # With fp16 the scaler skips steps whose scaled gradients overflow; otherwise a non-finite value is fatal.
        finite = torch.isfinite(loss) if self.scaler.is_enabled() else torch.isfinite(loss) & torch.isfinite(grad_norm)
        self._remember_first_nonfinite(finite, loss, grad_norm)
        if not self.scaler.is_enabled():
            self.optimizer.found_inf = (~finite).to(torch.float32)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss, grad_norm

    def _remember_first_nonfinite(self, finite: torch.Tensor, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        """(step, loss, gradient norm) of the first non-finite step, kept on the device: no sync per step."""
        first = ~finite & (self.nonfinite[0] == 0)
        current = torch.stack(
            [torch.full_like(loss, self.step + 1, dtype=torch.float64), loss.double(), grad_norm.double()]
        )
        self.nonfinite = torch.where(first, current, self.nonfinite)

    def _check_finite(self) -> None:
        """Raise Diverged if a step since the last check was not finite. Called where the loop syncs anyway (logging)
        and before anything is written (validation, best.pt, last.pt), so last.pt always predates the bad step."""
        step, loss, grad_norm = self.nonfinite.tolist()
        if step:
            good = self.last_path if self.last_path.exists() else self.resumed_from
            saved = checkpoint.load(good)["step"] if good is not None else None
            raise Diverged(int(step), loss, grad_norm, self.step, good, saved)

    def _log(self, values: dict[str, float]) -> None:
        if self.logger is not None:
            self.logger.scalars(self.step, values)

    def _log_likelihood(self, split: str, loss: float) -> dict[str, float]:
        """A split's mean log-likelihood per example in nats (+, higher is better) from its loss, and for images
        also in bits/dim: one sign per tag, so train and validation share a chart."""
        values = {f"{split}/log_prob": -loss / (self.bits_per_nat or 1.0)}
        return values | ({f"{split}/bits_per_dim": loss} if self.bits_per_nat else {})

    def _validate(self) -> None:
        values = distributed.gather(log_likelihoods(self.flow, self.validation()), self.process)
        score = values.mean().item()
        self._log(self._log_likelihood("val", -score * (self.bits_per_nat or 1.0)))
        improved = score > self.best_val
        if improved:
            self.best_val, self.best_step = score, self.step
        if not self.process.is_main:
            return
        if improved:
            checkpoint.save(
                {**self.record, "step": self.step, "val_log_prob": score, "model": self.flow.state_dict()},
                self.best_path,
            )
        if not self.settings.progress_bar:  # the progress of a sweep's job or a batch job, in its log
            log.info(
                "step %d/%d: validation log-likelihood %.4f (best %.4f at step %d)",
                *(self.step, self.settings.max_steps, score, self.best_val, self.best_step),
            )

    def _save_last(self) -> None:
        rng = distributed.gather_objects(checkpoint.rng_state(), self.process)
        if not self.process.is_main:
            return
        if self.logger is not None:
            self.logger.flush()
        checkpoint.save(
            {
                **self.record,
                "step": self.step,
                "model": self.flow.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "batches": self.batches.state_dict(),
                "rng": rng,
                "best_val": self.best_val,
                "best_step": self.best_step,
                "elapsed": self.elapsed,
            },
            self.last_path,
        )

    @contextlib.contextmanager
    def _stop_on_signals(self):
        """SIGTERM (a scheduler's preemption, torchrun's shutdown) and SIGINT (Ctrl-C) end the loop after the step."""

        def remember(number, frame):
            self.stop_signal = number

        previous = {number: signal.signal(number, remember) for number in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _signalled(self) -> bool:
        """Whether any process was signalled; all processes agree, so they stop at the same step."""
        if self.stop_signal is None and self.stop_file is not None:
            self.stop_signal = stop_request.requested(self.stop_file)
        anyone = distributed.any_process(self.stop_signal is not None, self.process)
        if anyone and self.stop_signal is None:
            self.stop_signal = signal.SIGTERM  # another process was signalled; torchrun signals them all
        return anyone


class Diverged(RunError):
    """A non-finite loss or gradient first at `step`, whose update was skipped; seen at `stopped_step` (the next
    logging, validation or checkpoint step); `last_path` holds `saved_step` (< step), or is None when no checkpoint
    was written yet. The CLI turns it into a sentence with a command that continues."""

    def __init__(
        self,
        step: int,
        loss: float,
        grad_norm: float,
        stopped_step: int,
        last_path: Path | None,
        saved_step: int | None,
    ):
        self.step, self.last_path, self.saved_step = step, last_path, saved_step
        on_disk = f"{last_path} holds step {saved_step}" if last_path else "no checkpoint was written yet"
        stopped = "" if stopped_step == step else f"; the run stopped at step {stopped_step}"
        super().__init__(
            f"the training loss became {loss} at step {step} (gradient norm {grad_norm}); that step's update was "
            f"skipped{stopped} and {on_disk}"
        )


def adam(parameters, lr: float) -> torch.optim.Adam:
    """Adam as the original (PyTorch defaults), fused: one kernel for the whole update instead of a dozen
    small ops per parameter tensor."""
    return torch.optim.Adam(parameters, lr=lr, fused=True)


def _parallel_and_compiled(flow: torch.nn.Module, settings: TrainerConfig, process: Process) -> torch.nn.Module:
    """The module the training step calls: the flow, wrapped in DDP across processes and/or torch.compile'd."""
    model = flow
    if process.world_size > 1:
        if settings.sync_batchnorm:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        device_ids = [process.device] if process.device.type == "cuda" else None
        model = DistributedDataParallel(model, device_ids=device_ids)
    return compiled(model, settings.compile)
