"""SAM's second opinion on a segmentation, and the image scores made from it.

Each bone the network found is redrawn by SAM from a prompt made of its mask (autoannotate's refinement: a box
along the bone, clipped to a band about its axis). `sam_disagreement` is 1 − mean Dice of the network's label map
against that redraw: how far the map lies from what the annotation tool draws in the same boxes.

Why a second model: the instability (stability.py) finds the errors that change with the framing, the samples
those the modules disagree on; neither sees a bone that every reading draws the same wrong way. On the atlas
the two scores rank the images by their error about as well as each other (Spearman 0.44 and 0.43 on the 91
training images) and hardly agree (0.35), so their geometric mean, `combined_score`, ranks better than either
(0.50, and 0.58 on the 21 val images; docs/segmenter-modules.md). Its cost is SAM's seven crops, about 6 s an
image on two cores, so it is scored where it is asked for. The atlas references, like every mask made in this
product, are drawn with SAM prompts, so this score shares SAM's habits with them: it estimates the distance to
an annotation made with SAM, not to the anatomy. On the phantoms, whose references are not drawn with SAM, it
ranks the images at 0.05 against their true maps and −0.44 against their raters.
"""

from __future__ import annotations

import math

import numpy as np

from ..anatomy import BONES
from ..autoannotate import mask_prompt, segment_from_prompts
from ..sam import BonePrompter
from .metrics import mean_dice
from .parts import MIN_AREA_FRACTION


def refine_with_sam(pixels: np.ndarray, labels: np.ndarray, prompter: BonePrompter) -> np.ndarray:
    """Each bone of a label map (H, W) redrawn by SAM from a prompt made of its mask; bones smaller than
    MIN_AREA_FRACTION of the image are left out (background in the result). pixels (H, W) in [0, 1]."""
    minimum = MIN_AREA_FRACTION * labels.size
    prompts = {
        name: mask_prompt(labels == value, name) for value, name in BONES.items() if (labels == value).sum() >= minimum
    }
    return segment_from_prompts(prompter, pixels, prompts)


def sam_disagreement(labels: np.ndarray, redrawn: np.ndarray) -> float:
    """1 − mean Dice (0–1) over the bones of either map, between the network's label map and SAM's redraw of
    it (`refine_with_sam`); 0 when neither has a bone."""
    return 1.0 - mean_dice(labels, redrawn)


def combined_score(instability: float | None, disagreement: float | None) -> float | None:
    """The geometric mean of the instability and the SAM disagreement (both 1 − Dice, 0–1), None when either is
    missing. A geometric mean needs no scale fitted to a cohort, and is high only when both checks see an error."""
    if instability is None or disagreement is None:
        return None
    return math.sqrt(max(instability, 0.0) * max(disagreement, 0.0))
