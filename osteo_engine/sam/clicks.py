"""Answering an expert's prompts (clicks, a box, or both) on a crop around them.

LiteMedSAM was trained on boxes, and single points on a whole hand radiograph give almost nothing
(`bench/sam_point_prompts.py` on 30 atlas metacarpals: mean Dice 0.01 for the click alone, 0.04 for the
best of three masks, 0.26 for the click plus a square box, 0.44 for the click plus a square box on a crop
around it). So point-only prompts become points plus a box on a crop.

The crop is kept while later prompts fall inside it, so that refining a bone reuses the crop's cached
embedding and only the mask decoder runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .crops import Crop
from .predictor import BonePrompter

CLICK_BOX_FRACTION = 0.25  # side of the box put around clicks, as a fraction of the image's shorter side
CROP_FACTOR = 1.6
WHOLE_IMAGE_FRACTION = 0.8  # a crop this close to the whole image uses the whole image (prepared on opening)


@dataclass
class PromptAnswer:
    mask: np.ndarray  # (H, W) bool at the image's size
    score: float
    logits: np.ndarray  # (1, 256, 256) low-resolution logits in the crop's frame, for refinement
    crop: Crop


def prompt_box(points: np.ndarray, labels: np.ndarray, box: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """The box to give SAM: the user's, or a square around the positive clicks."""
    if box is not None:
        return np.asarray(box, float).reshape(4)
    positives = points[labels == 1]
    if not len(positives):
        raise ValueError("a prompt needs at least one positive click or a box")
    side = CLICK_BOX_FRACTION * min(shape)
    centre = positives.mean(0)
    return np.r_[np.minimum(centre - side / 2, positives.min(0)), np.maximum(centre + side / 2, positives.max(0))]


def crop_for(box: np.ndarray, shape: tuple[int, int]) -> Crop:
    crop = Crop.around(box, shape, factor=CROP_FACTOR)
    if crop.x1 - crop.x0 >= WHOLE_IMAGE_FRACTION * min(shape):
        return Crop(0, 0, shape[1], shape[0])
    return crop


def crop_key(image_key: str, crop: Crop) -> str:
    """The embedding cache's name for a crop of an image."""
    return f"{image_key}@{crop.x0},{crop.y0},{crop.x1},{crop.y1}"


def _inside(crop: Crop, points: np.ndarray, box: np.ndarray) -> bool:
    xy = np.vstack([points.reshape(-1, 2), box.reshape(2, 2)])
    return bool(((xy[:, 0] >= crop.x0) & (xy[:, 0] < crop.x1) & (xy[:, 1] >= crop.y0) & (xy[:, 1] < crop.y1)).all())


def segment_clicks(
    prompter: BonePrompter,
    pixels: np.ndarray,
    points: np.ndarray,
    labels: np.ndarray,
    box: np.ndarray | None = None,
    mask_input: np.ndarray | None = None,
    crop: Crop | None = None,
    image_key: str | None = None,
) -> PromptAnswer:
    """Mask for clicks (x, y) with labels 1/0 and an optional box (x0, y0, x1, y1), in image pixels.

    `crop` is the previous answer's crop (kept when the prompts still fit in it; `mask_input` is only used
    then); `image_key` names the image in the embedding cache (hashing the crop's pixels otherwise).
    """
    points = np.asarray(points, float).reshape(-1, 2)
    labels = np.asarray(labels).reshape(-1)
    box = prompt_box(points, labels, box, pixels.shape)
    if crop is None or not _inside(crop, points, box):
        crop, mask_input = crop_for(box, pixels.shape), None
    key = None if image_key is None else crop_key(image_key, crop)
    if key is None or not prompter.select(key):
        prompter.set_image(crop.pixels(pixels), key=key)
    result = prompter.predict(
        points=crop.shift(points) if len(points) else None,
        labels=labels if len(points) else None,
        box=crop.shift(box).reshape(-1),
        mask_input=mask_input,
    )
    full = np.zeros(pixels.shape, bool)
    full[crop.y0 : crop.y1, crop.x0 : crop.x1] = result.mask
    return PromptAnswer(full, result.score, result.low_res_logits, crop)
