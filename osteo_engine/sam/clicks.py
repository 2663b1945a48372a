"""Answering clicks without a box.

LiteMedSAM was trained on boxes, and single points on a whole hand radiograph give almost nothing
(`bench/sam_point_prompts.py` on 30 atlas metacarpals: mean Dice 0.01 for the click alone, 0.04 for the
best of three masks, 0.26 for the click plus a square box, 0.44 for the click plus a square box on a crop
around it). So point-only prompts become points plus a box on a crop.
"""
from __future__ import annotations

import numpy as np

from .crops import Crop
from .predictor import BonePrompter

CLICK_BOX_FRACTION = 0.25  # side of the box put around clicks, as a fraction of the image's shorter side


def segment_clicks(prompter: BonePrompter, pixels: np.ndarray, points: np.ndarray, labels: np.ndarray,
                   box: np.ndarray | None = None, mask_input: np.ndarray | None = None) -> np.ndarray:
    """Full-size boolean mask for clicks (x, y) with labels 1/0, and an optional box."""
    points = np.asarray(points, float).reshape(-1, 2)
    labels = np.asarray(labels).reshape(-1)
    if box is None:
        positives = points[labels == 1]
        if not len(positives):
            raise ValueError("a prompt needs at least one positive click or a box")
        side = CLICK_BOX_FRACTION * min(pixels.shape)
        centre = positives.mean(0)
        lo = np.minimum(centre - side / 2, positives.min(0))
        hi = np.maximum(centre + side / 2, positives.max(0))
        box = np.r_[lo, hi]
    crop = Crop.around(np.asarray(box, float), pixels.shape, factor=1.6)
    prompter.set_image(crop.pixels(pixels), key=None)
    result = prompter.predict(points=crop.shift(points) if len(points) else None,
                              labels=labels if len(points) else None, box=crop.shift(box).reshape(-1),
                              mask_input=mask_input)
    full = np.zeros(pixels.shape, bool)
    full[crop.y0:crop.y1, crop.x0:crop.x1] = result.mask
    return full
