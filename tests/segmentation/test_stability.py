"""stability.py: the image score from readings of other framings."""

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from osteo_engine.anatomy import NUM_CLASSES
from osteo_engine.segmentation.metrics import mean_dice
from osteo_engine.segmentation.stability import ANGLES, _mapped_back, instability, view_transforms

SIZE = (96, 128)  # network input (H, W)
CONTENT = (96, 112)  # the image's part of it, as a letterbox leaves it


def _hand() -> np.ndarray:
    """Two 'bones' of different brightness on a dark background, in the content's frame."""
    image = np.full(CONTENT, 0.1, np.float32)
    image[20:70, 30:45] = 0.5  # class 1 by brightness
    image[15:80, 60:75] = 0.9  # class 3
    return image


def _one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(NUM_CLASSES, dtype=np.float32)[labels].transpose(2, 0, 1)


def _by_brightness(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0.7, 3, np.where(x > 0.3, 1, 0)).astype(np.uint8)


class _Network:
    """mean_prediction as the mixture has it; `reads_image` False: a network that draws one fixed map whatever
    the image, so any other framing disagrees with it."""

    def __init__(self, reads_image: bool, fixed: np.ndarray):
        self.reads_image, self.fixed = reads_image, fixed

    def mean_prediction(self, x, samples, generator):
        maps = [_one_hot(_by_brightness(v[0]) if self.reads_image else self.fixed) for v in x.numpy()]
        return torch.from_numpy(np.stack(maps)), torch.full((len(maps), 4), 0.25)


def _segmenter(reads_image: bool):
    fixed = np.zeros(SIZE, np.uint8)
    fixed[: CONTENT[0], : CONTENT[1]] = _by_brightness(_hand())
    return SimpleNamespace(model=_Network(reads_image, fixed), device=torch.device("cpu")), fixed


def _reading(segmenter_fixed) -> tuple[np.ndarray, np.ndarray]:
    network_image = np.zeros(SIZE, np.float32)
    network_image[: CONTENT[0], : CONTENT[1]] = _hand()
    return network_image, _one_hot(segmenter_fixed)


def test_a_view_mapped_back_lands_on_the_first_reading():
    labels = _by_brightness(_hand())
    for transform in view_transforms(CONTENT):
        seen = cv2.warpAffine(_one_hot(labels).transpose(1, 2, 0), transform, CONTENT[::-1], flags=cv2.INTER_NEAREST)
        back, covered = _mapped_back(seen.transpose(2, 0, 1), transform)
        assert 0.6 < covered.mean() < 1  # a turned view lacks the corners
        assert mean_dice(np.where(covered, back, 0), np.where(covered, labels, 0)) > 0.95


def test_the_views_turn_about_the_centre_by_the_angles():
    h, w = CONTENT
    for angle, transform in zip(ANGLES, view_transforms(CONTENT)):
        np.testing.assert_allclose(transform @ [w / 2, h / 2, 1], [w / 2, h / 2], atol=1e-9)
        dx, dy = transform @ [w / 2 + 10, h / 2, 1] - [w / 2, h / 2]
        assert np.degrees(np.arctan2(-dy, dx)) == pytest.approx(angle)  # counter-clockwise, y pointing down


def test_a_network_that_reads_the_image_is_stable_and_one_that_ignores_it_is_not():
    steady, fixed = _segmenter(reads_image=True)
    blind, _ = _segmenter(reads_image=False)
    network_image, mean = _reading(fixed)
    assert instability(network_image, CONTENT, mean, steady) < 0.03
    assert instability(network_image, CONTENT, mean, blind) > 0.15
