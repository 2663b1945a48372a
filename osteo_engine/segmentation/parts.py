"""A label map's bones as connected parts: which count as found, and each bone's largest part."""

from __future__ import annotations

import cv2
import numpy as np

from ..anatomy import BONES

MIN_AREA_FRACTION = 0.0005  # a bone smaller than 0.05% of the image counts as absent


def components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A mask's 8-connected parts: the label image (0 outside) and each part's pixel count, in label order 1..n."""
    _, parts, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return parts, stats[1:, cv2.CC_STAT_AREA]


def largest_component(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool: the mask's largest 8-connected part (none when the mask is empty)."""
    parts, areas = components(mask)
    if not areas.size:
        return np.zeros_like(mask, bool)
    return parts == 1 + int(np.argmax(areas))


def largest_parts(raw: np.ndarray) -> np.ndarray:
    """Each bone of a label map reduced to its largest connected part."""
    labels = np.zeros_like(raw)
    for value in BONES:
        labels[largest_component(raw == value)] = value
    return labels
