"""One click per bone with the segmenter's bones as the prior, and the same answers from `osteo prompt`."""

import json

import cv2
import numpy as np
import pytest

from osteo_engine.anatomy import BONE_IDS
from osteo_engine.click_prompts import answer_clicks, prior_crops, read_prompts
from osteo_engine.errors import ConfigError
from osteo_engine.io import load_radiograph
from osteo_engine.sam import BonePrompter, load_sam

from .conftest import SAMPLE_DICOM


@pytest.fixture(scope="module")
def prompter():
    return BonePrompter(load_sam("litemedsam", device="cpu"), cache_size=16)


@pytest.fixture(scope="module")
def sample():
    from osteo_engine.phantom import generate_subject

    truth = generate_subject(0, 0, (1024, 1280), raters=0).truth  # the bundled sample's subject
    return load_radiograph(SAMPLE_DICOM).pixels, truth


def _dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def _shaft_middle(bone: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(bone)
    centre = np.array([xs.mean(), ys.mean()])
    inside = np.stack([xs, ys], 1)
    return inside[np.argmin(np.linalg.norm(inside - centre, axis=1))].astype(float)


def test_one_click_finds_the_bone_under_it_far_better_than_a_square_box(prompter, sample):
    """On the phantom, where LiteMedSAM's boxes are weaker than on real radiographs (see the atlas test)."""
    pixels, truth = sample
    for name in ("M2", "M3", "M4"):
        bone = truth == BONE_IDS[name]
        click = _shaft_middle(bone)[None]
        answer = answer_clicks(prompter, pixels, truth, name, click, [1], image_key="sample")
        assert answer.prior_used and answer.prior_bone == name and not answer.fallback
        square = answer_clicks(prompter, pixels, None, name, click, [1], image_key="sample")
        assert square.fallback and "square box" in square.note
        assert _dice(answer.mask, bone) > 0.6 and _dice(answer.mask, bone) > _dice(square.mask, bone) + 0.3
        assert answer.mask[int(click[0, 1]), int(click[0, 0])]


@pytest.mark.slow
def test_one_click_per_metacarpal_on_a_real_radiograph_keeps_to_its_bone(prompter, shared_data):
    from osteo_engine.landmarks import read_landmarks
    from osteo_engine.segmentation.predict import load_segmenter, segment

    atlas = shared_data / "hand-atlas"
    name = "3144.jpg"  # a val image of the bundled segmenter's split
    lm = read_landmarks(atlas / "landmarks.csv")[name]
    pixels = load_radiograph(atlas / "images" / name).pixels
    prior = segment(pixels, load_segmenter(), modules=False).labels
    kept = 0
    for n in range(1, 6):
        base, head = lm[f"mc{n}_base"], lm[f"mc{n}_head"]
        answer = answer_clicks(prompter, pixels, prior, f"M{n}", ((base + head) / 2)[None], [1], image_key=name)
        assert answer.prior_used and answer.prior_bone == f"M{n}"
        shaft = np.round([base + t * (head - base) for t in (0.25, 0.5, 0.75)]).astype(int)
        others = [(lm[f"mc{m}_base"] + lm[f"mc{m}_head"]) / 2 for m in range(1, 6) if m != n]
        others = np.round(others).astype(int)
        kept += answer.mask[shaft[:, 1], shaft[:, 0]].all() and not answer.mask[others[:, 1], others[:, 0]].any()
    assert kept >= 4  # its shaft and none of the other metacarpals (95% of 105 val bones in the bench)


def test_a_background_click_near_the_active_bone_uses_it_and_far_away_falls_back(prompter, sample):
    pixels, truth = sample
    bone = truth == BONE_IDS["M3"]
    outside = cv2.dilate(bone.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool) & (truth == 0)
    ys, xs = np.nonzero(outside)
    near = np.array([[xs[0], ys[0]]], float)
    answer = answer_clicks(prompter, pixels, truth, "M3", near, [1], image_key="sample")
    assert answer.prior_used and answer.prior_bone == "M3" and _dice(answer.mask, bone) > 0.6
    corner = np.array([[5.0, 5.0]])
    far = answer_clicks(prompter, pixels, truth, "M3", corner, [1], image_key="sample")
    assert far.fallback and not far.prior_used and "found no bone here" in far.note


def test_further_clicks_refine_and_a_box_overrides(prompter, sample):
    pixels, truth = sample
    bone = truth == BONE_IDS["M2"]
    click = _shaft_middle(bone)
    first = answer_clicks(prompter, pixels, truth, "M2", click[None], [1], image_key="sample")
    ys, xs = np.nonzero(first.mask)
    end = np.array([xs[np.argmax(ys)], ys.max()], float)  # the mask's far end
    negative = click + 0.8 * (end - click)
    cut = answer_clicks(prompter, pixels, truth, "M2", np.vstack([click, negative]), [1, 0], image_key="sample")
    assert cut.mask.sum() < first.mask.sum() and not cut.mask[int(negative[1]), int(negative[0])]
    assert cut.mask[int(click[1]), int(click[0])]
    # a positive click on the neighbouring bone grows the mask to hold it
    grow = _shaft_middle(truth == BONE_IDS["M3"])
    grown = answer_clicks(prompter, pixels, truth, "M2", np.vstack([click, grow]), [1, 1], image_key="sample")
    assert grown.mask[int(grow[1]), int(grow[0])] and grown.mask.sum() > first.mask.sum()
    x0, y0 = xs.min(), ys.min()
    boxed = answer_clicks(
        prompter, pixels, truth, "M2", click[None], [1], box=np.array([x0, y0, x0 + 40, y0 + 40.0]), image_key="s"
    )
    assert not boxed.prior_used and not boxed.fallback and "your box" in boxed.note
    assert boxed.mask.sum() < first.mask.sum()
    with pytest.raises(ValueError, match="positive"):
        answer_clicks(prompter, pixels, truth, "M2", click[None], [0])


def test_every_bone_of_the_prior_has_a_crop_to_embed_ahead(sample):
    _, truth = sample
    crops = prior_crops(truth)
    assert len(crops) == 7 and all(c.x1 - c.x0 == c.y1 - c.y0 >= 256 for c in crops)


def test_prompt_files_are_checked_entry_by_entry(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps([{"bone": "M2", "points": [[10, 20, 1], [30, 40, 0]], "box": None}]))
    (entry,) = read_prompts(path)
    assert entry.bone == "M2" and entry.labels.tolist() == [1, 0] and entry.points.shape == (2, 2)
    for bad, message in (
        ([{"bone": "M9", "points": [[1, 2, 1]]}], "bone"),
        ([{"bone": "M2", "points": [[1, 2, 3]]}], "1 .positive. or 0"),
        ([{"bone": "M2", "points": [[1, 2, 0]], "box": None}], "positive click or a box"),
        ([{"bone": "M2", "points": [[1, 2]]}], "points are"),
        ({"bone": "M2"}, "JSON list"),
    ):
        path.write_text(json.dumps(bad))
        with pytest.raises(ConfigError, match=message):
            read_prompts(path)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read"):
        read_prompts(path)


@pytest.mark.slow
def test_osteo_prompt_writes_a_mask_per_bone_and_says_how_each_was_made(tmp_path, capsys, sample):
    from training_cli.main import main

    _, truth = sample
    m3 = _shaft_middle(truth == BONE_IDS["M3"])
    prompts = [
        {"bone": "M3", "points": [[*m3.tolist(), 1]], "box": None},
        {"bone": "M5", "points": [[5, 5, 1]], "box": None},  # nothing there: the square box, said so
    ]
    (tmp_path / "prompts.json").write_text(json.dumps(prompts))
    out = tmp_path / "masks"
    assert (
        main(["prompt", str(SAMPLE_DICOM), "--prompts", str(tmp_path / "prompts.json"), "--out", str(out), "--json"])
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert [b["bone"] for b in summary["bones"]] == ["M3", "M5"]
    assert summary["bones"][0]["prior_used"] and not summary["bones"][1]["prior_used"]
    mask = cv2.imread(str(out / "M3.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == truth.shape and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
    assert _dice(mask > 0, truth == BONE_IDS["M3"]) > 0.6 and summary["bones"][0]["area"] == (mask > 0).sum()
    # the command answers exactly as the Annotate workspace's call does with the same segmenter's bones
    from osteo_engine.segmentation.predict import load_segmenter, segment

    pixels = load_radiograph(SAMPLE_DICOM).pixels
    prior = segment(pixels, load_segmenter(), modules=False).labels
    app = answer_clicks(BonePrompter(load_sam("litemedsam")), pixels, prior, "M3", m3[None], [1], image_key="app")
    assert ((mask > 0) == app.mask).all()
