"""Per-example log-likelihoods over a whole split and the paper's summary: mean ± 2 standard errors."""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Estimate:
    """A mean over N examples and its error bar 2·std/√N (std with N−1, as torch and NSF compute it)."""

    mean: float
    error: float
    count: int

    @classmethod
    def of(cls, values: torch.Tensor) -> "Estimate":
        values = values.double()
        return cls(values.mean().item(), 2 * values.std().item() / len(values) ** 0.5, len(values))


@contextmanager
def eval_mode(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """`module` in eval mode (BatchNorm on running statistics, no dropout) for the block, then as it was."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


@torch.no_grad()
def log_likelihoods(flow: torch.nn.Module, batches: Iterable[torch.Tensor]) -> torch.Tensor:
    """log p(x) of every example of a pass over a split, in eval mode (BatchNorm uses running statistics, no dropout).

    Unlike the original, validation uses every example (its loader dropped the last partial batch of 512).
    """
    with eval_mode(flow):
        return per_example(flow.log_prob(batch) for batch in batches)


def per_example(values: Iterable[torch.Tensor]) -> torch.Tensor:
    """A pass's per-batch values as one float64 CPU tensor (empty for a process that got no batch of a small
    split under data parallelism)."""
    return torch.cat([torch.empty(0, dtype=torch.float64), *(value.double().cpu() for value in values)])
