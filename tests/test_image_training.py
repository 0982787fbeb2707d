"""Dequantisation, the image batch stream and image pictures: the pieces the trainer adds for images."""

import torch

from lrsflows.data.dequantization import dequantize, reduce_bits, to_display
from lrsflows.flows import build_image_flow
from lrsflows.train.batches import ImageBatches, dequantized_batches
from lrsflows.train.image_pictures import image_grid, reconstruction, sample_grids


def pixels(count=6, shape=(3, 4, 4), seed=0) -> torch.Tensor:
    return torch.randint(0, 256, (count, *shape), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_dequantised_pixels_lie_in_their_unit_bin():
    images = pixels()
    values = dequantize(images, 8)
    assert values.dtype == torch.float32
    assert torch.all(values >= images.float()) and torch.all(values < images.float() + 1)


def test_five_bit_reduction_and_display_round_trip():
    images = pixels()
    assert torch.equal(reduce_bits(images, 5), torch.floor(images.float() / 8))
    assert float(reduce_bits(images, 5).max()) <= 31
    assert torch.equal(to_display(dequantize(images, 5), 5), (images // 8) * 8)
    assert torch.equal(to_display(dequantize(images, 8), 8), images)


def test_display_clamps_out_of_range_samples():
    assert to_display(torch.tensor([-3.0, 255.9, 300.0]), 8).tolist() == [0, 255, 255]


def test_evaluation_dequantisation_is_reproducible_for_a_seed():
    images = pixels(10)
    first = torch.cat(list(dequantized_batches(images, 4, torch.device("cpu"), 8, seed=3, num_workers=0)))
    again = torch.cat(list(dequantized_batches(images, 4, torch.device("cpu"), 8, seed=3, num_workers=0)))
    other = torch.cat(list(dequantized_batches(images, 4, torch.device("cpu"), 8, seed=4, num_workers=0)))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert torch.equal(first.floor(), images.float())


def stream(images, **options):
    settings = dict(
        batch_size=4, device=torch.device("cpu"), num_bits=8, num_workers=0, shuffle=True, flip=True, seed=1
    )
    return ImageBatches(images, **(settings | options))


def test_image_stream_resumes_exactly_mid_epoch_and_across_epochs():
    images = pixels(10)  # 2 whole batches per epoch (the remainder of 2 is dropped)
    torch.manual_seed(0)  # noise and flips come from the global RNG, as in training
    whole = stream(images)
    expected = [next(whole) for _ in range(7)]

    torch.manual_seed(0)
    interrupted = stream(images)
    for _ in range(3):
        next(interrupted)
    state, rng = interrupted.state_dict(), torch.get_rng_state()
    resumed = stream(images)
    resumed.load_state_dict(state)
    torch.set_rng_state(rng)
    for batch in expected[3:]:
        assert torch.equal(next(resumed), batch)


def test_unshuffled_stream_repeats_the_fixed_order_and_drops_the_remainder():
    images = pixels(10)
    batches = stream(images, shuffle=False, flip=False)
    first_epoch = [next(batches).floor() for _ in range(2)]
    second_epoch = [next(batches).floor() for _ in range(2)]
    assert torch.equal(torch.cat(first_epoch), images[:8].float())
    assert torch.equal(torch.cat(second_epoch), images[:8].float())


def test_flips_mirror_some_images_horizontally_and_keep_the_rest():
    images = pixels(64, shape=(1, 2, 3))
    batch = next(stream(images, batch_size=64, shuffle=False)).floor()
    mirrored = torch.all(batch == images.float().flip(-1), dim=(1, 2, 3))
    kept = torch.all(batch == images.float(), dim=(1, 2, 3))
    assert torch.all(mirrored | kept) and 10 < int(mirrored.sum()) < 54


def test_image_grid_places_images_row_by_row_with_padding():
    images = torch.arange(5, dtype=torch.uint8).view(5, 1, 1, 1).expand(5, 1, 2, 2).contiguous()
    grid = image_grid(images, columns=3, padding=1)
    assert grid.shape == (1, 2 * 3 + 1, 3 * 3 + 1)
    assert (
        grid[0, 1, 1] == 0 and grid[0, 1, 4] == 1 and grid[0, 1, 7] == 2 and grid[0, 4, 1] == 3 and grid[0, 4, 4] == 4
    )
    assert grid[0, 0].eq(0).all() and grid[0, 4, 7] == 0  # padding and the empty sixth cell


def test_sample_grids_and_reconstruction_of_a_tiny_image_flow():
    flow = build_image_flow((1, 4, 4), "lrs", num_levels=1, steps_per_level=1, hidden_channels=4, num_blocks=1)
    grids = sample_grids(flow, num_bits=8, num_samples=6)
    assert sorted(grids) == [0.5, 0.75, 1.0]
    assert all(grid.dtype == torch.uint8 and grid.shape == (1, 1 * 5 + 1, 8 * 5 + 1) for grid in grids.values())
    batch = dequantize(pixels(3, shape=(1, 4, 4)), 8)
    picture, error = reconstruction(flow, batch, num_bits=8)
    assert picture.shape == (1, 2 * 5 + 1, 3 * 5 + 1) and error < 1e-3
    assert flow.training  # the pictures leave the mode as they found it
