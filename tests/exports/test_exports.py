import json
import shutil

import numpy as np
import pytest
from PIL import Image

from osteo_engine.annotations import AnnotationProject, RaterAnnotation
from osteo_engine.errors import AnnotationError
from osteo_engine.exports import coco, dicom_seg, png
from osteo_engine.exports.deidentify import project_key, replacement_uid
from osteo_engine.io import load_radiograph

from ..conftest import SAMPLE_DICOM


def _project_with_annotations(tmp_path, source_images):
    project = AnnotationProject.create(tmp_path / "proj", source_images)
    maps = {}
    for entry in project.images:
        shape = load_radiograph(project.image_path(entry.image_id)).pixels.shape
        for r, rater in enumerate(("alice", "bob")):
            labels = np.zeros(shape, np.uint8)
            for k in range(7):
                y = 40 + 90 * k + 3 * r
                labels[y : y + 60, 100 + 20 * k : 300 + 20 * k] = k + 1
            project.save(entry.image_id, RaterAnnotation(rater, labels))
            maps[(entry.image_id, rater)] = labels
    return project, maps


@pytest.fixture
def dicom_project(tmp_path):
    source = tmp_path / "src" / "sample.dcm"
    source.parent.mkdir()
    shutil.copy(SAMPLE_DICOM, source)
    return _project_with_annotations(tmp_path, [source])


def test_png_export_then_import_round_trips(dicom_project, tmp_path):
    project, maps = dicom_project
    written = png.export_png(project, tmp_path / "out")
    assert len(written) == 2
    with Image.open(written[0]) as im:
        assert im.mode == "L"
    target = AnnotationProject.create(tmp_path / "other", [project.image_path(e.image_id) for e in project.images])
    ids = png.import_png(target, tmp_path / "out" / "alice", rater="imported")
    annotations, _ = target.load(ids[0])
    np.testing.assert_array_equal(annotations.raters[0].labels, maps[(ids[0], "alice")])


def test_png_import_accepts_palette_and_refuses_colour(tmp_path, dicom_project):
    project, maps = dicom_project
    labels = maps[(project.images[0].image_id, "alice")]
    folder = tmp_path / "pal"
    folder.mkdir()
    pal = Image.fromarray(labels, mode="P")
    pal.putpalette([v for k in range(256) for v in (k * 30 % 256, k * 70 % 256, k * 110 % 256)])
    pal.save(folder / "sample.png")
    png.import_png(project, folder, rater="palette")
    annotations, _ = project.load(project.images[0].image_id)
    np.testing.assert_array_equal([r for r in annotations.raters if r.rater == "palette"][0].labels, labels)
    rgb = np.stack([labels * 30, labels, labels], -1).astype(np.uint8)
    Image.fromarray(rgb).save(folder / "sample.png")
    with pytest.raises(AnnotationError, match="colour"):
        png.import_png(project, folder, rater="rgb")


def test_coco_export_is_valid_and_imports_back(dicom_project, tmp_path):
    from pycocotools.coco import COCO

    project, maps = dicom_project
    path = coco.export_coco(project, tmp_path / "coco.json")
    api = COCO(str(path))
    assert sorted(c["name"] for c in api.loadCats(api.getCatIds())) == sorted(
        ["ulna", "radius", "M1", "M2", "M3", "M4", "M5"]
    )
    assert len(api.getAnnIds()) == 14  # 7 bones x 2 raters
    target = AnnotationProject.create(tmp_path / "other", [project.image_path(e.image_id) for e in project.images])
    coco.import_coco(target, path, default_rater="x")
    annotations, _ = target.load(target.images[0].image_id)
    by_rater = {r.rater: r.labels for r in annotations.raters}
    for rater in ("alice", "bob"):
        np.testing.assert_array_equal(by_rater[rater], maps[(project.images[0].image_id, rater)])


def test_coco_import_refuses_unknown_categories(dicom_project, tmp_path):
    project, _ = dicom_project
    bad = {
        "images": [{"id": 1, "file_name": "sample.dcm", "width": 4, "height": 4}],
        "categories": [{"id": 1, "name": "femur"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 3, 0, 3, 3]]}],
    }
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(AnnotationError, match="femur"):
        coco.import_coco(project, tmp_path / "bad.json", "x")


