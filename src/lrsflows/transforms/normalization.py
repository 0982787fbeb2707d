"""Normalising flow layers: ActNorm (Glow; docs/architectures.md §Linear layers) and BatchNorm (RealNVP/MAF), per channel (dim 1).

Both are per-channel affine maps y = x * exp(log_scale) + shift applied at every position of the
further dims, so they work on [B, C] vectors and [B, C, H, W] images alike.
"""

import math

import torch
from torch import nn

from .base import Transform


def _channel_affine(inputs, log_scale, shift, inverse):
    """y = x * exp(log_scale) + shift per channel; the log-det counts every position of each channel."""
    broadcast = (1, -1) + (1,) * (inputs.dim() - 2)
    log_scale_b, shift_b = log_scale.reshape(broadcast), shift.reshape(broadcast)
    logabsdet = log_scale.sum() * math.prod(inputs.shape[2:])
    if inverse:
        outputs, logabsdet = (inputs - shift_b) * torch.exp(-log_scale_b), -logabsdet
    else:
        outputs = inputs * torch.exp(log_scale_b) + shift_b
    return outputs, logabsdet.expand(inputs.shape[0])


def _per_channel_values(inputs):
    """[B, C, *spatial] -> [B * positions, C], the samples over which per-channel statistics are taken."""
    return inputs.movedim(1, -1).reshape(-1, inputs.shape[1])


class ActNorm(Transform):
    """Per-channel scale and shift, initialised from the first training batch to zero mean, unit variance.

    As nflows: the initialisation happens on the first forward pass in training mode only (an eval
    pass never initialises from evaluation data), and `initialized` is a buffer so a loaded
    checkpoint is not re-initialised by the next training batch.
    """

    def __init__(self, features: int):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(features))
        self.shift = nn.Parameter(torch.zeros(features))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def _initialize(self, inputs):
        """Mean and (N−1) standard deviation per channel from sums, added up over data-parallel processes so
        that every process starts from the same parameters (those of the whole global batch)."""
        values = _per_channel_values(inputs).double()
        sums = torch.stack(
            [values.new_full((values.shape[1],), float(values.shape[0])), values.sum(0), values.pow(2).sum(0)]
        )
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(sums)
        count, total, squares = sums
        mean = total / count
        std = ((squares - count * mean**2) / (count - 1)).sqrt()
        self.log_scale.copy_(-torch.log(std))
        self.shift.copy_(-mean / std)
        self.initialized.fill_(True)

    def forward(self, inputs, context=None):
        if self.training and not self.initialized:
            self._initialize(inputs)
        return _channel_affine(inputs, self.log_scale, self.shift, inverse=False)

    def inverse(self, inputs, context=None):
        return _channel_affine(inputs, self.log_scale, self.shift, inverse=True)


class BatchNorm(Transform):
    """Batch normalisation as an invertible layer: y = exp(log_gamma) (x - mean) / sqrt(var + eps) + beta.

    Training uses the batch's statistics (gradients flow through them, as in RealNVP/MAF; the
    log-det treats them as constants, as those papers do) and updates running averages; eval uses
    the running averages. The inverse needs fixed statistics, hence eval mode only. Deviations
    from nflows, which do not change a trained model: the scale is parameterised by log_gamma
    (RealNVP/MAF) instead of softplus, and running_var starts at 1 instead of 0 so an untrained
    layer in eval mode is the identity rather than a division by sqrt(eps).
    """

    def __init__(self, features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.log_gamma = nn.Parameter(torch.zeros(features))
        self.beta = nn.Parameter(torch.zeros(features))
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_var", torch.ones(features))

    def _log_scale_and_shift(self, mean, var):
        log_scale = self.log_gamma - 0.5 * torch.log(var + self.eps)
        return log_scale, self.beta - mean * torch.exp(log_scale)

    def forward(self, inputs, context=None):
        if self.training:
            values = _per_channel_values(inputs)
            mean, var = values.mean(dim=0), values.var(dim=0)
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var, self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        return _channel_affine(inputs, *self._log_scale_and_shift(mean, var), inverse=False)

    def inverse(self, inputs, context=None):
        if self.training:
            raise RuntimeError(
                "BatchNorm has no inverse in training mode (it depends on the batch); call .eval() first."
            )
        return _channel_affine(inputs, *self._log_scale_and_shift(self.running_mean, self.running_var), inverse=True)
