"""How far a segmentation holds when the hand is turned a little: an image score.

The network reads the image again turned by +ANGLE and −ANGLE degrees about its centre, both in one batch at
its own input size (in bfloat16 where the processor computes it natively); each reading is turned back and
compared with the label map of the first reading. `instability` is the mean 1 − Dice over the bones of the
two comparisons. A hand that the network reads one way upright and another way turned by a few degrees is one
it has not learned; the samples' spread cannot see that, because every sample reads the same framing.

On the atlas radiographs (annotate-auto masks as reference, `osteo segment evaluate`) it ranked images by
their 1 − Dice at Spearman 0.43 (91 train) and 0.37 (21 val), where `expected_error` reached 0.27 and 0.31; on
phantom test images against their raters 0.61, where `expected_error` reached 0.77 (docs/segmenter-modules.md,
which also gives the other framings tried).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from .metrics import mean_dice
from .reading import mean_prediction, native_bf16

ANGLES = (12.0, -12.0)  # degrees, counter-clockwise; chosen among 8 framings on the atlas's 91 training images
SAMPLES = 1  # one latent per module: as good as four for the ranking (atlas, 0.43 both), in 3/4 of the time


def view_transforms(shape: tuple[int, int]) -> list[np.ndarray]:
    """The 2×3 affine maps (output <- input pixel coordinates, OpenCV's convention) that turn an image of
    `shape` (h, w) by each of ANGLES about its centre."""
    h, w = shape
    return [cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0) for angle in ANGLES]


def _mapped_back(probs: np.ndarray, transform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the arg-max labels of a view's probabilities (C, h, w) in the first reading's frame, the pixels the
    view covers there)."""
    h, w = probs.shape[-2:]
    inverse = dict(flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=-1.0)
    back = np.stack([cv2.warpAffine(p, transform, (w, h), **inverse) for p in probs])
    return back.argmax(0).astype(np.uint8), back[0] >= 0


@torch.inference_mode()
def instability(network_image: np.ndarray, content: tuple[int, int], mean: np.ndarray, segmenter) -> float:
    """Mean 1 − Dice (0–1) between the label map of a reading and the label maps read from the turned views.

    `network_image` (H_in, W_in) float32 is the letterboxed image the network read, with the image in its
    top-left `content` (h, w); `mean` (C, H_in, W_in) that reading's mean class probabilities; `segmenter` a
    LoadedSegmenter. The views' corners are filled with the image's own edge pixels; pixels a view does not
    cover are left out of its comparison."""
    h, w = content
    image, labels = network_image[:h, :w], mean[:, :h, :w].argmax(0).astype(np.uint8)
    transforms = view_transforms((h, w))
    batch = np.zeros((len(transforms), 1, *network_image.shape), np.float32)
    for i, transform in enumerate(transforms):
        batch[i, 0, :h, :w] = cv2.warpAffine(
            image, transform, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    means = mean_prediction(torch.from_numpy(batch), segmenter, SAMPLES, native_bf16(segmenter.device))
    errors = []
    for probs, transform in zip(means[:, :, :h, :w], transforms):
        read, covered = _mapped_back(probs, transform)
        errors.append(1.0 - mean_dice(np.where(covered, read, 0), np.where(covered, labels, 0)))
    return float(np.mean(errors))
