from dataclasses import replace

import pytest
import torch

from osteo_engine.ssl.multicrop import (
    MultiCropConfig,
    ViewAugmentConfig,
    _view,
    choose_views,
    coverage,
    multicrop,
    paired_multicrop,
    view_share,
)

NO_AUGMENT = ViewAugmentConfig(rotation_deg=0, translate=0, hflip=0, vflip=0, brightness=(1, 1), contrast=(1, 1))


def _sparse_patches(b=32, size=64, width=5):
    """Bone patches are mostly black: a bright bar (width 5: about 8% of the pixels) in each."""
    images = torch.zeros(b, 1, size, size)
    g = torch.Generator().manual_seed(0)
    for i in range(b):
        x = int(torch.randint(5, size - 5 - width, (1,), generator=g))
        images[i, 0, 4 : size - 4, x : x + width] = torch.rand(size - 8, width, generator=g) * 0.5 + 0.5
    return images


def _shares(views) -> torch.Tensor:
    return torch.cat([(v != 0).float().mean((1, 2, 3)) for v in views])


def test_the_coverage_estimate_follows_the_view_as_rotated_and_shifted():
    images = _sparse_patches(16)
    g = torch.Generator().manual_seed(1)
    config = MultiCropConfig(mode="conventional", global_size=48, local_size=24)  # rotation and shifts on
    thetas, _ = choose_views(images, None, (0.05, 0.4), config, g, count=4)
    estimated = view_share(coverage(images).repeat(4, 1, 1, 1), thetas, size=48)
    actual = _shares([_view(images, part, 48, NO_AUGMENT, g) for part in thetas.split(16)])
    # sampling blurs the bone's edge outwards by a pixel, so a view holds a little more than the estimate
    assert (estimated <= actual + 0.02).all() and (actual - estimated).max() < 0.1
    assert torch.corrcoef(torch.stack([estimated, actual]))[0, 1] > 0.95


@pytest.mark.parametrize("augment", [NO_AUGMENT, ViewAugmentConfig()])
def test_constrained_views_keep_ten_percent_of_bone_where_conventional_ones_do_not(augment):
    images = _sparse_patches(64, width=9)  # 14% bone, as a masked metacarpal patch
    g = torch.Generator().manual_seed(2)
    rates = {}
    for mode in ("constrained", "conventional"):
        config = MultiCropConfig(global_size=32, local_size=16, mode=mode, augment=augment)
        global_views, local_views, stats = multicrop(images, config, g)
        shares = _shares(global_views + local_views)
        assert stats.crops == len(shares) and stats.below_min == int((shares < 0.1).sum())
        rates[mode] = float((shares >= 0.1).float().mean())
    assert rates["constrained"] >= 0.99 and rates["conventional"] < 0.8  # measured on the views themselves


def test_brightness_and_contrast_leave_the_background_exactly_zero():
    images = _sparse_patches(8)
    config = MultiCropConfig(
        global_size=64,
        local_crops=0,
        global_scale=(1.0, 1.0),
        ratio=(1, 1),
        mode="conventional",
        augment=ViewAugmentConfig(0, 0, 0, 0, (1.4, 1.4), (0.5, 0.5)),
    )
    views, _, _ = multicrop(images, config, torch.Generator().manual_seed(0))
    background = images == 0
    assert torch.equal(views[0][background], torch.zeros(int(background.sum())))
    assert not torch.allclose(views[0][~background], images[~background])  # the bone itself was jittered


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
    config = MultiCropConfig(
        global_size=32,
        global_crops=2,
        local_crops=0,
        global_scale=(1.0, 1.0),
        ratio=(1, 1),
        mode="conventional",
        augment=NO_AUGMENT,
    )
    views, _, _ = multicrop(images, config, torch.Generator().manual_seed(0))
    assert torch.allclose(views[0], images, atol=1e-5)
    flipped = MultiCropConfig(**{**config.__dict__, "augment": ViewAugmentConfig(0, 0, 1.0, 0, (1, 1), (1, 1))})
    views, _, _ = multicrop(images, flipped, torch.Generator().manual_seed(0))
    assert torch.allclose(views[0], images.flip(-1), atol=1e-5)


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="mode"):
        multicrop(torch.zeros(1, 1, 8, 8), MultiCropConfig(mode="random"), torch.Generator())


