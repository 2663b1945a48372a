import cv2
import numpy as np
import pytest

from osteo_engine.patches import bone_patches


def _hand(scale=1):
    pixels = np.random.default_rng(0).uniform(0.2, 0.9, (200 * scale, 160 * scale)).astype(np.float32)
    labels = np.zeros(pixels.shape, np.uint8)
    labels[40 * scale : 120 * scale, 30 * scale : 50 * scale] = 4  # M2
    labels[150 * scale : 199 * scale, 60 * scale : 100 * scale] = 2  # radius, touching the border
    return pixels, labels


def test_one_masked_patch_per_present_bone_and_missing_ones_listed():
    pixels, labels = _hand()
    result = bone_patches(pixels, labels, size=64)
    assert result.names == ["radius", "M2"]
    assert result.missing == ["ulna", "M1", "M3", "M4", "M5"]
    m2 = result.patches[1]
    assert m2.pixels.shape == (64, 64) and m2.mm_per_pixel is None
    # only the bone's pixels survive the mask: the patch's support is the bone's footprint
    x0, y0, x1, y1 = (v + 100 for v in m2.box)  # the square may leave the image: pad the labels
    padded = np.pad((labels == 4).astype(np.float32), 100)
    footprint = cv2.resize(padded[y0:y1, x0:x1], (64, 64)) > 0.99
    assert (m2.pixels[~cv2.dilate(footprint.astype(np.uint8), np.ones((3, 3))).astype(bool)] == 0).all()
    assert (m2.pixels[footprint] > 0).mean() > 0.95
    assert result.stack().shape == (2, 64, 64)


def test_known_spacing_gives_the_same_patch_from_two_scanners():
    pixels, labels = _hand()
    fine_pixels = cv2.resize(pixels, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
    fine_labels = cv2.resize(labels, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    coarse = bone_patches(pixels, labels, size=64, pixel_spacing_mm=0.4, mm_per_pixel=1.0).patches[1]
    fine = bone_patches(fine_pixels, fine_labels, size=64, pixel_spacing_mm=0.2, mm_per_pixel=1.0).patches[1]
    assert coarse.mm_per_pixel == pytest.approx(1.0, rel=0.05)
    assert fine.mm_per_pixel == pytest.approx(1.0, rel=0.05)
    assert np.abs((coarse.pixels > 0).astype(float) - (fine.pixels > 0)).mean() < 0.03


def test_empty_or_tiny_masks_are_missing_not_invented():
    pixels, labels = _hand()
    labels[:] = 0
    labels[5:9, 5:9] = 1  # 16 pixels of "ulna"
    result = bone_patches(pixels, labels)
    assert not result.patches and len(result.missing) == 7
    with pytest.raises(ValueError):
        bone_patches(pixels, labels[:-1])


def test_context_keeps_the_tissue_beside_the_bone_and_nothing_far_from_it():
    pixels, labels = _hand()
    plain = bone_patches(pixels, labels, size=64).patches[1]
    wide = bone_patches(pixels, labels, size=64, context=0.1).patches[1]
    assert wide.box == plain.box
    inside = cv2.erode((plain.pixels > 0).astype(np.uint8), np.ones((3, 3))).astype(bool)  # clear of edge blur
    assert inside.sum() > 100 and np.allclose(wide.pixels[inside], plain.pixels[inside])
    # the box is 96 source pixels wide: 0.1 of it keeps about 9.6 pixels on each side of the 20-pixel-wide M2
    columns = (wide.pixels > 0).any(axis=0).sum() * (plain.box[2] - plain.box[0]) / 64
    assert 20 + 2 * 8 < columns < 20 + 2 * 12  # resizing blurs each edge by about one source pixel
    assert (plain.pixels > 0).sum() < (wide.pixels > 0).sum()
    with pytest.raises(ValueError):
        bone_patches(pixels, labels, context=-0.1)
