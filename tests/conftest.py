"""Shared helpers for the transform and flow tests."""

import os

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # make test runs two pytest workers on this 2-core machine: one intra-op thread each, so they do not fight.
    torch.set_num_threads(1)


def perturb_(module: torch.nn.Module, scale: float = 0.3, seed: int = 0) -> torch.nn.Module:
    """Move every parameter away from its (often identity) initialisation so checks are not trivial."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(scale * torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))
    return module


def jacobian_logabsdet(function, inputs: torch.Tensor) -> torch.Tensor:
    """log|det J| per example from autograd's full Jacobian of a per-example map."""
    values = []
    for example in inputs:
        jacobian = torch.autograd.functional.jacobian(lambda one: function(one.unsqueeze(0))[0].squeeze(0), example)
        values.append(torch.linalg.slogdet(jacobian.reshape(example.numel(), example.numel()))[1])
    return torch.stack(values)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
