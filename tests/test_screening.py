import math

import pytest

from osteo_engine.radiogrammetry import MEASURED
from osteo_engine.screening import DISCLAIMER, ReferPolicy, decide

from .screening_models import random_screening_model

POLICY = ReferPolicy(min_bones=5, max_uncertainty=0.3, margin=0.05)


def test_confident_answers_on_either_side_of_the_threshold():
    assert decide(0.8, 7, 0.1, 0.4, POLICY)[0] == "osteoporosis"
    assert decide(0.1, 7, 0.1, 0.4, POLICY)[0] == "normal"


def test_unreliable_answers_are_referred_with_every_reason():
    decision, reasons = decide(0.42, 3, 0.5, 0.4, POLICY)
    assert decision == "refer" and len(reasons) == 3
    assert any("3 of 7 bones" in r for r in reasons)
    assert any("uncertain" in r for r in reasons)
    assert any("within 0.05" in r for r in reasons)
    assert decide(math.nan, 0, 0.1, 0.4, POLICY)[0] == "refer"


@pytest.mark.parametrize("form", ["--json", "--csv", None])
def test_every_form_of_a_screening_answer_says_it_is_a_research_tool(tiny_segmenter, tmp_path, capsys, form):
    import csv
    import io
    import json

    from training_cli.main import main

    from .conftest import SAMPLE_DICOM

    random_screening_model(tmp_path)
    code = main(
        ["screen", str(SAMPLE_DICOM), "--model", str(tmp_path), "--segmenter", str(tiny_segmenter)]
        + ([form] if form else [])
    )
    out = capsys.readouterr().out
    assert code == 0
    if form == "--json":
        told = json.loads(out)["disclaimer"]
    elif form == "--csv":
        told = next(csv.DictReader(io.StringIO(out)))["disclaimer"]
    else:
        told = out
    assert DISCLAIMER in told and "not a diagnosis" in told and "Research tool" in told


def test_a_fused_probe_reads_the_image_s_radiogrammetry_and_says_so(tiny_segmenter, tmp_path):
    from osteo_engine.io import load_radiograph
    from osteo_engine.screening import screen
    from osteo_engine.screening_model import load_screening_model

    from .conftest import SAMPLE_DICOM

    image = load_radiograph(SAMPLE_DICOM)
    answers = {}
    for weight in (0.0, 1.0):
        folder = tmp_path / str(weight)
        folder.mkdir()
        random_screening_model(folder, indices_weight=weight)
        model = load_screening_model(folder, tiny_segmenter)
        assert "radiogrammetry" in model.names["probe"]
        answers[weight] = screen(image.pixels, model, image.pixel_spacing_mm[0])
    assert answers[0.0].probability == pytest.approx(0.5)  # the encoder's features weigh nothing
    # each index is a positive length or ratio, or the fill value 2.0: their sum drives the probability up
    assert answers[1.0].probability > 0.9
    measured = [m for m in answers[1.0].radiogrammetry["bones"].values() if m["T"] is not None]
    assert bool(measured) == ("learned them in px" in answers[1.0].radiogrammetry.get("fusion_note", ""))


