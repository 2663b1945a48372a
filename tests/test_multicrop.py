import numpy as np
import pytest
import torch

from osteo_engine.ssl.multicrop import (AugmentConfig, MultiCropConfig, choose_boxes, multicrop, nonzero_fraction,
                                        summed_area)

NO_AUGMENT = AugmentConfig(rotation_deg=0, translate=0, hflip=0, vflip=0, brightness=(1, 1), contrast=(1, 1))


def _sparse_patches(b=32, size=64):
    """Bone patches are mostly black: a thin bright bar (about 8% of the pixels) in each."""
    images = torch.zeros(b, 1, size, size)
    g = torch.Generator().manual_seed(0)
    for i in range(b):
        x = int(torch.randint(5, size - 10, (1,), generator=g))
        images[i, 0, 4:size - 4, x:x + 5] = torch.rand(size - 8, 5, generator=g) * 0.5 + 0.5
    return images


def _brute_fraction(image, box):
    x0, y0, w, h = box.tolist()
    window = image[0, round(y0):round(y0 + h), round(x0):round(x0 + w)]
    return float((window != 0).float().mean())


def test_summed_area_fractions_match_counting_to_within_a_cell():
    images = _sparse_patches(4)
    g = torch.Generator().manual_seed(1)
    config = MultiCropConfig(mode="conventional")
    boxes, _ = choose_boxes(images, None, (0.05, 0.4), config, g)
    fractions = nonzero_fraction(summed_area(images), boxes, torch.arange(4))
    for i in range(4):
        assert fractions[i].item() == pytest.approx(_brute_fraction(images[i], boxes[i]), abs=0.06)
    exact = nonzero_fraction(summed_area(images, cell=1), boxes, torch.arange(4))
    for i in range(4):
        assert exact[i].item() == pytest.approx(_brute_fraction(images[i], boxes[i]), abs=0.02)


def test_constrained_crops_keep_ten_percent_of_bone_where_conventional_ones_do_not():
    images = _sparse_patches()
    integral = summed_area(images)
    index = torch.arange(len(images))
    g = torch.Generator().manual_seed(2)
    constrained, stats = choose_boxes(images, integral, (0.05, 0.4), MultiCropConfig(tries=20), g)
    conventional, _ = choose_boxes(images, integral, (0.05, 0.4), MultiCropConfig(mode="conventional"), g)
    ok = nonzero_fraction(integral, constrained, index) >= 0.1
    assert ok.sum() + stats.fallbacks == len(images) and stats.fallbacks <= 2
    assert (nonzero_fraction(integral, conventional, index) < 0.1).sum() > 5


def test_views_have_the_configured_sizes_and_counts_and_are_reproducible():
    images = _sparse_patches(8)
    config = MultiCropConfig(global_size=48, local_size=24)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    global_views, local_views, stats = multicrop(images, config, g1)
    again, _, _ = multicrop(images, config, g2)
    assert [v.shape for v in global_views] == [(8, 1, 48, 48)] * 2
    assert [v.shape for v in local_views] == [(8, 1, 24, 24)] * 4
    assert stats.crops == 6 * 8
    assert torch.equal(global_views[0], again[0])


def test_a_full_crop_without_augmentation_is_the_image_and_flips_mirror_it():
    images = torch.rand(2, 1, 32, 32)
    config = MultiCropConfig(global_size=32, global_crops=2, local_crops=0, global_scale=(1.0, 1.0), ratio=(1, 1),
                             mode="conventional", augment=NO_AUGMENT)
    views, _, _ = multicrop(images, config, torch.Generator().manual_seed(0))
    assert torch.allclose(views[0], images, atol=1e-5)
    flipped = MultiCropConfig(**{**config.__dict__, "augment": AugmentConfig(0, 0, 1.0, 0, (1, 1), (1, 1))})
    views, _, _ = multicrop(images, flipped, torch.Generator().manual_seed(0))
    assert torch.allclose(views[0], images.flip(-1), atol=1e-5)


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="mode"):
        multicrop(torch.zeros(1, 1, 8, 8), MultiCropConfig(mode="random"), torch.Generator())