@pytest.mark.parametrize("keep_patient", [False, True])
def test_dicom_seg_export_holds_every_bone_of_every_rater(dicom_project, tmp_path, keep_patient):
    import pydicom

    project, maps = dicom_project
    written = dicom_seg.export_dicom_seg(project, tmp_path / "seg", keep_patient=keep_patient)
    assert len(written) == 2
    source = pydicom.dcmread(SAMPLE_DICOM)
    key = project_key(project.root)
    for path in written:
        seg = pydicom.dcmread(path)
        assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
        assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == (
            source.SOPInstanceUID if keep_patient else replacement_uid(key, source.SOPInstanceUID)
        )
        labels = [d.SegmentLabel for d in seg.SegmentSequence]
        assert labels == ["ulna", "radius", "M1", "M2", "M3", "M4", "M5"]
        frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
        rebuilt = np.zeros((seg.Rows, seg.Columns), np.uint8)
        for frame, groups in zip(frames, seg.PerFrameFunctionalGroupsSequence):
            number = groups.SegmentIdentificationSequence[0].ReferencedSegmentNumber
            rebuilt[frame > 0] = number
        rater = path.name.split("_")[-1].split(".")[0]
        np.testing.assert_array_equal(rebuilt, maps[(project.images[0].image_id, rater)])


def _identity(ds) -> dict:
    return {
        k: str(ds.get(k, ""))
        for k in (
            "PatientName",
            "PatientID",
            "PatientBirthDate",
            "PatientSex",
            "StudyInstanceUID",
            "StudyDate",
            "AccessionNumber",
        )
    }


def test_dicom_seg_is_de_identified_by_default_with_a_consistent_pseudonym(dicom_project, tmp_path):
    import pydicom

    project, _ = dicom_project
    source = pydicom.dcmread(SAMPLE_DICOM)
    first, again = (dicom_seg.export_dicom_seg(project, tmp_path / name) for name in ("a", "b"))
    seg = pydicom.dcmread(first[0])
    assert seg.PatientIdentityRemoved == "YES"
    assert str(seg.PatientID).startswith("ANON-") and str(seg.PatientName).startswith(seg.PatientID)
    assert not {
        str(source.PatientName),
        str(source.PatientID),
        source.StudyInstanceUID,
        source.SeriesInstanceUID,
        source.SOPInstanceUID,
    } & {str(v.value) for v in seg.iterall()}
    assert seg.PatientSex == "" and seg.PatientBirthDate == "" and seg.StudyDate == ""
    # the same patient and study in every export and for every rater, so a recipient can group them
    assert _identity(pydicom.dcmread(again[0])) == _identity(seg) == _identity(pydicom.dcmread(first[1]))
    kept = pydicom.dcmread(dicom_seg.export_dicom_seg(project, tmp_path / "kept", keep_patient=True)[0])
    assert _identity(kept) == _identity(source)


def test_osteo_export_keeps_the_patient_only_when_asked(dicom_project, tmp_path, capsys):
    import pydicom

    from training_cli.main import main

    project, _ = dicom_project
    source = pydicom.dcmread(SAMPLE_DICOM)
    for flag, expected in (([], False), (["--keep-patient"], True)):
        out = tmp_path / f"seg{len(flag)}"
        assert main(["export", str(project.root), "--format", "dicom-seg", "--out", str(out), *flag]) == 0
        seg = pydicom.dcmread(sorted(out.iterdir())[0])
        assert (seg.PatientID == source.PatientID) is expected


def test_dicom_seg_skips_non_dicom_sources(tmp_path):
    import cv2

    src = tmp_path / "hand.png"
    cv2.imwrite(str(src), np.tile(np.arange(600, dtype=np.uint8)[None] % 200, (700, 1)))
    project, _ = _project_with_annotations(tmp_path, [src])
    assert dicom_seg.export_dicom_seg(project, tmp_path / "seg") == []


@pytest.mark.parametrize("keep_patient", [False, True])
def test_exported_dicom_seg_passes_the_dicom_validator(dicom_project, tmp_path, keep_patient):
    from ..conftest import dciodvfy_errors

    project, _ = dicom_project
    written = dicom_seg.export_dicom_seg(project, tmp_path / "seg", keep_patient=keep_patient)
    assert dciodvfy_errors(written[0]) == []
