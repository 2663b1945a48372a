import shutil

import pytest

from osteo_engine.cohort import label_from_t_score, read_manifest, subject_splits
from osteo_engine.errors import CohortError

from .conftest import SAMPLE_DICOM


def _hospital_export(tmp_path, n_subjects=30, header="PatientID,File,T-score", images_per_subject=2):
    (tmp_path / "dicom").mkdir()
    lines = [header]
    for s in range(n_subjects):
        for k in range(images_per_subject):
            name = f"dicom/s{s}_{k}.dcm"
            shutil.copy(SAMPLE_DICOM, tmp_path / name)
            lines.append(f"H{s:03d},{name},{-4.0 + 0.2 * s:.1f}")
    (tmp_path / "tscores.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "tscores.csv"


def test_hospital_export_works_directly(tmp_path):
    cohort = read_manifest(_hospital_export(tmp_path), seed=0)
    assert len(cohort.rows) == 60 and len(cohort.subjects()) == 30
    assert all(r.image.is_file() for r in cohort.rows)
    assert not cohort.splits_given
    # T-score -> label at -2.5 (WHO: at or below)
    for r in cohort.rows:
        assert r.label == int(r.t_score <= -2.5)
    # subject-wise split: both images of a subject share it
    split_of = {}
    for r in cohort.rows:
        assert split_of.setdefault(r.subject_id, r.split) == r.split
    counts = cohort.summary()["splits"]
    assert counts == {"train": 24, "val": 3, "test": 3}


def test_splits_are_reproducible_per_seed_and_stratified():
    labels = {f"s{i}": int(i < 56) for i in range(200)}
    a, b, c = subject_splits(labels, 0), subject_splits(labels, 0), subject_splits(labels, 1)
    assert a == b and a != c
    for split, expected in (("test", 6), ("val", 6)):
        assert sum(1 for s, v in a.items() if v == split and labels[s] == 1) == expected


def test_unlabelled_rows_are_kept_for_pretraining(tmp_path):
    shutil.copy(SAMPLE_DICOM, tmp_path / "a.dcm")
    shutil.copy(SAMPLE_DICOM, tmp_path / "b.dcm")
    (tmp_path / "m.csv").write_text("subject_id,image,t_score,label\nA,a.dcm,-3.1,\nB,b.dcm,,\n")
    cohort = read_manifest(tmp_path / "m.csv")
    assert [r.label for r in cohort.labelled()] == [1]
    assert len(cohort.unlabelled()) == 1


@pytest.mark.parametrize(
    "body,match",
    [
        ("subject_id,image,t_score\nA,missing.dcm,-1\n", "not found"),
        ("subject_id,image,t_score\nA,a.dcm,-1\nB,a.dcm,-1\n", "repeats"),
        ("subject_id,image,label\nA,a.dcm,1\nA,b.dcm,0\n", "conflicting labels"),
        ("subject_id,image,label\nA,a.dcm,2\n", "not 0 or 1"),
        ("subject_id,image,t_score\nA,a.dcm,-14\n", "outside the possible range"),
        ("subject_id,image,t_score\nA,a.dcm,abc\n", "not a number"),
        ("subject_id,image,t_score,label\nA,a.dcm,-3,0\n", "contradicts"),
        ("subject_id,image,split\nA,a.dcm,train\nA,b.dcm,test\n", "different splits"),
        ("subject_id,image,split\nA,a.dcm,holdout\n", "not train, val or test"),
        ("name,t_score\nA,-1\n", "lacks the column"),
    ],
)
def test_invalid_manifests_raise_plain_errors_naming_lines_not_subjects(tmp_path, body, match):
    shutil.copy(SAMPLE_DICOM, tmp_path / "a.dcm")
    shutil.copy(SAMPLE_DICOM, tmp_path / "b.dcm")
    (tmp_path / "m.csv").write_text(body.replace("A,", "PATIENT-XYZ,").replace("B,", "PATIENT-QRS,"))
    with pytest.raises(CohortError, match=match) as info:
        read_manifest(tmp_path / "m.csv")
    assert "PATIENT-" not in str(info.value)


def test_phantom_manifest_reads_with_the_same_reader(small_cohort):
    cohort = read_manifest(small_cohort / "manifest.csv")
    assert cohort.splits_given and len(cohort.rows) == 12
    assert "M2_ci" in cohort.rows[0].extra


def test_label_threshold():
    assert label_from_t_score(-2.5) == 1 and label_from_t_score(-2.4) == 0


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.text(min_size=1, max_size=6), st.sampled_from([0, 1, None]), min_size=1, max_size=300),
    st.integers(0, 2**16),
)
def test_split_is_a_reproducible_80_10_10_partition_of_subjects(labels, seed):
    splits = subject_splits(labels, seed)
    assert set(splits) == set(labels) and set(splits.values()) <= {"train", "val", "test"}
    assert splits == subject_splits(dict(reversed(list(labels.items()))), seed)  # order of rows is irrelevant
    for group in (0, 1, None):
        members = [s for s, v in labels.items() if v == group]
        for name in ("val", "test"):
            assert sum(1 for s in members if splits[s] == name) == round(0.1 * len(members))