def test_osteo_screen_answers_every_image_as_one_json_line(tiny_segmenter, tmp_path, capsys):
    import json
    import shutil

    from training_cli.main import main

    from .conftest import SAMPLE_DICOM

    model = tmp_path / "model"
    model.mkdir()
    random_screening_model(model)
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(SAMPLE_DICOM, images / "a.dcm")
    (images / "broken.png").write_bytes(b"not a png")
    code = main(["screen", str(images), "--model", str(model), "--segmenter", str(tiny_segmenter), "--json"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 2 and len(lines) == 2  # the broken file is reported, the good one answered
    good = next(r for r in lines if r["image"] == "a.dcm")
    assert good["decision"] in ("normal", "osteoporosis", "refer") and isinstance(good["probability"], float)
    assert set(good["bones"]) == {"ulna", "radius", "M1", "M2", "M3", "M4", "M5"}
    assert all(set(v) == {"present", "probability", "spread"} for v in good["bones"].values())
    assert "not a diagnosis" in good["disclaimer"] and good["reasons"]
    assert (
        set(good["timings_s"]) == {"segment", "classify", "radiogrammetry"} and good["model"]["probe"] == "test probe"
    )
    assert set(good["radiogrammetry"]["bones"]) == set(MEASURED)  # each with its quality
    assert all(
        {"T", "W", "MCI", "BHI", "L", "unit", "n_profiles", "quality"} <= set(m)
        for m in good["radiogrammetry"]["bones"].values()
    )
    assert set(good["orientation"]) == {"quarter_turns", "inverted"}
    assert "error" in next(r for r in lines if r["image"] == "broken.png")


def test_a_refer_policy_limits_the_image_score_it_names(tiny_segmenter, tmp_path):
    import json

    from osteo_engine.io import load_radiograph
    from osteo_engine.screening import screen_image, segmentation_uncertainty
    from osteo_engine.screening_model import load_screening_model
    from osteo_engine.segmentation.predict import segment

    from .conftest import SAMPLE_DICOM

    random_screening_model(tmp_path)  # a policy saved before policies named their score
    pixels = load_radiograph(SAMPLE_DICOM).pixels
    seg = segment(pixels, load_screening_model(tmp_path, tiny_segmenter).segmenter)
    screened = screen_image(pixels, load_screening_model(tmp_path, tiny_segmenter))
    assert screened.segmentation.instability is None  # the turned readings are not made for a score not limited
    old = screened.result.to_json()
    assert old["uncertainty_score"] == "expected_error"
    assert old["uncertainty"] == pytest.approx(seg.expected_error(), abs=1e-4)
    card = json.loads((tmp_path / "probe.json").read_text())
    card["refer_policy"] |= {"score": "instability", "max_uncertainty": 0.0}
    (tmp_path / "probe.json").write_text(json.dumps(card))
    new = screen_image(pixels, load_screening_model(tmp_path, tiny_segmenter)).result.to_json()
    assert new["uncertainty_score"] == "instability" and new["uncertainty"] == pytest.approx(seg.instability, abs=1e-4)
    assert segmentation_uncertainty(new).startswith("instability ")
    assert new["decision"] == "refer" and any("(instability " in r for r in new["reasons"])


@pytest.mark.slow
def test_a_refer_policy_on_the_combined_score_has_sam_give_its_second_opinion(tiny_segmenter, tmp_path):
    import json
    import math

    from osteo_engine.io import load_radiograph
    from osteo_engine.screening import screen_image, segmentation_uncertainty
    from osteo_engine.screening_model import load_screening_model

    from .conftest import SAMPLE_DICOM

    random_screening_model(tmp_path)
    card = json.loads((tmp_path / "probe.json").read_text())
    card["refer_policy"] |= {"score": "combined", "max_uncertainty": 0.0}
    (tmp_path / "probe.json").write_text(json.dumps(card))
    screened = screen_image(load_radiograph(SAMPLE_DICOM).pixels, load_screening_model(tmp_path, tiny_segmenter))
    seg, result = screened.segmentation, screened.result.to_json()
    assert seg.sam_disagreement is not None and seg.instability is not None
    assert result["uncertainty"] == pytest.approx(math.sqrt(seg.instability * seg.sam_disagreement), abs=1e-4)
    assert segmentation_uncertainty(result).startswith("instability and SAM disagreement ")
    assert result["decision"] == "refer"


def _screened(n=200, seed=0):
    import numpy as np

    from osteo_engine.screening_model import ScreenedImage

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    probs = np.clip(0.5 + (labels - 0.5) * 0.4 + rng.normal(0, 0.2, n), 0, 1)
    return [ScreenedImage(int(y), float(p), 7, float(u), "") for y, p, u in zip(labels, probs, rng.gamma(2, 0.05, n))]


def test_the_calibrated_refer_policy_refers_the_target_share_and_no_more():
    from osteo_engine.screening_model import calibrate_refer_policy, refer_rate

    screened = _screened()
    policy = calibrate_refer_policy(screened, 0.5, target_refer=0.15, uncertainty_share=0.05)
    rate = refer_rate(screened, 0.5, policy)
    assert 0.12 <= rate <= 0.15 and policy.margin > 0
    assert sum(s.uncertainty > policy.max_uncertainty for s in screened) <= 0.05 * len(screened)
    wider = ReferPolicy(policy.min_bones, policy.max_uncertainty, policy.margin + 0.02)
    assert refer_rate(screened, 0.5, wider) > 0.15  # the margin is the widest within the target


def test_export_packages_a_half_precision_encoder_with_a_calibrated_card(
    small_cohort, tiny_segmenter, tmp_path, capsys
):
    import json

    from osteo_engine.screening_model import SYNTHETIC_NOTE, load_screening_model
    from training_cli.main import main

    trained = tmp_path / "trained"
    trained.mkdir()
    random_screening_model(trained, threshold=0.5)
    out = tmp_path / "model"
    manifest = str(small_cohort / "manifest.csv")
    export = ["export-screening", "--encoder", str(trained / "encoder.safetensors"), "--probe", str(trained)]
    export += ["--data", manifest, "--out", str(out), "--segmenter", str(tiny_segmenter), "--json"]
    assert main([*export, "--synthetic"]) == 0
    assert (out / "encoder.safetensors").stat().st_size < 0.6 * (trained / "encoder.safetensors").stat().st_size
    probe_card = json.loads((out / "probe.json").read_text())
    assert probe_card["trained_on"] == SYNTHETIC_NOTE
    calibration = probe_card["refer_calibration"]
    assert calibration["calibration"]["images"] >= 1 and 0 <= calibration["test"]["refer_rate"] <= 1
    assert calibration["calibrated_on"].endswith("train+val")
    model = load_screening_model(out, tiny_segmenter)
    assert model.names["trained_on"] == SYNTHETIC_NOTE
    assert model.policy == ReferPolicy(**probe_card["refer_policy"])
    assert main([*export, "--calibration", manifest]) == 0
    sized = json.loads((out / "probe.json").read_text())["refer_calibration"]
    assert sized["calibrated_on"] == small_cohort.name and sized["calibration"]["images"] == 12  # every split
    capsys.readouterr()
    assert main([*export, "--progress-json"]) == 0  # as the Jobs panel starts it
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[-1]["event"] == "done" and events[-1]["path"] == str(out)
    assert any(e["event"] == "progress" for e in events)
    assert (
        main(
            [
                "audit-screening",
                "--data",
                str(small_cohort / "manifest.csv"),
                "--model",
                str(out),
                "--segmenter",
                str(tiny_segmenter),
                "--json",
            ]
        )
        == 0
    )
    audited = json.loads(capsys.readouterr().out)
    assert audited["images"] == 12 and set(audited["refer_reasons"]) == {
        "outside_population",
        "not_a_number",
        "too_few_bones",
        "uncertain_segmentation",
        "near_threshold",
    }


def test_the_text_answer_says_how_a_turned_or_inverted_file_was_read():
    from training_cli.screen_commands import _text

    bones = {
        b: {"present": b != "M5", "probability": None if b == "M5" else 0.3}
        for b in ("ulna", "radius", "M1", "M2", "M3", "M4", "M5")
    }
    result = {
        "image": "a.png",
        "decision": "normal",
        "probability": 0.3,
        "threshold": 0.5,
        "uncertainty": 0.1,
        "reasons": ["the probability 0.30 is below the threshold 0.50."],
        "bones": bones,
        "orientation": {"quarter_turns": 1, "inverted": True},
        "radiogrammetry": {
            "bones": {"M2": {"T": 2.0, "W": 8.0, "MCI": 0.5, "BHI": 0.6, "unit": "mm", "quality": "ok"}},
            "MCI_M2_M4": None,
        },
    }
    text = _text(result)
    assert "NORMAL" in text and "M4 0.30" in text and "M5" not in text
    assert "radiogrammetry (mm): M2–M4 not all measured; M2 0.50 (T 2.00, W 8.00)" in text
    assert "read turned 90° counter-clockwise and with inverted contrast" in text
    upright = _text({**result, "orientation": {"quarter_turns": 0, "inverted": False}})
    assert "read " not in upright
