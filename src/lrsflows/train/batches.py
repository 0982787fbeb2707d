"""Training and evaluation batch streams: device-resident tabular tensors, and DataLoader-fed images."""

import weakref

import torch

from ..data.dequantization import dequantize
from ..errors import RunError


class TensorBatches:
    """An endless stream of batches drawn without replacement, reshuffled every epoch (remainders dropped).

    The permutation comes from a seeded CPU generator, and the stream's position is part of its state, so a
    resumed run draws exactly the batches an uninterrupted one would. Under data parallelism every process
    draws the same global batch of `batch_size` and keeps its own contiguous share of it.
    """

    def __init__(self, data: torch.Tensor, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        if batch_size > len(data):
            raise RunError(
                f"trainer.batch_size={batch_size} exceeds the {len(data)} training examples; choose at most {len(data)}."
            )
        self.data = data
        self.batch_size = batch_size
        self.share = slice(*_share(batch_size, rank, world_size))
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.empty(0, dtype=torch.long)
        self.position = 0

    def __iter__(self):
        return self

    def __next__(self) -> torch.Tensor:
        if self.position + self.batch_size > len(self.order):
            self.order = torch.randperm(len(self.data), generator=self.generator).to(self.data.device)
            self.position = 0
        indices = self.order[self.position : self.position + self.batch_size][self.share]
        self.position += self.batch_size
        return self.data[indices]

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "order": self.order.cpu(), "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.order = state["order"].to(self.data.device)
        self.position = state["position"]


class ImageBatches:
    """Training batches of dequantised images from a DataLoader (workers, pinned memory), endlessly, resumable.

    Batches are drawn in the training split's fixed order, as the original does, or reshuffled every epoch with
    `shuffle` (a permutation seeded by seed and epoch). The last partial batch of an epoch is dropped (the
    original kept it). Dequantisation noise and horizontal flips are drawn on the device from the global RNG,
    which checkpoints save, so the stream's state is just (epoch, batches consumed).
    """

    def __init__(
        self,
        dataset,
        batch_size: int,
        device: torch.device,
        num_bits: int,
        num_workers: int,
        shuffle: bool,
        flip: bool,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ):
        if batch_size > len(dataset):
            raise RunError(
                f"trainer.batch_size={batch_size} exceeds the {len(dataset)} training images; choose at most {len(dataset)}."
            )
        self.dataset, self.batch_size, self.device = dataset, batch_size, device
        self.share = slice(*_share(batch_size, rank, world_size))
        self.num_bits, self.shuffle, self.flip, self.seed = num_bits, shuffle, flip, seed
        self.epoch, self.consumed = 0, 0
        self.loader = torch.utils.data.DataLoader(
            dataset,
            batch_sampler=_EpochBatches(self),
            num_workers=num_workers,
            pin_memory=device.type == "cuda",
            persistent_workers=num_workers > 0,
            generator=torch.Generator(),  # each new iterator draws its worker seed here, not from the global RNG
        )
        self._iterator = None

    def epoch_order(self) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(len(self.dataset))
        return torch.randperm(
            len(self.dataset), generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        )

    def __iter__(self):
        return self

    def __next__(self) -> torch.Tensor:
        if self._iterator is None:
            self._iterator = iter(self.loader)
        try:
            images = next(self._iterator)
        except StopIteration:
            self.epoch, self.consumed = self.epoch + 1, 0
            self._iterator = iter(self.loader)
            images = next(self._iterator)
        self.consumed += 1
        batch = dequantize(images.to(self.device, non_blocking=True), self.num_bits)
        if self.flip:
            flipped = torch.rand(len(batch), device=self.device) < 0.5
            batch = torch.where(flipped[:, None, None, None], batch.flip(-1), batch)
        return batch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "consumed": self.consumed}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.consumed = state["epoch"], state["consumed"]
        self._iterator = None


class _EpochBatches(torch.utils.data.Sampler):
    """The index batches of the stream's current epoch, from the first one not yet consumed.

    It holds the stream weakly: a stream -> loader -> sampler -> stream cycle would leave the loader's
    workers to the garbage collector, whose late shutdown waits out a timeout per worker.
    """

    def __init__(self, stream: ImageBatches):
        self.stream = weakref.proxy(stream)

    def __iter__(self):
        size = self.stream.batch_size
        order = self.stream.epoch_order()
        whole = order[: len(order) // size * size].view(-1, size)
        return iter(whole[self.stream.consumed :, self.stream.share].tolist())

    def __len__(self) -> int:
        return len(self.stream.dataset) // self.stream.batch_size - self.stream.consumed


def dequantized_batches(
    dataset,
    batch_size: int,
    device: torch.device,
    num_bits: int,
    seed: int,
    num_workers: int,
    rank: int = 0,
    world_size: int = 1,
):
    """An evaluation pass over images with one dequantisation draw per image, as the original's eval_on_test.

    Batch b's noise comes from a generator seeded by (seed, b), so a split's score is reproducible and the
    same whether one process evaluates every batch or `world_size` processes take every world_size-th one.
    """
    batches = torch.arange(len(dataset)).split(batch_size)
    numbers = range(len(batches))[rank::world_size]
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=[batches[number].tolist() for number in numbers],
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator(),  # leaves the global (training) RNG alone
    )
    generator = torch.Generator(device=device)
    for number, images in zip(numbers, loader):
        generator.manual_seed(seed * 1_000_003 + number)
        yield dequantize(images.to(device, non_blocking=True), num_bits, generator)


def tensor_batches(data: torch.Tensor, batch_size: int, rank: int = 0, world_size: int = 1) -> list[torch.Tensor]:
    """An evaluation pass over a tensor split; each of `world_size` processes takes every world_size-th batch."""
    return list(data.split(batch_size))[rank::world_size]


def _share(batch_size: int, rank: int, world_size: int) -> tuple[int, int]:
    """This process's contiguous part of a global batch."""
    if batch_size % world_size:
        raise RunError(
            f"trainer.batch_size={batch_size} does not split evenly over {world_size} processes; "
            "choose a batch size divisible by the number of processes."
        )
    size = batch_size // world_size
    return rank * size, (rank + 1) * size
