"""Uniform dequantisation of images and its inverse for display (docs/protocol.md §Dequantisation).

The model sees continuous values in [0, 2^num_bits): the integer pixel (reduced to num_bits) plus U[0, 1)
noise, so bins have width 1 and −log p / (ln 2 · C·H·W) is directly the discrete bits/dim bound.
"""

import torch


def reduce_bits(images: torch.Tensor, num_bits: int) -> torch.Tensor:
    """uint8 pixels in [0, 255] -> float integers in [0, 2^num_bits)."""
    pixels = images.float()
    return pixels if num_bits == 8 else torch.floor(pixels / 2 ** (8 - num_bits))


def dequantize(images: torch.Tensor, num_bits: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Integer pixels plus independent U[0, 1) noise per sub-pixel (the global RNG unless a generator is given)."""
    pixels = reduce_bits(images, num_bits)
    return pixels + torch.rand(pixels.shape, generator=generator, device=pixels.device, dtype=pixels.dtype)


def to_display(values: torch.Tensor, num_bits: int) -> torch.Tensor:
    """Model-space values -> uint8 pixels: floor, clamp to the 2^num_bits levels, rescale to [0, 255]."""
    levels = torch.floor(values).clamp(0, 2**num_bits - 1)
    return (levels * (256 / 2**num_bits)).clamp(0, 255).to(torch.uint8)
