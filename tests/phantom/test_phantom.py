import hashlib

import numpy as np
import pytest
from PIL import Image

from osteo_engine.anatomy import BONE_NAMES
from osteo_engine.annotations import AnnotationProject
from osteo_engine.phantom import PhantomConfig, generate_subject, run_oracle, write_cohort
from osteo_engine.phantom.latent import draw_subject


def _digest(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


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


def test_true_label_maps_are_read_back_and_a_cohort_without_them_is_refused(small_cohort, tmp_path):
    from osteo_engine.errors import ConfigError
    from osteo_engine.phantom.cohort import read_truth

    truth = read_truth(small_cohort / "manifest.csv", "P00001")
    assert truth.shape == (320, 256) and truth.dtype == np.uint8 and set(np.unique(truth)) == set(range(8))
    with pytest.raises(ConfigError, match="only phantom cohorts"):
        read_truth(tmp_path / "manifest.csv", "P00001")


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


def test_raters_differ_like_human_raters_and_keep_their_habits():
    for index in (1, 2, 3):
        s = generate_subject(seed=0, index=index, size=(1024, 1280), raters=3)
        tight, loose, faithful = s.raters
        for value in range(1, 8):
            truth = s.truth == value
            scores = [_dice(truth, r == value) for r in s.raters]
            assert all(0.8 < d < 0.995 for d in scores), (value, scores)
            assert 0.7 < _dice(tight == value, loose == value) < 0.95
            # the same habit on every subject and bone: the tight rater draws less than the truth, the loose more
            assert (tight == value).sum() < truth.sum() < (loose == value).sum()
            assert _dice(truth, faithful == value) > max(scores[:2]) - 0.02
    assert not np.array_equal(tight, loose)


@pytest.mark.slow
def test_nothing_outside_the_bones_carries_the_label():
    """Intensities, noise, hand size and pose outside the bone masks over 2,000 subjects: AUC <= 0.6."""
    from osteo_engine.phantom.audit import audit_leak

    result = audit_leak(subjects=2000)
    assert result.auc_logistic <= 0.6 and result.auc_boosting <= 0.6


def test_the_leak_audit_would_see_a_label_outside_the_bones():
    """The audit is sensitive: a confound such as positives coming from a noisier scanner is found."""
    from osteo_engine.phantom.audit import outside_bone_features

    rows, labels = [], []
    for i in range(300):
        s = generate_subject(seed=4, index=i, size=(160, 200), raters=0)
        if s.latent.label:
            noisy = s.image + np.random.default_rng(i).normal(0, 600, s.image.shape)
            s.image = np.clip(noisy, 0, 65535).astype(np.uint16)
        rows.append(outside_bone_features(s))
        labels.append(s.latent.label)
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scores = cross_val_predict(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        np.array(rows),
        np.array(labels),
        cv=5,
        method="predict_proba",
    )[:, 1]
    assert roc_auc_score(labels, scores) > 0.8


def test_oracle_auc_lies_in_the_designed_range(tmp_path):
    write_cohort(tmp_path / "c", PhantomConfig(192, seed=0, raters=1, size=(128, 160)), workers=2)
    result = run_oracle(tmp_path / "c")
    assert 0.80 <= result.auc <= 0.92
    assert result.train_subjects == 154 and result.test_subjects == 19 and result.fresh_subjects == 2000


def test_the_bundled_sample_and_phantom_dicoms_pass_the_dicom_validator(tmp_path):
    from osteo_engine.phantom.dicom import write_phantom_dicom

    from ..conftest import SAMPLE_DICOM, dciodvfy_errors

    assert dciodvfy_errors(SAMPLE_DICOM) == []
    assert dciodvfy_errors(write_phantom_dicom(tmp_path / "other.dcm", seed=4, index=2, size=(320, 256))) == []
