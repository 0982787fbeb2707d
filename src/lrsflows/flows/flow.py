"""A flow: a transform data -> noise and a base density on the noise."""

import torch
from torch import nn


class Flow(nn.Module):
    """log p(x) = log base(T(x)) + log|det dT/dx|; samples are T^{-1}(noise)."""

    def __init__(self, transform, base):
        super().__init__()
        self.transform = transform
        self.base = base

    def log_prob(self, inputs: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        noise, logabsdet = self.transform(inputs, context)
        return self.base.log_prob(noise) + logabsdet

    def forward(self, inputs, context=None):
        """Same as log_prob, so wrappers such as DistributedDataParallel see the density."""
        return self.log_prob(inputs, context)

    def sample(self, num_samples: int, temperature: float = 1.0, context=None) -> torch.Tensor:
        samples, _ = self.transform.inverse(self.base.sample(num_samples, temperature), context)
        return samples

    def sample_and_log_prob(self, num_samples: int, temperature: float = 1.0, context=None):
        """Samples and their model log-density from one inverse pass (no second forward pass)."""
        noise = self.base.sample(num_samples, temperature)
        samples, logabsdet = self.transform.inverse(noise, context)
        return samples, self.base.log_prob(noise) - logabsdet
