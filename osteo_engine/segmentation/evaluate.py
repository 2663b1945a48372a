"""Scoring a trained segmenter on full-size radiographs: Dice per bone against every rater, bones found,
and, for atlas images, the landmark checks."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..anatomy import BONE_NAMES
from ..annotations import AnnotationProject
from ..cohort import read_manifest
from ..errors import ConfigError
from ..io import load_radiograph
from ..landmarks import CheckTally, check_landmarks, read_landmarks
from .metrics import dice_per_bone
from .predict import LoadedSegmenter, segment
from .uncertainty_eval import UncertaintyEvaluation


@dataclass
class Evaluation:
    images: int = 0
    all_bones_found: int = 0
    dice: dict[str, list[float]] = field(default_factory=lambda: {b: [] for b in BONE_NAMES})
    landmarks: CheckTally = field(default_factory=CheckTally)
    uncertainty: UncertaintyEvaluation = field(default_factory=UncertaintyEvaluation)
    of_a_model: bool = True  # False when raters are compared with each other: "bones found" is a model's figure

    def summary(self) -> dict:
        per_bone = {b: round(float(np.mean(v)), 4) if v else None for b, v in self.dice.items()}
        present = [v for v in per_bone.values() if v is not None]
        out = {
            "images": self.images,
            "dice": per_bone,
            "mean_dice": round(float(np.mean(present)), 4) if present else None,
        }
        if self.of_a_model:
            out["all_bones_found_rate"] = round(self.all_bones_found / max(self.images, 1), 4)
            out["uncertainty"] = self.uncertainty.summary()
        if self.landmarks.positives:
            out["landmark_hit_rate"] = round(self.landmarks.hit_rate, 4)
            out["no_spill_rate"] = round(self.landmarks.no_spill_rate, 4)
        return out


def evaluate_segmenter(
    segmenter: LoadedSegmenter,
    manifest: str | Path,
    split: str = "val",
    landmarks_csv: str | Path | None = None,
    samples: int = 4,
    anatomical_order: bool = False,
    refine=None,
    progress: Callable[[int, int], None] | None = None,
    against_truth: bool = False,
    second_opinion=None,
) -> Evaluation:
    """Dice against every rater's map, or with `against_truth` against a phantom cohort's true label maps
    (`truth/<subject>.png` beside the manifest), which carry none of the raters' disagreement. With
    `second_opinion` (a BonePrompter) the images are also ranked by the scores made with SAM."""
    manifest = Path(manifest)
    cohort = read_manifest(manifest)
    project = AnnotationProject.open(manifest.parent)
    landmarks = read_landmarks(landmarks_csv) if landmarks_csv else {}
    rows = [r for r in cohort.rows if r.split == split]
    result = Evaluation()
    for k, row in enumerate(rows):
        image = load_radiograph(row.image)
        seg = segment(
            image.pixels,
            segmenter,
            samples=samples,
            anatomical_order=anatomical_order,
            refine=refine,
            second_opinion=second_opinion,
            keep_samples=True,
        )
        result.images += 1
        result.all_bones_found += all(f.present for f in seg.bones.values())
        references = _truth(manifest, row.subject_id) if against_truth else _rater_maps(project, row.image)
        dice = [dice_per_bone(seg.labels, reference) for reference in references]
        if references:
            result.uncertainty.add(seg, references, dice)
        for per_bone in dice:
            for bone, value in per_bone.items():
                if not math.isnan(value):
                    result.dice[bone].append(value)
        if row.image.name in landmarks:
            result.landmarks.add(check_landmarks(seg.labels, landmarks[row.image.name]))
        if progress:
            progress(k + 1, len(rows))
    return result


def rater_agreement(manifest: str | Path, split: str = "test", against_truth: bool = False) -> Evaluation:
    """How well the raters of a manifest's split agree: Dice of every pair of raters, or with `against_truth`
    of every rater against a phantom's true label map. It is the ceiling a segmenter scored against the
    raters' maps can be expected to reach."""
    manifest = Path(manifest)
    project = AnnotationProject.open(manifest.parent)
    result = Evaluation(of_a_model=False)
    for row in (r for r in read_manifest(manifest).rows if r.split == split):
        raters = _rater_maps(project, row.image)
        if against_truth and raters:
            truth = _truth(manifest, row.subject_id)[0]  # read once, not once per rater
            pairs = [(a, truth) for a in raters]
        else:
            pairs = [(a, b) for i, a in enumerate(raters) for b in raters[i + 1 :]]
        if not pairs:
            continue
        result.images += 1
        for a, b in pairs:
            for bone, value in dice_per_bone(a, b).items():
                if not math.isnan(value):
                    result.dice[bone].append(value)
    if not result.images:
        raise ConfigError(
            f"no {split} image of {manifest.name} has "
            + ("a rater's map" if against_truth else "two raters' maps")
            + " to compare."
        )
    return result


def _rater_maps(project: AnnotationProject, image: Path) -> list[np.ndarray]:
    image_id = project.find_image_path(image)
    if image_id is None:
        return []
    annotations, _ = project.load(image_id)
    return [rater.labels for rater in annotations.raters]


def _truth(manifest: Path, subject_id: str) -> list[np.ndarray]:
    from ..phantom.cohort import read_truth

    return [read_truth(manifest, subject_id)]
