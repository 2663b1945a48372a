"""The bundled segmenter, as `osteo segment predict` uses it by default."""

import json

import cv2
import numpy as np
import pytest

from osteo_engine.segmentation.predict import DEFAULT_MODEL, load_segmenter, segment

from ..conftest import SAMPLE_DICOM

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="no bundled segmenter")


@pytest.fixture(scope="module")
def bundled():
    return load_segmenter()


def test_the_bundled_model_is_small_safetensors_with_a_card():
    card = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    assert DEFAULT_MODEL.stat().st_size <= 30 * 2**20
    assert load_segmenter().error_map is not None  # segmenter.errors.safetensors, fitted to it
    assert {"data", "provenance", "evaluations"} <= set(card) and card["provenance"]["command"]
    assert {"atlas_val", "phantom_test"} <= set(card["evaluations"])


def test_predict_uses_the_bundled_model_by_default_and_writes_every_module_and_sample(tmp_path, capsys):
    from training_cli.main import main

    args = ["segment", "predict", str(SAMPLE_DICOM), "--out", str(tmp_path), "--samples", "2", "--save-samples"]
    assert main([*args, "--json"]) == 0
    summary = json.loads((tmp_path / "phantom_hand.json").read_text())
    labels = cv2.imread(str(tmp_path / "phantom_hand_labels.png"), cv2.IMREAD_UNCHANGED)
    assert labels.shape == (1280, 1024) and labels.dtype == np.uint8
    assert sum(b["present"] for b in summary["bones"].values()) >= 6
    assert 0 <= summary["instability"] < 0.2  # a clean phantom reads alike in every framing
    assert len(summary["modules"]) == 4 and len(summary["samples"]) == 4 * 2
    assert sum(m["weight"] for m in summary["modules"]) == pytest.approx(1, abs=1e-3)
    assert sum(s["weight"] for s in summary["samples"]) == pytest.approx(1, abs=1e-3)
    for entry in summary["modules"] + summary["samples"]:
        drawn = cv2.imread(str(tmp_path / entry["labels"]), cv2.IMREAD_UNCHANGED)
        assert drawn.shape == labels.shape and drawn.max() <= 7
    mi = cv2.imread(str(tmp_path / "phantom_hand_mi.png"), cv2.IMREAD_UNCHANGED)
    assert mi.shape == labels.shape and mi.max() > 0  # the samples disagree somewhere (0 for a collapsed mixture)
    for entry in summary["modules"]:
        drawn = cv2.imread(str(tmp_path / entry["labels"]), cv2.IMREAD_UNCHANGED)
        assert entry["bones_found"] == sum(int((drawn == v).sum()) >= 0.0005 * drawn.size for v in range(1, 8))
    total = summary["uncertainty"]
    assert total["total"] == pytest.approx(total["expected"] + total["mutual_information"], abs=2e-3)
    error = cv2.imread(str(tmp_path / "phantom_hand_error.png"), cv2.IMREAD_UNCHANGED)  # the bundled error map's
    assert error.shape == labels.shape and 0 < total["error"] < 1


@pytest.mark.slow
def test_module_and_uncertainty_maps_follow_the_file_through_its_orientation(bundled):
    from osteo_engine.io import load_radiograph

    image = load_radiograph(SAMPLE_DICOM).pixels
    upright, sideways = segment(image, bundled), segment(np.rot90(image).copy(), bundled)
    assert sideways.quarter_turns != 0
    assert sideways.instability == pytest.approx(upright.instability, abs=0.01)  # both read upright
    for a, b in zip(upright.modules, sideways.modules):
        assert b.labels.shape == sideways.labels.shape == (1024, 1280)
        assert (np.rot90(a.labels) == b.labels).mean() > 0.97
    assert np.corrcoef(np.rot90(upright.mutual_information).ravel(), sideways.mutual_information.ravel())[0, 1] > 0.8
    finding = sideways.bones["radius"]
    counted = [int((m.labels == 2).sum()) for m in sideways.modules]
    assert list(finding.module_area_px) == pytest.approx(counted, rel=0.02, abs=50)
    assert set(finding.uncertainty) == {"total", "expected", "mutual_information"}


def _thumb_side(labels: np.ndarray) -> float:
    """Where M1 lies across the image, relative to the other metacarpals (negative: left of them)."""
    m1 = np.nonzero(labels == 3)[1]
    others = np.nonzero((labels >= 4) & (labels <= 7))[1]
    return float(m1.mean() - others.mean())


def test_mirrored_hands_keep_m1_on_the_thumb(bundled, shared_data):
    from osteo_engine.io import load_radiograph

    image = load_radiograph(shared_data / "hand-atlas" / "images" / "3144.jpg").pixels
    original = _thumb_side(segment(image, bundled).labels)
    mirrored = _thumb_side(segment(image[:, ::-1].copy(), bundled).labels)
    assert np.sign(original) == -np.sign(mirrored) and abs(original) > 20 and abs(mirrored) > 20


