"""Joint augmentation of a radiograph and its raters' label maps for segmentation training.

Horizontal flips turn left hands into right ones (bone identities stay: M1 is always the thumb),
rotations and scaling cover positioning, intensity changes cover exposure, and inversion covers files whose
contrast is stored the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class SegmentAugmentConfig:
    flip: float = 0.5
    rotation_deg: float = 25.0
    scale: tuple[float, float] = (0.85, 1.15)
    shift: float = 0.06
    gamma: tuple[float, float] = (0.7, 1.4)
    contrast: tuple[float, float] = (0.7, 1.3)
    invert: float = 0.15
    noise: float = 0.02


def augment(
    image: np.ndarray,
    annotations: np.ndarray,
    content: tuple[int, int],
    rng: np.random.Generator,
    config: SegmentAugmentConfig = SegmentAugmentConfig(),
) -> tuple[np.ndarray, np.ndarray]:
    """image (H, W) float32, annotations (M, H, W) uint8 -> augmented copies."""
    h, w = image.shape
    image = image.copy()
    inside = np.zeros((h, w), bool)
    inside[: content[0], : content[1]] = True
    if rng.random() < config.invert:
        image[inside] = 1.0 - image[inside]
    image[inside] = np.clip(image[inside], 0, 1) ** rng.uniform(*config.gamma)
    image[inside] = np.clip((image[inside] - 0.5) * rng.uniform(*config.contrast) + 0.5 + rng.normal(0, 0.05), 0, 1)
    centre = (content[1] / 2, content[0] / 2)
    matrix = cv2.getRotationMatrix2D(
        centre, rng.uniform(-config.rotation_deg, config.rotation_deg), rng.uniform(*config.scale)
    )
    matrix[:, 2] += rng.uniform(-config.shift, config.shift, 2) * (w, h)
    if rng.random() < config.flip:  # mirror about the content's centre
        matrix = np.array([[-1, 0, content[1] - 1], [0, 1, 0]], float) @ np.vstack([matrix, [0, 0, 1]])
    image = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=0.0)
    maps = np.stack([cv2.warpAffine(a, matrix, (w, h), flags=cv2.INTER_NEAREST, borderValue=0) for a in annotations])
    if config.noise:
        image = np.clip(image + rng.normal(0, rng.uniform(0, config.noise), image.shape).astype(np.float32), 0, 1)
    return image.astype(np.float32), maps
