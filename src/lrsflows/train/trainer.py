"""The training loop: Adam, cosine annealing to 0, gradient-norm clipping, validation, best and last checkpoints."""

import math
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import torch
from tqdm import tqdm

from ..config import TrainerConfig
from ..errors import RunError
from . import checkpoint
from .evaluate import log_likelihoods
from .logger import RunLogger


class Trainer:
    """Fits a flow by maximum likelihood and keeps `checkpoints/last.pt` (resumable) and `best.pt` (best validation).

    `last.pt` holds model, optimizer, scheduler, batch stream, step, best score and every RNG state, so
    `resume()` continues to exactly the result of an uninterrupted run.
    """

    def __init__(
        self,
        flow: torch.nn.Module,
        batches: Iterator[torch.Tensor],
        validation: Callable[[], Iterable[torch.Tensor]],
        settings: TrainerConfig,
        checkpoint_dir: Path,
        logger: RunLogger,
        record: dict,
        pictures: Callable[[int], None] | None = None,
        image_dimension: int | None = None,
    ):
        """`batches`: the training stream (with state_dict/load_state_dict); `validation`: a fresh pass over the
        validation split per call; `pictures(step)`: drawn every trainer.pictures_every steps; `image_dimension`:
        C·H·W for images, whose loss is then bits/dim as in the original (nats per example otherwise)."""
        self.flow, self.batches, self.validation, self.settings = flow, batches, validation, settings
        self.last_path, self.best_path = checkpoint_dir / "last.pt", checkpoint_dir / "best.pt"
        self.logger, self.record, self.pictures = logger, record, pictures
        self.bits_per_nat = 1 / (image_dimension * math.log(2)) if image_dimension else None
        self.optimizer = torch.optim.Adam(flow.parameters(), lr=settings.lr)
        # Stepped after every optimiser step: lr_t = lr·(1 + cos(πt/T))/2. The original steps it at the start of
        # an iteration with the iteration index, which is the same schedule shifted by one step.
        self.scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=settings.max_steps, eta_min=0.0)
            if settings.anneal_lr
            else torch.optim.lr_scheduler.ConstantLR(self.optimizer, factor=1.0)
        )
        self.step = 0
        self.best_val, self.best_step = -math.inf, 0
        self.elapsed = 0.0

    def resume(self, state: dict) -> None:
        self.flow.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.batches.load_state_dict(state["batches"])
        checkpoint.set_rng_state(state["rng"])
        self.step, self.best_val, self.best_step = state["step"], state["best_val"], state["best_step"]
        self.elapsed = state["elapsed"]

    def fit(self) -> None:
        settings = self.settings
        started, window_start, window_steps = time.perf_counter() - self.elapsed, time.perf_counter(), 0
        bar = tqdm(
            total=settings.max_steps, initial=self.step, disable=not settings.progress_bar, dynamic_ncols=True, unit="step"
        )
        self.flow.train()
        while self.step < settings.max_steps:
            loss, grad_norm = self._update(next(self.batches))
            self.step += 1
            window_steps += 1
            bar.update()
            if self.step % settings.log_every == 0 or self.step == settings.max_steps:
                now = time.perf_counter()
                self.logger.scalars(
                    self.step,
                    {
                        "train/loss": loss.item(),
                        "lr": self.scheduler.get_last_lr()[0],
                        "grad_norm": grad_norm.item(),
                        "steps_per_sec": window_steps / (now - window_start),
                    },
                )
                window_start, window_steps = now, 0
                progress = {"loss": f"{loss.item():.3f}"}
                if math.isfinite(self.best_val):
                    progress["best val"] = f"{self.best_val:.3f}"
                bar.set_postfix(progress, refresh=False)
            if self.step % settings.val_every == 0 or self.step == settings.max_steps:
                self._validate()
            if self.pictures is not None and settings.pictures_every and self.step % settings.pictures_every == 0:
                with torch.random.fork_rng():  # sampling for pictures must not shift the training RNG
                    self.pictures(self.step)
            if self.step % settings.checkpoint_every == 0 or self.step == settings.max_steps:
                self.elapsed = time.perf_counter() - started
                self._save_last()
        bar.close()
        self.elapsed = time.perf_counter() - started

    def _update(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss = -self.flow.log_prob(batch).mean() * (self.bits_per_nat or 1.0)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        limit = self.settings.grad_clip if self.settings.grad_clip is not None else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.flow.parameters(), limit)
        if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):
            raise RunError(
                f"the training loss became {loss.item()} at step {self.step + 1} (gradient norm {grad_norm.item()}); "
                f"nothing was updated, and {self.last_path} still holds the last good state — lower trainer.lr or "
                "set trainer.grad_clip, then rerun with trainer.resume=true."
            )
        self.optimizer.step()
        self.scheduler.step()
        return loss.detach(), grad_norm

    def _validate(self) -> None:
        score = log_likelihoods(self.flow, self.validation()).mean().item()
        scores = {"val/log_prob": score} | ({"val/bits_per_dim": -score * self.bits_per_nat} if self.bits_per_nat else {})
        self.logger.scalars(self.step, scores)
        if score > self.best_val:
            self.best_val, self.best_step = score, self.step
            checkpoint.save(
                {**self.record, "step": self.step, "val_log_prob": score, "model": self.flow.state_dict()}, self.best_path
            )

    def _save_last(self) -> None:
        checkpoint.save(
            {
                **self.record,
                "step": self.step,
                "model": self.flow.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "batches": self.batches.state_dict(),
                "rng": checkpoint.rng_state(),
                "best_val": self.best_val,
                "best_step": self.best_step,
                "elapsed": self.elapsed,
            },
            self.last_path,
        )
