import hashlib

import numpy as np
import pytest
from PIL import Image

from osteo_engine.annotations import AnnotationProject
from osteo_engine.anatomy import BONE_NAMES
from osteo_engine.phantom import PhantomConfig, generate_subject, run_oracle, write_cohort
from osteo_engine.phantom.latent import draw_subject


def _digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes(tmp_path):
    config = PhantomConfig(4, seed=11, raters=2, size=(192, 240))
    write_cohort(tmp_path / "a", config, workers=1)
    write_cohort(tmp_path / "b", config, workers=2)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    write_cohort(tmp_path / "c", PhantomConfig(4, seed=12, raters=2, size=(192, 240)), workers=1)
    assert _digest(tmp_path / "a")["images/P00001.png"] != _digest(tmp_path / "c")["images/P00001.png"]


def test_cohort_files_manifest_and_annotations(small_cohort):
    import csv

    rows = list(csv.DictReader(open(small_cohort / "manifest.csv")))
    assert len(rows) == 12
    for column in ("subject_id", "image", "t_score", "label", "split", "M2_W_px", "M2_T_px", "M2_ci", "M2_density"):
        assert column in rows[0]
    with Image.open(small_cohort / rows[0]["image"]) as im:
        assert im.mode.startswith("I;16") and im.size == (256, 320)
    project = AnnotationProject.open(small_cohort)
    annotations, problems = project.load_all()
    assert problems == [] and len(annotations) == 12
    for image in annotations.values():
        assert len(image.raters) == 3
        for rater in image.raters:
            assert set(np.unique(rater.labels)) == set(range(8))  # background and all 7 bones


def test_disease_model_matches_the_specification():
    rng = np.random.default_rng(5)
    subjects = [draw_subject(rng) for _ in range(6000)]
    t = np.array([s.t_score for s in subjects])
    labels = np.array([s.label for s in subjects])
    ci = {b: np.array([s.bones[b].cortical_index for s in subjects]) for b in BONE_NAMES}
    assert 0.25 <= labels.mean() <= 0.31
    assert np.array_equal(labels, (t < -2.5).astype(int))
    assert 0.60 <= np.corrcoef(ci["M2"], t)[0, 1] <= 0.70
    # residuals are mostly shared between bones of a subject
    resid = np.stack([ci[b] - np.polyval(np.polyfit(t, ci[b], 1), t) for b in BONE_NAMES], 1)
    off_diagonal = np.corrcoef(resid.T)[np.triu_indices(len(BONE_NAMES), 1)]
    assert off_diagonal.mean() > 0.6
    # label-independent variables really are independent
    for values in ([s.age for s in subjects], [s.hand_scale for s in subjects], [s.distractor_ci for s in subjects]):
        assert abs(np.corrcoef(values, t)[0, 1]) < 0.05


def _dice(a, b):
    return 2 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1)


def test_raters_differ_like_human_raters():
    s = generate_subject(seed=0, index=1, size=(1024, 1280), raters=3)
    for value in range(1, 8):
        truth = s.truth == value
        scores = [_dice(truth, r == value) for r in s.raters]
        pairwise = _dice(s.raters[0] == value, s.raters[1] == value)
        assert all(0.8 < d < 0.995 for d in scores), (value, scores)
        assert 0.8 < pairwise < 0.995
    assert not np.array_equal(s.raters[0], s.raters[1])


def test_nothing_outside_the_bones_carries_the_label():
    """Intensities, noise, hand size and pose outside the bone masks over 2,000 subjects: AUC <= 0.6."""
    import cv2
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, labels = [], []
    for i in range(2000):
        s = generate_subject(seed=21, index=i, size=(160, 200), raters=0)
        image = s.image.astype(np.float32) / 65535
        outside = cv2.dilate((s.truth > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) == 0
        values = image[outside]
        tissue = values > np.percentile(values, 40)
        lap = cv2.Laplacian(image, cv2.CV_32F)[outside]
        ys, xs = np.nonzero(image > 0.15)
        orientation = 0.5 * np.arctan2(2 * np.cov(xs, ys)[0, 1], np.var(xs) - np.var(ys))
        features.append([values.mean(), values.std(), *np.percentile(values, [5, 25, 50, 75, 95]),
                         values[tissue].mean(), lap.std(), tissue.mean(), xs.mean(), ys.mean(), orientation,
                         s.pose.rotation_deg, s.pose.scale, s.latent.hand_scale, s.latent.age])
        labels.append(s.latent.label)
    x, y = np.array(features), np.array(labels)
    for model in (make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
                  HistGradientBoostingClassifier(max_iter=100, random_state=0)):
        scores = cross_val_predict(model, x, y, cv=5, method="predict_proba")[:, 1]
        assert roc_auc_score(y, scores) <= 0.6


def test_oracle_auc_lies_in_the_designed_range(tmp_path):
    write_cohort(tmp_path / "c", PhantomConfig(192, seed=0, raters=1, size=(128, 160)), workers=2)
    result = run_oracle(tmp_path / "c")
    assert 0.80 <= result.auc <= 0.92
    assert result.train_subjects == 154 and result.test_subjects == 19 and result.fresh_subjects == 2000
