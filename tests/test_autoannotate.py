import json
import subprocess
import sys

import numpy as np
import pytest

from osteo_engine.annotations import AnnotationProject
from osteo_engine.autoannotate import landmark_prompts
from osteo_engine.landmarks import check_landmarks, read_landmarks
from osteo_engine.sam.crops import Crop

from .conftest import REPO


def test_prompts_cover_their_landmarks(shared_data):
    landmarks = read_landmarks(shared_data / "hand-atlas" / "landmarks.csv")
    lm = landmarks["3143.jpg"]
    prompts = landmark_prompts(lm, (1950, 1350))
    for n in range(1, 6):
        box = prompts[f"M{n}"].box
        for point in (lm[f"mc{n}_base"], lm[f"mc{n}_head"]):
            assert box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]
    assert prompts["radius"].box[3] == 1949  # the forearm runs off the bottom edge
    crop = Crop.around(prompts["M2"].box, (1950, 1350))
    assert crop.x1 - crop.x0 == crop.y1 - crop.y0 >= 256 and crop.x0 >= 0 and crop.y1 <= 1950


def test_landmark_checks_agree_with_the_shared_tool(shared_data):
    sys.path.insert(0, str(shared_data.parent / "tools"))
    import landmarks as shared_rules

    landmarks = read_landmarks(shared_data / "hand-atlas" / "landmarks.csv")
    rng = np.random.default_rng(0)
    for name in list(landmarks)[:5]:
        labels = rng.integers(0, 8, (1950, 1400)).astype(np.uint8)
        labels[rng.random(labels.shape) < 0.5] = 0
        ours = check_landmarks(labels, landmarks[name])
        theirs = shared_rules.check(
            labels, shared_rules.read_landmarks(str(shared_data / "hand-atlas" / "landmarks.csv"))[name]
        )
        assert ours.positives == theirs[0] and ours.negatives == theirs[1]


def _annotate_auto(shared_data, out, *extra):
    """`osteo annotate-auto --json` on the first two atlas images, into `out`."""
    atlas = shared_data / "hand-atlas"
    command = ["annotate-auto", "--images", str(atlas / "images"), "--landmarks", str(atlas / "landmarks.csv")]
    return subprocess.run(
        [sys.executable, "-m", "training_cli", *command, "--out", str(out), "--limit", "2", *extra, "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )


@pytest.mark.slow
def test_annotate_auto_on_two_atlas_images(shared_data, tmp_path):
    proc = _annotate_auto(shared_data, tmp_path / "p")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["annotated"] == 2
    assert out["rates"]["all"]["hit_rate"] >= 0.85 and out["rates"]["all"]["no_spill_rate"] >= 0.95
    project = AnnotationProject.open(tmp_path / "p")
    annotations, problems = project.load_all()
    assert problems == []
    image = next(iter(annotations.values()))
    (rater,) = image.raters
    assert rater.rater == "sam-auto" and set(rater.prompts) == {"ulna", "radius", "M1", "M2", "M3", "M4", "M5"}
    assert (tmp_path / "p" / "manifest.csv").is_file()
    again = _annotate_auto(shared_data, tmp_path / "p")
    assert json.loads(again.stdout)["skipped"] == 2  # resumable: done images are kept
    before = {b.image_id: b.raters[0].labels for b in annotations.values()}
    ulna_only = _annotate_auto(shared_data, tmp_path / "p", "--bones", "ulna")
    assert json.loads(ulna_only.stdout)["annotated"] == 2
    for image_id, image in AnnotationProject.open(tmp_path / "p").load_all()[0].items():
        labels = image.raters[0].labels
        for value in range(2, 8):  # every bone but the ulna is kept as it was
            assert np.array_equal(labels == value, before[image_id] == value)
        assert (labels == 1).sum() > 0 and set(image.raters[0].prompts) == set(rater.prompts)


def test_follow_cortex_drops_soft_tissue_and_keeps_the_bone():
    from osteo_engine.autoannotate import follow_cortex

    pixels = np.full((200, 200), 0.2, np.float32)  # background
    pixels[:, 40:160] = 0.45  # soft tissue
    pixels[60:200, 90:130] = 0.9  # the bone, running off the bottom edge
    sam_mask = np.zeros_like(pixels, bool)
    sam_mask[70:200, 60:126] = True  # on the tissue beside the bone, missing its far edge
    refined = follow_cortex(pixels, sam_mask, np.array([110.0, 150.0]), scale=80)
    bone = pixels > 0.8
    assert (refined & bone).sum() / bone[70:].sum() > 0.9
    assert (refined & ~bone).sum() < 0.05 * refined.sum()
    assert follow_cortex(pixels, np.zeros_like(sam_mask), np.array([110.0, 150.0]), 80).sum() == 0


def test_the_thumbs_mask_is_not_cut_along_the_fingers_band(shared_data):
    """The thumb's metacarpal is wider for its length than a finger's; its mask must reach its real edges."""
    from osteo_engine.autoannotate import BAND_HALF_WIDTH, segment_from_prompts
    from osteo_engine.io import load_radiograph
    from osteo_engine.sam import BonePrompter, load_sam

    lm = read_landmarks(shared_data / "hand-atlas" / "landmarks.csv")["3164.jpg"]
    pixels = load_radiograph(shared_data / "hand-atlas" / "images" / "3164.jpg").pixels
    prompt = landmark_prompts(lm, pixels.shape)["M1"]
    labels = segment_from_prompts(BonePrompter(load_sam("litemedsam", device="cpu")), pixels, {"M1": prompt})
    base, head = lm["mc1_base"], lm["mc1_head"]
    u = (head - base) / np.linalg.norm(head - base)
    ys, xs = np.nonzero(labels == 3)
    across = (-(xs - base[0]) * u[1] + (ys - base[1]) * u[0]) / np.linalg.norm(head - base)
    assert across.max() - across.min() > 2 * BAND_HALF_WIDTH + 0.03  # wider than a finger's band allows
    assert np.abs(across).max() < prompt.band - 0.01  # and not cut straight by its own band either
