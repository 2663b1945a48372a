"""Radiogrammetry: cortical thickness and width of the metacarpals against the phantom's truth, and its
command."""

import json

import cv2
import numpy as np
import pytest

from osteo_engine.base_density import centroid
from osteo_engine.errors import AnnotationError
from osteo_engine.radiogrammetry import (
    FEATURES,
    METACARPALS,
    SUMMARY,
    MeasureRequest,
    bone_bright,
    feature_vector,
    hand_summary,
    hand_summary_text,
    measure_bone,
    measure_bones,
    measure_image,
    measurement_line,
    profile_along,
    radiogrammetry_json,
)


@pytest.fixture(scope="module")
def phantoms():
    from osteo_engine.phantom import generate_subject

    subjects = [generate_subject(0, i, raters=0) for i in range(3)]
    return [(s.image.astype(np.float32) / 65535, s.truth, s) for s in subjects]


def _true(subject, bone: str) -> tuple[float, float]:
    b = subject.latent.bones[bone]
    width = b.width_mm * subject.pose.scale / subject.mm_per_pixel
    return width, b.cortical_index * width / 2


def test_thickness_and_width_match_the_phantoms_truth(phantoms):
    errors_t, errors_w, mci = [], [], []
    for pixels, truth, subject in phantoms:
        for bone, m in measure_bones(pixels, truth, bones=METACARPALS).items():
            assert m.quality == "ok" and m.unit == "px" and m.n_profiles >= 100
            width, thickness = _true(subject, bone)
            errors_t.append(m.T / thickness - 1)
            errors_w.append(m.W / width - 1)
            mci.append((m.MCI, 2 * thickness / width))
    assert np.median(np.abs(errors_t)) < 0.05 and np.median(np.abs(errors_w)) < 0.06
    mci = np.array(mci)
    assert np.corrcoef(mci[:, 0], mci[:, 1])[0, 1] > 0.95


def test_the_marrow_ratio_follows_the_phantoms_trabecular_density(phantoms):
    measured, density = [], []
    for pixels, truth, subject in phantoms:
        for bone, m in measure_bones(pixels, truth, bones=METACARPALS).items():
            measured.append(m.RMD)
            density.append(subject.latent.bones[bone].density)
    assert all(0 < v < 1 for v in measured)  # marrow between the tissue beside the bone and the cortex
    assert np.corrcoef(measured, density)[0, 1] > 0.6


def test_the_base_density_follows_the_trabecular_density_closer_than_the_marrow_ratio(phantoms):
    from osteo_engine.phantom import generate_subject

    more = [generate_subject(1, i, raters=0) for i in range(6)]
    cases = phantoms + [(s.image.astype(np.float32) / 65535, s.truth, s) for s in more]
    rbd, rmd, density = [], [], []
    for pixels, truth, subject in cases:
        for bone, m in measure_bones(pixels, truth, bones=("M2", "M3", "M4")).items():
            rbd.append(m.RBD)
            rmd.append(m.RMD)
            density.append(subject.latent.bones[bone].density)
    r_base, r_marrow = np.corrcoef(rbd, density)[0, 1], np.corrcoef(rmd, density)[0, 1]
    assert r_base > 0.7 and r_base > r_marrow + 0.1


def test_the_base_is_told_by_the_forearm_wherever_the_hand_points(phantoms):
    pixels, truth, _ = phantoms[0]
    upright = measure_bones(pixels, truth, bones=("M2",))["M2"]
    upside_down = measure_bones(np.rot90(pixels, 2).copy(), np.rot90(truth, 2).copy(), bones=("M2",))["M2"]
    assert upside_down.RBD == pytest.approx(upright.RBD, abs=2e-3)
    mask = truth == 4
    wrist = centroid(truth, (1, 2))
    centre = np.argwhere(mask)[:, ::-1].mean(0)
    base = measure_bone(pixels, mask, None, wrist).RBD
    head = measure_bone(pixels, mask, None, 2 * centre - wrist).RBD  # the forearm beyond the fingers
    assert abs(head - base) > 0.03  # the two ends read differently, so the turned image found the same end
    no_forearm = np.where(np.isin(truth, (1, 2)), 0, truth)
    alone = measure_bones(pixels, no_forearm, bones=("M2",))
    assert alone["M2"].RBD is None and alone["M2"].quality == "ok"  # the base unknown: RBD unread, the rest kept
    values = feature_vector(alone)
    assert np.isnan(values[FEATURES.index("M2_RBD")]) and np.isfinite(values[FEATURES.index("M2_MCI")])


def test_the_forearm_is_measured_at_its_visible_shaft_and_read_at_its_wrist_end(phantoms):
    errors_t, rbd, density = [], [], []
    for pixels, truth, subject in phantoms:
        for bone, m in measure_bones(pixels, truth, bones=("ulna", "radius")).items():
            assert m.quality == "ok" and m.n_profiles >= 100
            errors_t.append(m.T / _true(subject, bone)[1] - 1)
            rbd.append(m.RBD)
            density.append(subject.latent.bones[bone].density)
    assert np.median(np.abs(errors_t)) < 0.08
    assert all(0 < v < 1.5 for v in rbd)
    pixels, truth, _ = phantoms[0]
    ulna = truth == 1
    hand = centroid(truth, (3, 4, 5, 6, 7))
    at_wrist = measure_bone(pixels, ulna, None, hand).RBD
    # measure_bones smooths the image first: near, not equal
    assert measure_bones(pixels, truth, bones=("ulna",))["ulna"].RBD == pytest.approx(at_wrist, abs=0.02)
    centre = np.argwhere(ulna)[:, ::-1].mean(0)
    assert abs(measure_bone(pixels, ulna, None, 2 * centre - hand).RBD - at_wrist) > 0.03  # the ends differ


