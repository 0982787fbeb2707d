"""A flow: a transform data -> noise and a base density on the noise, optionally conditioned on a context."""

import torch
from torch import nn


class Flow(nn.Module):
    """log p(x | c) = log base(T(x; e(c))) + log|det dT/dx|; samples are T^{-1}(noise; e(c)).

    A conditional flow's transform takes `context_features` context features per row; `embedding` (nflows'
    embedding_net, default the identity) maps the raw context to them first and trains with the flow. Shapes
    follow nflows: log_prob takes one context row per input row, sample draws n samples per context row.

    >>> from lrsflows.flows import build_tabular_flow
    >>> flow = build_tabular_flow(2, num_flow_steps=1, hidden_features=8, context_features=3)
    >>> flow.log_prob(torch.randn(6, 2), context=torch.randn(6, 3)).shape
    torch.Size([6])
    """

    def __init__(self, transform, base, context_features: int = 0, embedding: nn.Module | None = None):
        super().__init__()
        self.transform = transform
        self.base = base
        self.context_features = context_features
        self.embedding = nn.Identity() if embedding is None else embedding  # no parameters: checkpoints unchanged

    def _embedded(self, context: torch.Tensor | None) -> torch.Tensor | None:
        """The context the transform reads, after checking that one is given exactly when the flow takes one."""
        if not self.context_features:
            if context is not None:
                raise ValueError("this flow was built without a context (context_features=0); call it without one.")
            return None
        if context is None:
            raise ValueError(f"this flow is conditional on {self.context_features} context features; pass context=.")
        embedded = self.embedding(context)
        if embedded.shape[1:] != (self.context_features,):
            raise ValueError(
                f"the context reaches the flow as shape {tuple(embedded.shape)}, "
                f"not [rows, {self.context_features}] as built (context_features={self.context_features})."
            )
        return embedded

    def log_prob(self, inputs: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """log p(inputs[i] | context[i]) per row, so a conditional flow takes one context row per input row.

        >>> from lrsflows.flows import build_tabular_flow
        >>> build_tabular_flow(3, num_flow_steps=1, hidden_features=8).log_prob(torch.randn(5, 3)).shape
        torch.Size([5])
        """
        if context is not None and len(context) != len(inputs):
            raise ValueError(f"log_prob takes one context row per input row, got {len(context)} for {len(inputs)}.")
        noise, logabsdet = self.transform(inputs, self._embedded(context))
        return self.base.log_prob(noise) + logabsdet

    def forward(self, inputs, context=None):
        """Same as log_prob, so wrappers such as DistributedDataParallel see the density."""
        return self.log_prob(inputs, context)

    def _sample(self, num_samples: int, context, temperature: float):
        """Noise, samples and the inverse log-det: C·n rows for C context rows (each repeated n times), else n."""
        embedded = self._embedded(context)
        if embedded is not None:
            embedded = embedded.repeat_interleave(num_samples, dim=0)
        noise = self.base.sample(num_samples if embedded is None else len(embedded), temperature)
        samples, logabsdet = self.transform.inverse(noise, embedded)
        return noise, samples, logabsdet

    @staticmethod
    def _per_context(values: torch.Tensor, num_samples: int, context) -> torch.Tensor:
        """[C·n, ...] -> [C, n, ...] for a context of C rows (nflows' shape); unchanged without a context."""
        return values if context is None else values.reshape(len(context), num_samples, *values.shape[1:])

    def sample(
        self, num_samples: int, context: torch.Tensor | None = None, *, temperature: float = 1.0
    ) -> torch.Tensor:
        """[n, ...] samples, or [C, n, ...]: n for each of the C context rows; `temperature` (keyword only, so
        `sample(n, context)` reads as in nflows) scales the noise.

        >>> from lrsflows.flows import build_tabular_flow
        >>> flow = build_tabular_flow(2, num_flow_steps=1, hidden_features=8, context_features=3)
        >>> flow.sample(5, context=torch.randn(4, 3)).shape
        torch.Size([4, 5, 2])
        >>> build_tabular_flow(2, num_flow_steps=1, hidden_features=8).sample(5, temperature=0.7).shape
        torch.Size([5, 2])
        """
        _, samples, _ = self._sample(num_samples, context, temperature)
        return self._per_context(samples, num_samples, context)

    def sample_and_log_prob(self, num_samples: int, context: torch.Tensor | None = None, *, temperature: float = 1.0):
        """Samples as `sample` gives them and their model log-density ([n] or [C, n]) from one inverse pass.

        >>> from lrsflows.flows import build_tabular_flow
        >>> flow = build_tabular_flow(2, num_flow_steps=1, hidden_features=8, context_features=3)
        >>> samples, log_density = flow.sample_and_log_prob(5, context=torch.randn(4, 3))
        >>> samples.shape, log_density.shape
        (torch.Size([4, 5, 2]), torch.Size([4, 5]))
        """
        noise, samples, logabsdet = self._sample(num_samples, context, temperature)
        log_density = self.base.log_prob(noise) - logabsdet
        return self._per_context(samples, num_samples, context), self._per_context(log_density, num_samples, context)
