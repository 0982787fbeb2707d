"""Masked autoregressive transform (docs/architectures.md §Autoregressive layers): one MADE pass for density, D passes to invert."""

from .base import Transform, sum_except_batch


class AutoregressiveTransform(Transform):
    """Element-wise map of feature i with parameters from MADE(x_<i); `made` outputs features * num_params.

    The original applies no 1/sqrt(hidden) scaling here (its MADE has no hidden_features
    attribute), so neither do we.
    """

    def __init__(self, made, elementwise):
        super().__init__()
        self.made = made
        self.elementwise = elementwise

    def _params(self, inputs, context):
        return self.made(inputs, context).reshape(inputs.shape[0], inputs.shape[1], self.elementwise.num_params)

    def forward(self, inputs, context=None):
        outputs, logabsdet = self.elementwise(inputs, self._params(inputs, context))
        return outputs.to(inputs.dtype), sum_except_batch(logabsdet)

    def inverse(self, inputs, context=None):
        outputs = inputs.new_zeros(inputs.shape)
        for _ in range(inputs.shape[1]):  # pass i fixes feature i; later passes leave it unchanged
            outputs, logabsdet = self.elementwise(inputs, self._params(outputs, context), inverse=True)
            outputs = outputs.to(inputs.dtype)
        return outputs, sum_except_batch(logabsdet)