@pytest.mark.parametrize("angle", [20.0, -25.0])
def test_rotated_hands_keep_m1_on_the_thumb(bundled, shared_data, angle):
    """Hands tilted as far as a radiographer lets them: M1 moves with the thumb."""
    from osteo_engine.io import load_radiograph

    image = load_radiograph(shared_data / "hand-atlas" / "images" / "3147.jpg").pixels
    h, w = image.shape

    def thumb_vector(labels):
        ys, xs = np.nonzero(labels == 3)
        oy, ox = np.nonzero((labels >= 4) & (labels <= 7))
        return np.array([xs.mean() - ox.mean(), ys.mean() - oy.mean()])

    before = thumb_vector(segment(image, bundled).labels)
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    after = thumb_vector(segment(cv2.warpAffine(image, matrix, (w, h)), bundled).labels)
    expected = matrix[:, :2] @ before
    assert after @ expected / (np.linalg.norm(after) * np.linalg.norm(expected)) > 0.9


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Dice over the bones of two label maps of the same image."""
    scores = []
    for value in range(1, 8):
        x, y = a == value, b == value
        scores.append(2 * (x & y).sum() / max(x.sum() + y.sum(), 1))
    return float(np.mean(scores))


@pytest.fixture(scope="module")
def upright_readings(bundled):
    return {}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["3144.jpg", "3173.jpg"])
@pytest.mark.parametrize("turns,inverted", [(1, False), (2, False), (3, False), (0, True), (1, True)])
def test_sideways_upside_down_and_inverted_files_get_the_same_bones(
    bundled, shared_data, upright_readings, name, turns, inverted
):
    """A file stored turned by quarter turns, or with bone dark, is read upright: each bone keeps its identity."""
    from osteo_engine.io import load_radiograph

    image = load_radiograph(shared_data / "hand-atlas" / "images" / name).pixels
    if name not in upright_readings:
        upright_readings[name] = segment(image, bundled)
    reference = upright_readings[name]
    stored = np.rot90(1.0 - image if inverted else image, turns).copy()
    result = segment(stored, bundled)
    assert result.labels.shape == stored.shape
    assert (result.quarter_turns, result.inverted) == ((4 - turns) % 4, inverted)
    assert _agreement(np.rot90(reference.labels, turns), result.labels) > 0.9


SCREENING = DEFAULT_MODEL.parent / "screening"


@pytest.mark.skipif(not (SCREENING / "probe.safetensors").exists(), reason="no bundled demo classifier")
def test_screen_uses_the_bundled_demo_classifier_which_says_it_is_synthetic(capsys):
    from osteo_engine.screening_model import SYNTHETIC_NOTE
    from training_cli.main import main

    size = sum(f.stat().st_size for f in SCREENING.iterdir())
    assert size <= 25 * 2**20
    card = json.loads((SCREENING / "probe.json").read_text())
    assert card["trained_on"] == SYNTHETIC_NOTE
    # sized to refer 15% on the calibration cohort; the 19 test images allow sampling noise (4/19 = 21%),
    # not a policy that refers a third of them
    calibration = card["refer_calibration"]
    assert abs(calibration["calibration"]["refer_rate"] - calibration["target_refer"]) <= 0.03
    assert calibration["test"]["refer_rate"] <= 0.3
    assert main(["screen", str(SAMPLE_DICOM), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["decision"] in ("normal", "osteoporosis", "refer") and 0 <= answer["probability"] <= 1
    assert answer["model"]["trained_on"] == SYNTHETIC_NOTE and "not a diagnosis" in answer["disclaimer"]
    assert sum(b["present"] for b in answer["bones"].values()) >= 6


def test_a_very_large_image_gets_the_same_bones_from_maps_made_at_a_smaller_size(bundled, monkeypatch):
    """Above MAX_MAP_PIXELS the class maps are made smaller and enlarged (full-size maps of a 100-megapixel
    file took 12 GB); here the limit is lowered so that the sample takes that path."""
    from osteo_engine import load_radiograph
    from osteo_engine.segmentation import predict

    pixels = load_radiograph(SAMPLE_DICOM).pixels
    full = segment(pixels, bundled, samples=1)
    monkeypatch.setattr(predict, "MAX_MAP_PIXELS", pixels.size // 6)
    reduced = segment(pixels, bundled, samples=1)
    assert reduced.labels.shape == reduced.entropy.shape == pixels.shape
    for value in range(1, 8):
        a, b = full.labels == value, reduced.labels == value
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.95
    assert abs(reduced.mean_uncertainty() - full.mean_uncertainty()) < 0.02
