"""Screening metrics for the positive class (osteoporosis), with bootstrap intervals over subjects and a
calibration curve (paper §4). scikit-learn computes the metrics of one sample; the bootstrap and the threshold
search compute theirs for all rounds or thresholds at once, tested against scikit-learn's."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata
from sklearn.calibration import calibration_curve
from sklearn.metrics import accuracy_score, precision_recall_fscore_support, roc_auc_score

METRICS = ("precision", "recall", "f1", "auc", "accuracy")


def screening_metrics(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall and F1 of the positive class, AUC and accuracy; AUC is NaN with one class only."""
    labels = np.asarray(labels).astype(int)
    predicted = (np.asarray(probabilities) >= threshold).astype(int)
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predicted, pos_label=1, average="binary", zero_division=0
    )
    auc = roc_auc_score(labels, probabilities) if len(np.unique(labels)) == 2 else float("nan")
    return {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "auc": float(auc),
        "accuracy": float(accuracy_score(labels, predicted)),
    }


def macro_f1(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> float:
    """scikit-learn's macro-F1 (zero_division=0) of the predictions `probabilities >= threshold`."""
    return float(macro_f1_at(labels, probabilities, np.array([threshold]))[0])


def macro_f1_at(labels: np.ndarray, probabilities: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(T,) the macro-F1 at each of `thresholds` at once, as scikit-learn's `f1_score(average="macro",
    zero_division=0)` defines it: the mean F1 over the classes present in the labels or the predictions. Counting
    by sorting makes a threshold search over n subjects O(n log n) instead of n calls of f1_score."""
    labels = np.asarray(labels).astype(int)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    order = np.sort(probabilities)
    positive_scores = np.sort(probabilities[labels == 1])
    thresholds = np.asarray(thresholds, dtype=np.float64)
    predicted_positive = len(order) - np.searchsorted(order, thresholds, side="left")
    true_positive = len(positive_scores) - np.searchsorted(positive_scores, thresholds, side="left")
    positives, negatives = len(positive_scores), len(labels) - len(positive_scores)
    true_negative = negatives - (predicted_positive - true_positive)
    f1 = np.zeros((2, len(thresholds)))
    present = np.zeros((2, len(thresholds)), bool)
    for row, (hits, actual, predicted) in enumerate(
        ((true_positive, positives, predicted_positive), (true_negative, negatives, len(labels) - predicted_positive))
    ):
        denominator = actual + predicted
        present[row] = denominator > 0
        f1[row] = np.divide(2 * hits, denominator, out=np.zeros(len(thresholds)), where=denominator > 0)
    return (f1 * present).sum(0) / np.maximum(present.sum(0), 1)


def best_threshold(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """The threshold with the highest macro-F1 (ties: the one nearest 0.5, then the higher)."""
    candidates = np.unique(np.r_[np.asarray(probabilities, dtype=np.float64), 0.5])
    scores = np.round(macro_f1_at(labels, probabilities, candidates), 12)  # equal fractions summed in another order
    return float(max(zip(scores, -np.abs(candidates - 0.5), candidates))[2])


def bootstrap_intervals(
    labels: np.ndarray, probabilities: np.ndarray, threshold: float, rounds: int = 1000, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of each metric, resampling subjects with replacement; a round whose sample holds
    one class only has no AUC and leaves it out. Every round's metrics are computed at once, as
    `screening_metrics` computes them for one sample (tested against it)."""
    rng = np.random.default_rng(seed)
    labels, probabilities = np.asarray(labels).astype(int), np.asarray(probabilities, dtype=float)
    picks = rng.integers(0, len(labels), (rounds, len(labels)))
    draws = _metrics_per_row(labels[picks].astype(bool), probabilities[picks], threshold)
    return {m: _percentile_interval(v) for m, v in draws.items()}


def _percentile_interval(values: np.ndarray) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of the values that are not NaN; NaN twice when none is."""
    kept = values[~np.isnan(values)]
    return (float(np.percentile(kept, 2.5)), float(np.percentile(kept, 97.5))) if len(kept) else (float("nan"),) * 2


def _metrics_per_row(positive: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """`screening_metrics` of each row of (rounds, n) labels (bool) and probabilities; AUC NaN with one class."""
    predicted = probabilities >= threshold
    tp, fp = (predicted & positive).sum(1), (predicted & ~positive).sum(1)
    fn, tn = (~predicted & positive).sum(1), (~predicted & ~positive).sum(1)
    n_pos, n_neg = tp + fn, fp + tn
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(n_pos > 0, tp / n_pos, 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        ranks = rankdata(probabilities, axis=1)  # ties share their mean rank, as in the Mann–Whitney AUC
        auc = ((ranks * positive).sum(1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    auc = np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)
    return {"precision": precision, "recall": recall, "f1": f1, "auc": auc, "accuracy": (tp + tn) / positive.shape[1]}


@dataclass
class Calibration:
    predicted: list[float]  # mean predicted probability per bin
    observed: list[float]  # fraction positive per bin
    counts: list[int]
    ece: float  # expected calibration error: Σ (n_b / n) |observed_b − predicted_b|


def calibration(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> Calibration:
    labels, probabilities = np.asarray(labels), np.asarray(probabilities)
    observed, predicted = calibration_curve(labels, probabilities, n_bins=bins, strategy="uniform")
    which = np.clip((probabilities * bins).astype(int), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    counts = counts[counts > 0]
    ece = float(np.sum(counts / counts.sum() * np.abs(observed - predicted)))
    return Calibration(predicted.tolist(), observed.tolist(), counts.tolist(), ece)
