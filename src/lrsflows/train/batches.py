"""Mini-batches of a device-resident tensor by random permutation: no per-sample DataLoader indexing."""

import torch


class TensorBatches:
    """An endless stream of batches drawn without replacement, reshuffled every epoch (remainders dropped).

    The permutation comes from a seeded CPU generator, and the stream's position is part of its state, so a
    resumed run draws exactly the batches an uninterrupted one would.
    """

    def __init__(self, data: torch.Tensor, batch_size: int, seed: int):
        if batch_size > len(data):
            raise ValueError(f"batch size {batch_size} exceeds the {len(data)} training examples; lower trainer.batch_size.")
        self.data = data
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.empty(0, dtype=torch.long)
        self.position = 0

    def __iter__(self):
        return self

    def __next__(self) -> torch.Tensor:
        if self.position + self.batch_size > len(self.order):
            self.order = torch.randperm(len(self.data), generator=self.generator).to(self.data.device)
            self.position = 0
        indices = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return self.data[indices]

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "order": self.order.cpu(), "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.order = state["order"].to(self.data.device)
        self.position = state["position"]
