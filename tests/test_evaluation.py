import numpy as np
import pytest

from osteo_engine.evaluation import (
    best_threshold,
    bootstrap_intervals,
    calibration,
    macro_f1,
    macro_f1_at,
    screening_metrics,
)


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


@pytest.mark.parametrize("case", range(40))
def test_macro_f1_at_many_thresholds_is_scikit_learn_s_macro_f1(case):
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(case)
    n = int(rng.integers(1, 30))
    labels = np.full(n, case % 2) if case % 5 == 0 else rng.integers(0, 2, n)  # some with one class only
    probs = np.round(rng.uniform(0, 1, n), 1)  # ties between subjects and with the thresholds
    thresholds = np.r_[np.unique(probs), 0.0, 0.5, 1.01]
    expected = [f1_score(labels, (probs >= t).astype(int), average="macro", zero_division=0) for t in thresholds]
    assert macro_f1_at(labels, probs, thresholds) == pytest.approx(expected, abs=1e-12)


def test_calibration_of_a_calibrated_model_has_small_ece():
    rng = np.random.default_rng(1)
    probs = rng.uniform(0, 1, 5000)
    labels = (rng.uniform(0, 1, 5000) < probs).astype(int)
    assert calibration(labels, probs).ece < 0.05
    assert calibration(labels, np.clip(probs * 0.3, 0, 1)).ece > 0.2


@pytest.mark.parametrize("case", range(12))
def test_bootstrap_intervals_are_the_percentiles_of_screening_metrics_over_the_resamples(case):
    rng = np.random.default_rng(case)
    n = int(rng.integers(3, 40))
    labels = np.zeros(n, int) if case == 0 else rng.integers(0, 2, n)  # one class: no AUC in any round
    probs = np.round(rng.uniform(0, 1, n), int(rng.integers(1, 3)))  # ties
    threshold = float(rng.uniform(0.2, 0.8))
    draws = np.random.default_rng(case).integers(0, n, (100, n))
    rounds = [screening_metrics(labels[pick], probs[pick], threshold) for pick in draws]
    intervals = bootstrap_intervals(labels, probs, threshold, rounds=100, seed=case)
    for name, (lo, hi) in intervals.items():
        values = np.array([r[name] for r in rounds])
        values = values[~np.isnan(values)]
        if not len(values):
            assert np.isnan(lo) and np.isnan(hi)
            continue
        assert (lo, hi) == pytest.approx((np.percentile(values, 2.5), np.percentile(values, 97.5)), abs=1e-12)
