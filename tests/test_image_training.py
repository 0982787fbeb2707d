"""Dequantisation, the image batch stream and image pictures: the pieces the trainer adds for images."""

import numpy as np
import pytest
import torch
from PIL import Image

from lrsflows.config import DatasetConfig
from lrsflows.data.dequantization import dequantize, reduce_bits, to_display
from lrsflows.flows import build_image_flow
from lrsflows.train.batches import ImageBatches, dequantized_batches
from lrsflows.train.image_pictures import (
    GREY,
    MIN_WIDTH,
    TITLE_HEIGHT,
    grid_figure,
    image_grid,
    readable_grid,
    reconstruction,
    sample_grids,
)
from lrsflows.train.kinds import SHOWN_SAMPLES, Drawn, Images, Picturing, publish


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
    assert grid[0, 0].eq(GREY).all() and grid[0, 4, 7] == GREY  # padding and the empty sixth cell


def test_image_grid_enlarges_every_pixel_to_a_square_block_inside_grey_padding():
    images = torch.arange(12, dtype=torch.uint8).view(2, 1, 2, 3)
    grid = image_grid(images, columns=2, padding=3, scale=2)
    g = GREY
    first = [[0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2], [3, 3, 4, 4, 5, 5], [3, 3, 4, 4, 5, 5]]
    second = [[value + 6 for value in row] for row in first]
    expected = [[g] * 21] * 3 + [[g] * 3 + a + [g] * 3 + b + [g] * 3 for a, b in zip(first, second)] + [[g] * 21] * 3
    assert grid.tolist() == [expected]


@pytest.mark.parametrize(
    "shape, side", [((1, 28, 28), 84), ((3, 32, 32), 64), ((3, 64, 64), 64)], ids=["mnist", "cifar10", "imagenet64"]
)
def test_readable_grids_enlarge_small_images_by_a_whole_factor_to_at_least_64_px(shape, side):
    grid = readable_grid(pixels(5, shape))  # three columns, two rows
    assert grid.shape == (shape[0], 2 * (side + 4) + 4, 3 * (side + 4) + 4)
    assert torch.equal(grid[:, 4 : 4 + side : side // shape[1], 4 : 4 + side : side // shape[2]], pixels(5, shape)[0])


def png(path) -> tuple[str, np.ndarray]:
    """A PNG's title (its Title text) and RGB pixels, read back from disk."""
    with Image.open(path) as picture:
        return picture.text["Title"], np.asarray(picture.convert("RGB"))


def assert_shows_grid(pixels_read: np.ndarray, grid: torch.Tensor) -> None:
    """The picture is white, the grid pixel for pixel at the bottom, centred, under a band for the title."""
    channels, height, width = grid.shape
    page_width = max(width, MIN_WIDTH)
    assert pixels_read.shape == (TITLE_HEIGHT + height, page_width, 3)
    left = (page_width - width) // 2
    shown = pixels_read[TITLE_HEIGHT:, left : left + width]
    assert np.array_equal(shown, np.broadcast_to(grid.permute(1, 2, 0).numpy(), (height, width, 3)))
    assert (pixels_read[TITLE_HEIGHT:, :left] == 255).all()  # the page beside a narrow grid


@pytest.mark.parametrize("channels", [1, 3])
def test_a_grid_picture_shows_the_grid_unresampled_under_its_title(channels, tmp_path):
    grid = readable_grid(pixels(6, (channels, 4, 4)))
    path = publish(grid_figure(grid, "mnist · LRS (C) · step 7 · T = 0.75"), tmp_path / "grid.png", None, "", 7)
    title, shown = png(path)
    assert title == "mnist · LRS (C) · step 7 · T = 0.75"
    assert_shows_grid(shown, grid)
    assert (shown[: TITLE_HEIGHT // 2] < 128).any()  # the title is drawn in its band


def test_sample_grids_and_reconstruction_of_a_tiny_image_flow():
    flow = build_image_flow((1, 4, 4), "lrs", num_levels=1, steps_per_level=1, hidden_channels=4, num_blocks=1)
    grids = sample_grids(flow, num_bits=8, num_samples=6)
    assert sorted(grids) == [0.5, 0.75, 1.0]
    # 4 px images enlarged 16 times to 64 px, 4 px apart: two rows of three.
    assert all(grid.dtype == torch.uint8 and grid.shape == (1, 2 * 68 + 4, 3 * 68 + 4) for grid in grids.values())
    batch = dequantize(pixels(3, shape=(1, 4, 4)), 8)
    picture, error = reconstruction(flow, batch, num_bits=8)
    assert picture.shape == (1, 2 * 68 + 4, 3 * 68 + 4) and error < 1e-3
    assert flow.training  # the pictures leave the mode as they found it


@pytest.mark.parametrize("count", [100, 300])
def test_task_samples_are_pictured_at_their_temperature_up_to_a_cap(count, tmp_path):
    flow = build_image_flow((1, 4, 4), "lrs", num_levels=1, steps_per_level=1, hidden_channels=4, num_blocks=1)
    drawn = Drawn(pixels(count, (1, 4, 4)), 0.5)
    dataset = DatasetConfig(name="mnist", kind="image")
    [path] = Images().pictures(flow, dataset, Picturing(tmp_path, 7, "mnist · LRS (C) · step 7", drawn=drawn))
    assert path == tmp_path / f"samples_n{count}_T0.5.png"
    title, shown = png(path)
    cap = f" (first {SHOWN_SAMPLES} shown)" if count > SHOWN_SAMPLES else ""
    assert title == f"mnist · LRS (C) · step 7 · n = {count} · T = 0.5{cap}"
    assert_shows_grid(shown, readable_grid(drawn.samples[:SHOWN_SAMPLES]))  # 10 x 10, or 16 x 16 of 300
