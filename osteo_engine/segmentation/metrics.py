"""Segmentation metrics: the GED distance d, generalised energy distance, Dice per bone.

d(a, b) = 1 − mean IoU over the foreground classes present in a or b (classes absent from both are
skipped; d = 0 when neither has any foreground). GED = 2·E[d(s, y)] − E[d(s, s')] − E[d(y, y')].
"""

from __future__ import annotations

import numpy as np

from ..anatomy import BONES, NUM_CLASSES


def iou_distance(a: np.ndarray, b: np.ndarray, num_classes: int = NUM_CLASSES) -> float:
    """d(a, b) of two label maps of the same shape (see above), from one confusion matrix."""
    ious = class_ious(a, b, num_classes)
    present = ious[~np.isnan(ious)]
    return 0.0 if not len(present) else float(1.0 - present.mean())


def class_ious(a: np.ndarray, b: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """IoU of each foreground class (num_classes − 1,) between two label maps; NaN where neither has it."""
    joint = np.bincount(
        np.asarray(a, np.int64).ravel() * num_classes + np.asarray(b).ravel(), minlength=num_classes**2
    ).reshape(num_classes, num_classes)
    inter = np.diag(joint)[1:].astype(np.float64)
    union = joint.sum(0)[1:] + joint.sum(1)[1:] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def _pairwise(xs, ys, num_classes) -> np.ndarray:
    return np.array([[iou_distance(x, y, num_classes) for y in ys] for x in xs])


def _weights(w, n) -> np.ndarray:
    w = np.full(n, 1.0 / n) if w is None else np.asarray(w, float)
    return w / w.sum()


def generalized_energy_distance(
    samples, annotations, sample_weights=None, annotation_weights=None, num_classes: int = NUM_CLASSES
) -> float:
    """GED between weighted label-map samples (N, H, W) and weighted annotations (M, H, W)."""
    cross, within_samples, within_annotations = ged_terms(
        samples, annotations, sample_weights, annotation_weights, num_classes
    )
    return 2 * cross - within_samples - within_annotations


def ged_terms(
    samples, annotations, sample_weights=None, annotation_weights=None, num_classes: int = NUM_CLASSES
) -> tuple[float, float, float]:
    """(E[d(s, y)], E[d(s, s')], E[d(y, y')]): the GED's cross term, the samples' diversity and the raters'
    diversity, for weighted label-map samples (N, H, W) and weighted annotations (M, H, W)."""
    samples, annotations = np.asarray(samples), np.asarray(annotations)
    p, q = _weights(sample_weights, len(samples)), _weights(annotation_weights, len(annotations))
    cross = p @ _pairwise(samples, annotations, num_classes) @ q
    within_samples = p @ _pairwise(samples, samples, num_classes) @ p
    within_annotations = q @ _pairwise(annotations, annotations, num_classes) @ q
    return float(cross), float(within_samples), float(within_annotations)


def dice_per_bone(prediction: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Dice of each bone; NaN where the bone is absent from both. One pass over the pixels (a joint histogram of
    the two label maps) rather than two masks per bone: 28 ms against 72 ms on a 2000×2400 map (2 cores)."""
    classes = max(NUM_CLASSES, int(prediction.max(initial=0)) + 1, int(target.max(initial=0)) + 1)
    wide = np.uint8 if classes * classes <= 256 else np.intp  # uint8 arithmetic is the fast path
    joint = prediction.astype(wide, copy=False) * wide(classes) + target.astype(wide, copy=False)
    counts = np.bincount(joint.ravel(), minlength=classes * classes).reshape(classes, classes)
    predicted, true = counts.sum(1), counts.sum(0)
    out = {}
    for value, name in BONES.items():
        total = predicted[value] + true[value]
        out[name] = float("nan") if total == 0 else float(2 * counts[value, value] / total)
    return out


def mean_dice(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Dice over the bones in either map; 1 when neither has any."""
    return mean_of(dice_per_bone(a, b))


def mean_of(dice: dict[str, float]) -> float:
    """The mean of `dice_per_bone`'s values over the bones in either map; 1 when neither has any."""
    values = [v for v in dice.values() if np.isfinite(v)]
    return float(np.mean(values)) if values else 1.0


BOX_MARGIN = 0.1  # of the bones' bounding box, added on every side


def bones_box(labels: np.ndarray, reference: np.ndarray | None = None) -> tuple[slice, slice] | None:
    """The bounding box of every bone in `labels` (H, W) or `reference` (H, W), grown by BOX_MARGIN of its size
    on each side and clipped to the image; None when there is no bone."""
    bone = labels > 0 if reference is None else (labels > 0) | (reference > 0)
    ys, xs = np.nonzero(bone)
    if not len(ys):
        return None
    h, w = labels.shape
    dy, dx = int(BOX_MARGIN * (ys.max() - ys.min() + 1)), int(BOX_MARGIN * (xs.max() - xs.min() + 1))
    return slice(max(0, ys.min() - dy), min(h, ys.max() + dy + 1)), slice(
        max(0, xs.min() - dx), min(w, xs.max() + dx + 1)
    )
