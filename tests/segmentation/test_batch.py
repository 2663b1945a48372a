"""Batched label maps (patch banks): the same labels as `segment`, without its full-size maps."""

import cv2
import numpy as np
import pytest
import torch

from osteo_engine.io import load_radiograph
from osteo_engine.segmentation.batch import bone_labels, label_maps
from osteo_engine.segmentation.data import Letterbox
from osteo_engine.segmentation.parts import largest_parts
from osteo_engine.segmentation.predict import DEFAULT_MODEL, load_segmenter, segment
from osteo_engine.segmentation.uncertainty import restored_labels
from osteo_engine.ssl.data import BANK_SAMPLES

from ..conftest import SAMPLE_DICOM


def _smooth_probabilities(seed: int, size=(480, 384)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = np.stack([cv2.GaussianBlur(rng.normal(size=size).astype(np.float32), (0, 0), 6) * 30 for _ in range(8)])
    logits[0] += 1.5  # mostly background, as a radiograph is
    probs = np.exp(logits - logits.max(0))
    return probs / probs.sum(0)


@pytest.mark.parametrize("shape", [(1280, 1024), (2400, 2000), (300, 200), (1000, 1500)])
def test_per_bone_restoration_equals_restoring_every_class_in_full(shape):
    probs = _smooth_probabilities(seed=shape[0])
    box = Letterbox.fit(shape, (384, 480))
    expected = largest_parts(restored_labels(probs, box))
    assert (expected > 0).any()
    assert np.array_equal(bone_labels(probs, box), expected)


@pytest.mark.slow
@pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="no bundled segmenter")
def test_patch_banks_label_maps_match_segment_upright_and_turned():
    """A patch bank draws BANK_SAMPLES latents per module; `segment` draws 4: the label maps still agree."""
    segmenter = load_segmenter()
    pixels = load_radiograph(SAMPLE_DICOM).pixels
    turned = np.ascontiguousarray(np.rot90(pixels))
    torch.manual_seed(0)
    images = [pixels, turned, pixels[:, ::-1].copy()]
    batched = list(label_maps(images, segmenter, samples=BANK_SAMPLES, batch_size=2))
    for image, labels in zip([pixels, turned], batched):
        alone = segment(image, segmenter, modules=False).labels
        assert labels.shape == image.shape
        assert (labels == alone).mean() >= 0.995
        assert set(np.unique(labels)) == set(np.unique(alone))
    assert len(batched) == 3


@pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="no bundled segmenter")
def test_bfloat16_label_maps_keep_every_bone_and_nearly_every_pixel_of_float32_ones():
    segmenter = load_segmenter()
    pixels = load_radiograph(SAMPLE_DICOM).pixels
    exact, fast = (next(label_maps([pixels], segmenter, samples=BANK_SAMPLES, bf16=bf16)) for bf16 in (False, True))
    assert set(np.unique(fast)) == set(np.unique(exact)) == set(range(8))
    assert (fast == exact).mean() >= 0.999  # 0.9998 on 16 phantoms, 0.9995 on 16 atlas radiographs
    assert torch.is_autocast_enabled("cpu") is False  # the generator leaves no autocast behind


def test_the_same_image_always_gets_the_same_maps(tiny_segmenter):
    segmenter = load_segmenter(tiny_segmenter)
    pixels = load_radiograph(SAMPLE_DICOM).pixels
    first, again = (segment(pixels, segmenter, samples=2) for _ in range(2))
    assert np.array_equal(first.labels, again.labels) and np.array_equal(first.entropy, again.entropy)
    assert np.array_equal(first.sample_variance, again.sample_variance)
    assert np.array_equal(next(label_maps([pixels], segmenter)), next(label_maps([pixels], segmenter)))


def test_a_reading_whose_bones_come_in_pieces_is_less_plausible_than_the_whole_one():
    from osteo_engine.segmentation.reading import plausibility

    whole = np.zeros((8, 120, 140), np.float32)
    whole[0] = 1.0
    for bone in range(1, 8):  # seven upright bars, each one piece, at a confidence of 0.9
        whole[:, 20:100, 15 * bone : 15 * bone + 8] = 0.1 / 7
        whole[bone, 20:100, 15 * bone : 15 * bone + 8] = 0.9
    broken = whole.copy()
    broken[:, 55:65, 15:23] = 0.0  # the ulna cut in two halves, as confident as before
    broken[0, 55:65, 15:23] = 1.0
    assert plausibility(whole) == pytest.approx(0.9 + 2.0, abs=1e-6)
    assert plausibility(broken) == pytest.approx(plausibility(whole) - 0.5 / 7, abs=0.01)
