"""Is the segmenter's uncertainty worth showing? Measured against the raters, image by image.

- GED of the K·S weighted samples against the raters, beside the GED of the weighted mean's label map used
  as one deterministic sample: samples that model the raters' disagreement score lower.
- HM-IoU: samples and raters matched by optimal transport on IoU, each sample weighted by α (with equal
  weights, the Hungarian matching MoSE and PHiSeg report).
- Diversity: the samples' mean pairwise d (the GED's sample–sample term) beside the raters' own, on images
  with two or more raters.
- Modules: the effective number exp(H(π)) and how many bones each module's own map finds.
- Errors flagged: the pixel AUROC of each uncertainty map for the pixels whose label differs from the first
  rater's, inside the bones' bounding box (with a margin), and the Spearman correlation between an image's
  mean uncertainty over its bones and its 1 − mean Dice; beside them, the image score `expected_error`: the
  model's own estimate of that 1 − Dice, its label map scored against its samples, and `instability`, its
  label map scored against readings of the image turned ±12° (stability.py), and with SAM's second opinion
  `sam_disagreement` and `combined` (second_opinion.py). The learned error map
  (error_map.py) is scored the same way as the two uncertainty maps when the model has one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .image_scores import IMAGE_SCORES, RANKING_SCORE
from .metrics import bones_box, dice_per_bone, ged_terms, iou_distance, mean_of
from .predict import Segmentation

# the uncertainty maps whose error-flagging is measured; "error", the learned error map, when the model has one
KINDS = ("total", "mutual_information", "error")
RANKED_SCORES = (*KINDS, *IMAGE_SCORES)  # the scores whose ranking of images by their error is measured
# the score that orders images in the Annotate workspace (second_opinion.py)
APP_SCORE = RANKING_SCORE
PIXELS_PER_IMAGE = 200_000  # pixels drawn per image for the AUROC, so that memory stays bounded


@dataclass
class UncertaintyEvaluation:
    ged_samples: list[float] = field(default_factory=list)
    ged_mean_map: list[float] = field(default_factory=list)
    hm_iou: list[float] = field(default_factory=list)
    sample_diversity: list[float] = field(default_factory=list)
    rater_diversity: list[float] = field(default_factory=list)
    effective_modules: list[float] = field(default_factory=list)
    module_bones: list[list[int]] = field(default_factory=list)  # per image, bones found by each module's map
    image_scores: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in RANKED_SCORES})
    image_errors: list[float] = field(default_factory=list)  # 1 − mean Dice against the raters
    pixel_scores: dict[str, list[np.ndarray]] = field(default_factory=lambda: {k: [] for k in KINDS})
    pixel_errors: list[np.ndarray] = field(default_factory=list)
    seed: int = 0

    def add(self, seg: Segmentation, references: list[np.ndarray], dice: list[dict[str, float]] | None = None) -> None:
        """One image: its segmentation (made with keep_samples=True) and its raters' label maps; `dice`, when the
        caller has it, is `dice_per_bone(seg.labels, reference)` of each reference (not computed twice)."""
        if not seg.samples or not references:
            raise ValueError("an uncertainty evaluation needs every sample's map and at least one rater's map")
        samples = [s.labels for s in seg.samples]
        weights = np.array([s.weight for s in seg.samples])
        cross, within, raters = ged_terms(samples, references, weights)
        self.ged_samples.append(2 * cross - within - raters)
        cross_mean, _, _ = ged_terms([seg.labels], references)
        self.ged_mean_map.append(2 * cross_mean - raters)
        self.hm_iou.append(hungarian_matched_iou(samples, references, weights))
        if len(references) > 1:
            self.sample_diversity.append(within)
            self.rater_diversity.append(raters)
        self.effective_modules.append(seg.effective_modules)
        self.module_bones.append([m.bones_found for m in seg.modules])
        per_reference = dice or [dice_per_bone(seg.labels, r) for r in references]
        self.image_errors.append(1.0 - float(np.mean([mean_of(d) for d in per_reference])))
        for kind in KINDS:
            if kind in seg.uncertainty_maps():
                self.image_scores[kind].append(seg.mean_uncertainty(kind))
        self.image_scores["expected_error"].append(seg.expected_error())
        for kind, value in seg.image_scores().items():
            if value is not None:
                self.image_scores[kind].append(value)
        self._add_pixels(seg, references[0])

    def _add_pixels(self, seg: Segmentation, reference: np.ndarray) -> None:
        box = bones_box(seg.labels, reference)
        if box is None:
            return
        wrong = (seg.labels[box] != reference[box]).ravel()
        rng = np.random.default_rng([self.seed, len(self.pixel_errors)])
        chosen = rng.choice(wrong.size, min(wrong.size, PIXELS_PER_IMAGE), replace=False)
        self.pixel_errors.append(wrong[chosen])
        maps = seg.uncertainty_maps()
        for kind in KINDS:
            if kind in maps:
                self.pixel_scores[kind].append(maps[kind][box].ravel()[chosen].astype(np.float32))

    def summary(self) -> dict:
        from scipy.stats import spearmanr
        from sklearn.metrics import roc_auc_score

        errors = np.concatenate(self.pixel_errors) if self.pixel_errors else np.zeros(0, bool)
        flags = {}
        for kind in RANKED_SCORES:
            if not self.image_scores[kind]:
                continue  # a map this model does not make
            pixel_auc = None  # the image scores have no map
            if kind in KINDS and 0 < errors.sum() < len(errors):
                pixel_auc = float(roc_auc_score(errors, np.concatenate(self.pixel_scores[kind])))
            scores = self.image_scores[kind]
            rho = spearmanr(scores, self.image_errors).statistic if len(scores) > 2 else None
            flags[kind] = {"pixel_auroc": _round(pixel_auc), "image_spearman": _round(rho)}
        ged, ged_mean = _mean(self.ged_samples), _mean(self.ged_mean_map)
        bones = np.array(self.module_bones) if self.module_bones else np.zeros((0, 0))
        return {
            "ged_samples": _round(ged),
            "ged_mean_map": _round(ged_mean),
            "ged_reduction": _round(1 - ged / ged_mean if ged is not None and ged_mean else None),
            "hm_iou": _round(_mean(self.hm_iou)),
            "sample_diversity": _round(_mean(self.sample_diversity)),
            "rater_diversity": _round(_mean(self.rater_diversity)),
            "effective_modules": _round(_mean(self.effective_modules)),
            "module_six_bones_rate": [_round(float(v)) for v in (bones >= 6).mean(0)] if bones.size else [],
            "flags_errors": flags,
            "app_score": APP_SCORE,
        }


def hungarian_matched_iou(
    samples: list[np.ndarray], references: list[np.ndarray], sample_weights: np.ndarray | None = None
) -> float:
    """Mean IoU (over foreground classes present in either map) of samples matched to raters by optimal
    transport on 1 − IoU. With equal weights and as many samples as raters (repeated) this is the Hungarian
    matching MoSE and PHiSeg report; with a mixture's weights α, a sample counts as much as its weight, so
    the samples of a module that carries no weight do not pull the figure down."""
    import ot as pot

    iou = 1.0 - np.array([[iou_distance(s, r) for r in references] for s in samples])
    alpha = np.full(len(samples), 1 / len(samples)) if sample_weights is None else np.asarray(sample_weights, float)
    beta = np.full(len(references), 1 / len(references))
    plan = pot.emd(alpha / alpha.sum(), beta, 1.0 - iou)
    return float((plan * iou).sum())


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _round(value) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 4)
