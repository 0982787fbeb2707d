"""Base densities of flows: standard normal, and a box uniform for the 2-D face set-up."""

import math

import torch
from torch import nn


class StandardNormal(nn.Module):
    """N(0, I) over tensors of `shape` (per example)."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)  # follows .to(device/dtype)

    def log_prob(self, noise: torch.Tensor) -> torch.Tensor:
        flat = noise.reshape(noise.shape[0], -1)
        return -0.5 * flat.pow(2).sum(1) - 0.5 * flat.shape[1] * math.log(2 * math.pi)

    def sample(self, num_samples: int, temperature: float = 1.0) -> torch.Tensor:
        """Samples at `temperature` (standard deviation of the noise), as in Glow's reduced-temperature grids."""
        noise = torch.randn((num_samples,) + self.shape, dtype=self._anchor.dtype, device=self._anchor.device)
        return noise * temperature


class BoxUniform(nn.Module):
    """Uniform on the box [low, high]^shape; log-density -inf outside."""

    def __init__(self, shape, low: float = 0.0, high: float = 1.0):
        super().__init__()
        if not high > low:
            raise ValueError(f"uniform base needs high > low, got [{low}, {high}].")
        self.shape, self.low, self.high = tuple(shape), low, high
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def log_prob(self, noise: torch.Tensor) -> torch.Tensor:
        flat = noise.reshape(noise.shape[0], -1)
        inside = ((flat >= self.low) & (flat <= self.high)).all(1)
        density = -flat.shape[1] * math.log(self.high - self.low)
        return torch.where(inside, density, -math.inf).to(flat.dtype)

    def sample(self, num_samples: int, temperature: float = 1.0) -> torch.Tensor:
        if temperature != 1.0:
            raise ValueError("a uniform base has no temperature; sample with temperature=1.0.")
        unit = torch.rand((num_samples,) + self.shape, dtype=self._anchor.dtype, device=self._anchor.device)
        return self.low + (self.high - self.low) * unit
