"""A training run's validation: at the network's input size each epoch, and optionally at the radiographs' size.

`validate` scores the letterboxed network input, where the raters' maps are shrunk with the image: the GED,
Dice per bone, and the diversity and routing figures that show a collapse as it happens. The issue's targets,
`osteo segment evaluate` and the app read the samples restored to full size; with `select_by="ged-full"` a run
also segments every validation radiograph as prediction does (`validate_full_size`, `val_ged_full` in
metrics.jsonl; about 1–3 s an image on 2 cores) and chooses its best checkpoint by that figure.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..anatomy import BONE_NAMES
from ..annotations import AnnotationProject
from ..cards import SegmenterCard
from ..io import load_radiograph
from ..training import autocast
from .data import SegmentationSample, split_entries
from .metrics import dice_per_bone, ged_terms
from .model import MixtureSegmenter
from .predict import LoadedSegmenter, offset_background, segment
from .uncertainty import effective_modules

if TYPE_CHECKING:
    from .train import SegmentTrainConfig


@torch.inference_mode()
def validate(
    model: MixtureSegmenter,
    samples: list[SegmentationSample],
    config: SegmentTrainConfig,
    device: torch.device,
    background_offset: float = 0.0,
) -> dict:
    """Validation GED against every rater's map, and Dice per bone of the mean prediction; to see a collapse
    as it happens, the samples' and the raters' diversity (the GED's within terms, on images with two or more
    raters) and the effective number of modules exp(H(π)). `background_offset` is added to every sample's
    background logit, as `load_segmenter` adds the card's `background_logit_offset`, so that the checkpoint
    chosen is the best at what prediction will draw."""
    model.eval()
    dice = {b: [] for b in BONE_NAMES}
    geds, diversity, rater_diversity, effective = [], [], [], []
    for s in samples:
        x = torch.from_numpy(s.image)[None, None].to(device)
        with autocast(device):
            out = model(x, samples=config.val_samples)
        out.logits[:, :, :, 0] += background_offset
        prediction = out.mean_probabilities()[0].argmax(0).cpu().numpy()
        for rater_map in s.annotations:
            for bone, value in dice_per_bone(prediction, rater_map).items():
                if not math.isnan(value):
                    dice[bone].append(value)
        hard = out.flat_logits()[0].argmax(1).cpu().numpy()
        cross, within, raters = ged_terms(hard, s.annotations, out.sample_weights[0].float().cpu().numpy(), s.weights)
        geds.append(2 * cross - within - raters)
        if (s.weights > 0).sum() > 1:
            diversity.append(within)
            rater_diversity.append(raters)
        effective.append(effective_modules(out.routing[0].float().cpu().numpy()))
    per_bone = {b: float(np.mean(v)) if v else float("nan") for b, v in dice.items()}
    present = [v for v in per_bone.values() if not math.isnan(v)]
    return {
        "val_ged": _mean(geds),
        "val_dice": per_bone,
        "val_mean_dice": _mean(present),
        "val_sample_diversity": _mean(diversity),
        "val_rater_diversity": _mean(rater_diversity),
        "val_effective_modules": _mean(effective),
    }


def validation_images(data: list[str | Path], seed: int) -> list[tuple[AnnotationProject, str]]:
    """(project, image id) of every validation image of all sources, split as training splits them
    (`data.split_entries`)."""
    out = []
    for source in data:
        project, entries = split_entries(source, seed)
        out.extend((project, image_id) for image_id, split in entries if split == "val")
    return out


def validate_full_size(
    model: MixtureSegmenter,
    images: list[tuple[AnnotationProject, str]],
    card: SegmenterCard,
    samples: int,
    device: torch.device,
) -> dict:
    """{"val_ged_full": mean GED of the weighted samples against the weighted raters' maps at full size} over
    the `images` with a rater's map (NaN when none has one). `model` is left as it was: a copy with the card's
    `background_logit_offset` applied (as `load_segmenter` applies it) reads each radiograph at the card's
    `input_size`, as stored (no orientation search: training images are upright, and a model early in training
    is not yet sure of it), with `samples` latents a module, and its samples are restored to the radiograph's
    size as `segment` restores them."""
    reader = copy.deepcopy(model).eval()
    offset_background(reader, card.background_logit_offset)
    loaded = LoadedSegmenter(reader, tuple(card.input_size), card, device)
    geds = []
    for project, image_id in images:
        annotations, _ = project.load(image_id)
        if not annotations.raters:
            continue
        pixels = load_radiograph(project.image_path(image_id)).pixels
        seg = segment(pixels, loaded, samples=samples, find_upright=False, keep_samples=True, score_instability=False)
        maps = [s.labels for s in seg.samples]
        cross, within, raters = ged_terms(
            maps, [r.labels for r in annotations.raters], [s.weight for s in seg.samples], annotations.weights
        )
        geds.append(2 * cross - within - raters)
    return {"val_ged_full": float(np.mean(geds)) if geds else float("nan")}


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")
