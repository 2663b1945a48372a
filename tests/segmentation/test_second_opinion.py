"""SAM's second opinion: the network's bones redrawn by LiteMedSAM, and the image scores made from it."""

import math

import cv2
import numpy as np
import pytest

from osteo_engine.anatomy import BONE_NAMES
from osteo_engine.segmentation.metrics import dice_per_bone, mean_dice
from osteo_engine.segmentation.predict import DEFAULT_MODEL, load_segmenter, segment
from osteo_engine.segmentation.second_opinion import combined_score, refine_with_sam, sam_disagreement

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="no bundled segmenter")


def test_the_combined_score_is_the_geometric_mean_of_two_checks_and_needs_both():
    assert combined_score(0.04, 0.16) == pytest.approx(0.08)
    assert combined_score(0.0, 0.3) == 0.0  # high only when both checks see an error
    assert combined_score(None, 0.2) is None and combined_score(0.2, None) is None


def test_a_score_not_made_while_segmenting_says_what_it_needs():
    from osteo_engine.segmentation.predict import Segmentation

    seg = Segmentation(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.float32), [1.0], {}, instability=0.1)
    with pytest.raises(ValueError, match="needs SAM's redraw"):
        seg.image_score("combined")
    seg.instability = None
    with pytest.raises(ValueError, match=r"needs the modules' readings .* and SAM's redraw"):
        seg.image_score("combined")
    with pytest.raises(KeyError):
        seg.image_score("entropy")


@pytest.fixture(scope="module")
def atlas_reading():
    from osteo_engine.io import load_radiograph
    from osteo_engine.sam import BonePrompter, load_sam

    from ..conftest import SHARED_DATA

    path = SHARED_DATA / "hand-atlas" / "images" / "3164.jpg"
    if not path.exists():
        pytest.skip("../shared/data is not beside the repository")
    image = load_radiograph(path).pixels
    return image, load_segmenter(), BonePrompter(load_sam("litemedsam", device="cpu"))


@pytest.mark.slow
def test_sam_redraws_every_bone_and_one_redraw_serves_refinement_and_the_score(atlas_reading):
    """`--refine sam` redraws each bone from a prompt made of the network's mask, the thumb's with its own wider
    band; `--second-opinion` scores the network's map against that redraw, and with both the map shown is the
    redraw while the score stays the network's map's."""
    image, bundled, prompter = atlas_reading
    network = segment(image, bundled)
    opinion = segment(image, bundled, second_opinion=prompter)
    both = segment(image, bundled, refine=prompter, second_opinion=prompter)
    assert all(f.present for f in both.bones.values())
    assert np.array_equal(opinion.labels, network.labels)  # the second opinion changes no label
    assert not np.array_equal(both.labels, network.labels)
    assert min(dice_per_bone(both.labels, network.labels).values()) > 0.75  # each redrawn bone stays that bone
    assert opinion.sam_disagreement == pytest.approx(1 - mean_dice(network.labels, both.labels))
    assert both.sam_disagreement == pytest.approx(opinion.sam_disagreement)
    assert 0 < opinion.sam_disagreement < 0.25
    combined = math.sqrt(opinion.instability * opinion.sam_disagreement)
    assert opinion.image_score("combined") == pytest.approx(combined)
    assert opinion.summary()["combined"] == pytest.approx(combined, abs=1e-4)
    with pytest.raises(ValueError, match="needs SAM's redraw"):
        network.image_score("sam_disagreement")


@pytest.mark.slow
def test_a_bone_drawn_over_soft_tissue_raises_the_disagreement(atlas_reading):
    """The errors the turned readings miss: a metacarpal drawn wide over the tissue beside it reads the same in
    every framing, but SAM, prompted with its box, draws the bone."""
    image, bundled, prompter = atlas_reading
    labels = segment(image, bundled, modules=False).labels
    redrawn = refine_with_sam(image, labels, prompter)
    value = BONE_NAMES.index("M3") + 1
    grown = cv2.dilate((labels == value).astype(np.uint8), np.ones((25, 25), np.uint8)) > 0
    wide = np.where(grown & (labels == 0), value, labels).astype(np.uint8)
    wide_redrawn = refine_with_sam(image, wide, prompter)
    # SAM keeps to the bone: the wide M3 (Dice 0.86 against the network's) is 0.96 → 0.87 from SAM's
    assert dice_per_bone(wide, wide_redrawn)["M3"] < dice_per_bone(labels, redrawn)["M3"] - 0.05
    assert sam_disagreement(wide, wide_redrawn) > sam_disagreement(labels, redrawn) + 0.01


@pytest.mark.slow
def test_predict_and_evaluate_give_the_second_opinion_when_asked(small_cohort, tiny_segmenter, tmp_path, capsys):
    import json

    from training_cli.main import main

    manifest = small_cohort / "manifest.csv"
    common = ["--model", str(tiny_segmenter), "--samples", "1", "--json"]
    assert main(["segment", "evaluate", "--data", str(manifest), "--split", "train", "--second-opinion", *common]) == 0
    uncertainty = json.loads(capsys.readouterr().out)["uncertainty"]
    flags = uncertainty["flags_errors"]
    assert {"sam_disagreement", "combined"} <= set(flags) and uncertainty["app_score"] == "combined"
    assert flags["combined"]["image_spearman"] is not None and flags["combined"]["pixel_auroc"] is None
    image = next((small_cohort / "images").iterdir())
    assert main(["segment", "predict", str(image), "--out", str(tmp_path), "--second-opinion", *common]) == 0
    summary = json.loads((tmp_path / f"{image.stem}.json").read_text())
    assert 0 <= summary["sam_disagreement"] <= 1
    expected = math.sqrt(summary["instability"] * summary["sam_disagreement"])
    assert summary["combined"] == pytest.approx(expected, abs=2e-4)
