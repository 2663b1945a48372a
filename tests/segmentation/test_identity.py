"""Metacarpal identities follow the anatomy: M1 (thumb side) to M5 across the hand."""

import cv2
import numpy as np
import pytest

from osteo_engine.segmentation.identity import order_metacarpals


def _hand(identities, angle=0.0, size=(200, 240), confusion=0.6):
    """Probabilities for five slanted bars left to right; bar k's mass mostly on `identities[k]`, the rest
    spread over the other metacarpals (a confused but not useless network)."""
    h, w = size
    probs = np.zeros((8, h, w), np.float32)
    probs[0] = 1.0
    for k, identity in enumerate(identities):
        bar = np.zeros((h, w), np.uint8)
        cv2.line(bar, (40 + 35 * k, 40), (50 + 35 * k, 150), 1, 12)
        bar = bar.astype(bool)
        probs[:, bar] = 0.0
        probs[3:8, bar] = (1 - confusion) / 4
        probs[3 + identity, bar] = confusion
    if angle:
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        probs = np.stack(
            [
                cv2.warpAffine(p, matrix, (w, h), flags=cv2.INTER_NEAREST, borderValue=float(i == 0))
                for i, p in enumerate(probs)
            ]
        )
    return probs


def _identities_left_to_right(probs):
    labels = probs.argmax(0)
    xs = [np.nonzero(labels == v)[1].mean() if (labels == v).any() else np.nan for v in range(3, 8)]
    return [int(v) for v in np.argsort(xs)]


@pytest.mark.parametrize("angle", [0.0, 25.0, -30.0])
def test_a_swapped_pair_is_put_back_in_anatomical_order(angle):
    probs = _hand([0, 2, 1, 3, 4], angle)  # M2 and M3 swapped by the network
    fixed = order_metacarpals(probs)
    assert _identities_left_to_right(fixed) == [0, 1, 2, 3, 4]


def test_the_thumb_side_decides_the_direction():
    mirrored = _hand([4, 3, 1, 2, 0])  # a right hand: M1 on the right, M2/M3 swapped
    assert _identities_left_to_right(order_metacarpals(mirrored)) == [4, 3, 2, 1, 0]


def test_each_part_ends_with_one_identity_and_the_rest_is_untouched():
    probs = _hand([0, 1, 2, 3, 4], confusion=0.3)
    probs[1, :20, :20], probs[0, :20, :20] = 1.0, 0.0  # an ulna patch
    fixed = order_metacarpals(probs)
    labels = fixed.argmax(0)
    for v in range(3, 8):
        assert (labels == v).sum() > 500
    assert (labels[:20, :20] == 1).all()
    np.testing.assert_allclose(fixed.sum(0), probs.sum(0), atol=1e-5)  # mass is moved, never made


def test_fewer_than_two_parts_are_left_as_they_are():
    probs = _hand([2])
    assert order_metacarpals(probs) is probs


def test_one_blob_of_several_bones_is_left_to_the_network():
    probs = _hand([0, 1, 2, 3, 4], confusion=0.9)
    probs[3:8, 60:80, 40:200] = 0.2  # a bridge across the hand joins the five bars into one part
    probs[0, 60:80, 40:200] = 0.0
    fixed = order_metacarpals(probs)
    assert (fixed.argmax(0) == probs.argmax(0)).all()
