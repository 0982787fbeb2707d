"""2-D synthetic densities generated from a seed, each with its exact log-density."""

import math

import torch


class EightGaussians:
    """Eight isotropic Gaussians on a circle (Residual Flows / LRS): centres 4*(cos, sin)(k*pi/4)/1.414, sigma 0.5/1.414."""

    scale = 4.0 / 1.414
    sigma = 0.5 / 1.414

    def __init__(self):
        angles = torch.arange(8, dtype=torch.float64) * math.pi / 4
        self.centres = self.scale * torch.stack([angles.cos(), angles.sin()], dim=1)

    def sample(self, num_samples: int, generator: torch.Generator) -> torch.Tensor:
        which = torch.randint(0, 8, (num_samples,), generator=generator)
        noise = torch.randn(num_samples, 2, generator=generator, dtype=torch.float64)
        return (self.centres[which] + self.sigma * noise).float()

    def log_prob(self, points: torch.Tensor) -> torch.Tensor:
        squared = (points.double()[:, None, :] - self.centres).pow(2).sum(-1)
        log_components = -0.5 * squared / self.sigma**2 - math.log(2 * math.pi * self.sigma**2)
        return torch.logsumexp(log_components, dim=1) - math.log(8)
