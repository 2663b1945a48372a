import numpy as np
import pytest

from osteo_engine.evaluation import best_threshold, bootstrap_intervals, calibration, macro_f1, screening_metrics


def test_metrics_for_the_positive_class_by_hand():
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    probs = np.array([0.9, 0.8, 0.3, 0.7, 0.2, 0.1, 0.1, 0.05])
    m = screening_metrics(labels, probs, 0.5)
    # predicted positive: 0.9, 0.8, 0.7 -> TP 2, FP 1, FN 1, TN 4
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3) and m["accuracy"] == pytest.approx(6 / 8)
    assert m["auc"] == pytest.approx(14 / 15)  # 15 positive-negative pairs, one ranked wrong (0.3 < 0.7)
    assert np.isnan(screening_metrics(np.zeros(3), np.array([0.1, 0.2, 0.3]), 0.5)["auc"])


def test_threshold_maximises_macro_f1_and_intervals_bracket_the_estimate():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    probs = np.clip(labels * 0.3 + rng.uniform(0, 0.7, 200), 0, 1)
    t = best_threshold(labels, probs)
    assert macro_f1(labels, probs, t) >= max(macro_f1(labels, probs, u) for u in np.linspace(0, 1, 21)) - 1e-9
    point = screening_metrics(labels, probs, t)
    intervals = bootstrap_intervals(labels, probs, t, rounds=200)
    for name, (lo, hi) in intervals.items():
        assert lo <= point[name] <= hi


def test_calibration_of_a_calibrated_model_has_small_ece():
    rng = np.random.default_rng(1)
    probs = rng.uniform(0, 1, 5000)
    labels = (rng.uniform(0, 1, 5000) < probs).astype(int)
    assert calibration(labels, probs).ece < 0.05
    assert calibration(labels, np.clip(probs * 0.3, 0, 1)).ece > 0.2