def test_the_hand_summary_averages_the_bones_read_and_needs_four(phantoms):
    pixels, truth, _ = phantoms[1]
    measured = measure_bones(pixels, truth)
    summary = hand_summary(measured)
    trusted = [m for m in measured.values() if m.quality == "ok"]
    assert summary["hand_bones"] == len(trusted) >= 6
    assert summary["hand_MCI"] == pytest.approx(np.mean([m.MCI for m in trusted]))
    assert summary["hand_RBD"] == pytest.approx(np.median([m.RBD for m in trusted]))
    values = feature_vector(measured)
    assert values[-len(SUMMARY) :] == pytest.approx([summary["hand_MCI"], summary["hand_RBD"]], rel=1e-6)
    few = {bone: measured[bone] for bone in ("M2", "M3", "M4")}
    assert hand_summary(few)["hand_MCI"] is None and np.isnan(feature_vector(few)[FEATURES.index("hand_MCI")])
    assert "hand MCI" not in radiogrammetry_json(few) or radiogrammetry_json(few)["hand_MCI"] is None


def test_the_text_answer_words_the_hand_summary_as_the_panel_does(phantoms):
    pixels, truth, _ = phantoms[1]
    whole = radiogrammetry_json(measure_bones(pixels, truth))
    text = hand_summary_text(whole)
    assert text.startswith(f"mean MCI {whole['hand_MCI']:.2f} over {whole['hand_bones']} bones")
    assert f"median base density (RBD) {whole['hand_RBD']:.2f}" in text and f"hand {text}; " in measurement_line(whole)
    few = radiogrammetry_json(measure_bones(pixels, truth, bones=("M2", "M3", "M4")))
    assert hand_summary_text(few) == "" and "hand " not in measurement_line(few)


def test_the_measure_does_not_depend_on_how_the_hand_lies_or_on_inverted_contrast(phantoms):
    pixels, truth, _ = phantoms[0]
    upright = measure_bones(pixels, truth, bones=("M3",))["M3"]
    turned = measure_bones(np.rot90(pixels).copy(), np.rot90(truth).copy(), bones=("M3",))["M3"]
    assert turned.T == pytest.approx(upright.T, rel=0.03) and turned.W == pytest.approx(upright.W, rel=0.03)
    inverted = bone_bright(1.0 - pixels, truth)
    np.testing.assert_allclose(inverted, pixels, atol=1e-6)


def test_millimetres_bhi_and_what_cannot_be_measured(phantoms):
    pixels, truth, subject = phantoms[0]
    no_m5 = np.where(truth == 7, 0, truth)
    measured = measure_bones(pixels, no_m5, spacing_mm=subject.mm_per_pixel)
    m2 = measured["M2"]
    assert m2.unit == "mm" and m2.W == pytest.approx(_true(subject, "M2")[0] * subject.mm_per_pixel, rel=0.08)
    assert m2.BHI == pytest.approx(np.pi * m2.T * (1 - m2.T / m2.W) / (m2.L * m2.W) ** 0.33)
    assert measured["M5"].quality == "not found" and measured["M5"].MCI is None
    flat = measure_bones(np.full_like(pixels, 0.5), truth, bones=("M3",))["M3"]
    assert flat.quality != "ok"  # no edges in a blank image: flagged, not a number to trust
    summary = radiogrammetry_json(measured)
    assert set(summary["bones"]) == {"ulna", "radius", "M1", "M2", "M3", "M4", "M5"}
    assert summary["MCI_M2_M4"] is not None and summary["hand_bones"] == 6  # M5 missing
    assert "edges" not in summary["bones"]["M2"] and summary["bones"]["M5"]["quality"] == "not found"
    distance, values, at = profile_along(pixels, m2.edges[0])
    assert len(distance) == len(values) and at[0] == pytest.approx(0.0) and at[0] < at[1] < at[2] < at[3]
    with pytest.raises(ValueError, match="differ"):
        measure_bones(pixels, truth[:-1])


def test_osteo_measure_with_a_given_label_map_and_bad_label_maps(phantoms, tmp_path, capsys):
    from training_cli.main import main

    pixels, truth, _ = phantoms[0]
    image, labels = tmp_path / "hand.png", tmp_path / "labels.png"
    cv2.imwrite(str(image), (pixels * 65535).astype(np.uint16))
    cv2.imwrite(str(labels), truth)
    assert main(["measure", str(image), "--labels", str(labels), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    direct = measure_image(MeasureRequest(image=image, labels=labels))
    assert out["image"] == "hand.png" and out["bones"]["M3"] == direct["bones"]["M3"]
    assert out["bones"]["M3"]["quality"] == "ok" and out["spacing_mm"] is None
    cv2.imwrite(str(labels), truth[:-4])
    with pytest.raises(AnnotationError, match="the image"):
        measure_image(MeasureRequest(image=image, labels=labels))
    cv2.imwrite(str(labels), np.full_like(truth, 9))
    with pytest.raises(AnnotationError, match="holds label 9"):
        measure_image(MeasureRequest(image=image, labels=labels))
    assert main(["measure", str(image), "--labels", str(tmp_path / "none.png")]) == 2
    assert "not a single-channel label map" in capsys.readouterr().err