def test_paired_views_take_their_second_half_from_the_partners():
    images, partners = torch.rand(3, 1, 16, 16), torch.rand(3, 1, 16, 16)
    config = MultiCropConfig(
        global_size=16,
        local_size=16,
        global_scale=(1.0, 1.0),
        local_scale=(1.0, 1.0),
        ratio=(1, 1),
        mode="conventional",
        augment=NO_AUGMENT,
    )
    global_views, local_views, stats = paired_multicrop(images, partners, config, torch.Generator().manual_seed(0))
    assert len(global_views) == 2 and len(local_views) == 4 and stats.crops == 6 * 3
    for first, second in ((global_views[0], global_views[1]), (local_views[1], local_views[2])):
        assert torch.allclose(first, images, atol=1e-5) and torch.allclose(second, partners, atol=1e-5)
    with pytest.raises(ValueError, match="even numbers"):
        paired_multicrop(images, partners, MultiCropConfig(local_crops=3), torch.Generator())


def test_gamma_and_noise_change_the_bone_alone_and_are_off_in_the_paper():
    assert ViewAugmentConfig().gamma == (1.0, 1.0) and ViewAugmentConfig().noise == (0.0, 0.0)
    images = torch.zeros(4, 1, 32, 32)
    images[:, :, 8:24, 8:24] = torch.rand(4, 1, 16, 16) * 0.8 + 0.1
    full = dict(global_size=32, local_crops=0, global_scale=(1.0, 1.0), ratio=(1, 1), mode="conventional")
    squared = MultiCropConfig(**full, augment=replace(NO_AUGMENT, gamma=(2.0, 2.0)))
    views, _, _ = multicrop(images, squared, torch.Generator().manual_seed(0))
    inside = (slice(None), slice(None), slice(9, 23), slice(9, 23))
    assert torch.allclose(views[0][inside], images[inside] ** 2, atol=1e-4)
    noisy = MultiCropConfig(**full, augment=replace(NO_AUGMENT, noise=(0.1, 0.1)))
    views, _, _ = multicrop(images, noisy, torch.Generator().manual_seed(0))
    assert (views[0][images == 0] == 0).all()
    assert (views[0] - images)[inside].std() == pytest.approx(0.1, rel=0.1)


def test_blur_smooths_the_bone_s_pattern_keeps_its_level_and_is_off_in_the_paper():
    assert ViewAugmentConfig().blur == (0.0, 0.0)
    images = torch.zeros(4, 1, 32, 32)
    pattern = (torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(1)) < 0.5).float() * 2 - 1
    images[:, :, 8:24, 8:24] = 0.5 + 0.2 * pattern  # a fine ±0.2 pattern on the bone
    images[3, :, 8:24, 8:24] = 0.6  # a bone without a pattern
    full = dict(global_size=32, local_crops=0, global_scale=(1.0, 1.0), ratio=(1, 1), mode="conventional")
    blurred = MultiCropConfig(**full, augment=replace(NO_AUGMENT, blur=(1.5, 1.5)))
    views, _, _ = multicrop(images, blurred, torch.Generator().manual_seed(0))
    view, inside = views[0], (slice(None), slice(None), slice(10, 22), slice(10, 22))
    assert (view[images == 0] == 0).all() and (view[images != 0] > 0).all()
    assert view[:3][inside].std() < 0.5 * images[:3][inside].std()
    assert torch.allclose(view[3][images[3] != 0], torch.tensor(0.6), atol=1e-4)  # no dark rim from the background
    assert float(view[:3][inside].mean()) == pytest.approx(float(images[:3][inside].mean()), abs=0.02)
