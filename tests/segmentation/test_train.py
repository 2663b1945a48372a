import json
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from osteo_engine.cards import SegmenterCard, data_hash
from osteo_engine.cohort import read_manifest
from osteo_engine.errors import ConfigError
from osteo_engine.runs import load_checkpoint, write_model
from osteo_engine.segmentation.augment import SegmentAugmentConfig, augment
from osteo_engine.segmentation.data import Letterbox, load_samples
from osteo_engine.segmentation.image_scores import IMAGE_SCORES
from osteo_engine.segmentation.model import SegmenterConfig
from osteo_engine.segmentation.predict import load_segmenter, segment
from osteo_engine.segmentation.train import segment_preset, train_segmenter

TINY = dict(
    input_size=(64, 80),
    model=SegmenterConfig(base_channels=4, depth=2, modules=2, head_channels=8),
    samples=2,
    val_samples=2,
    batch_size=4,
)


def tiny_config(epochs=2):
    return replace(segment_preset("cpu-small"), epochs=epochs, **TINY)


def test_letterbox_round_trip():
    box = Letterbox.fit((300, 200), (64, 80))
    assert box.content == (80, 53)
    image = box.image(np.ones((300, 200), np.float32))
    assert image.shape == (80, 64) and image[:, 53:].max() == 0
    restored = box.restore(np.ones((3, 80, 64), np.float32))
    assert restored.shape == (3, 300, 200)


def test_samples_come_with_every_rater_and_the_manifest_splits(small_cohort):
    splits = load_samples(small_cohort / "manifest.csv", (64, 80))
    assert sum(len(v) for v in splits.values()) == 12
    sample = splits["train"][0]
    assert sample.annotations.shape == (3, 80, 64) and sample.image.shape == (80, 64)
    np.testing.assert_allclose(sample.weights, [1 / 3] * 3)


def test_augmentation_moves_image_and_labels_together():
    image = np.zeros((80, 64), np.float32)
    labels = np.zeros((2, 80, 64), np.uint8)
    image[20:40, 10:20] = 1.0
    labels[:, 20:40, 10:20] = 4
    rng = np.random.default_rng(0)
    config = SegmentAugmentConfig(invert=0.0, gamma=(1, 1), contrast=(1, 1), noise=0.0)
    for _ in range(5):
        out, maps = augment(image, labels, (80, 64), rng, replace(config))
        bright = out > 0.5
        assert np.array_equal(maps[0], maps[1])
        assert (bright & (maps[0] == 4)).sum() / max(bright.sum(), 1) > 0.85


class _Stop(Exception):
    pass


def _interrupted_after(epoch):
    def events(event):
        if event.kind == "epoch" and event.epoch >= epoch:
            raise _Stop  # as if the process died right after this epoch's checkpoint

    return events


def test_training_writes_a_run_and_resumes_exactly(small_cohort, tmp_path):
    data = [small_cohort / "manifest.csv"]
    straight = train_segmenter(data, tmp_path / "a", tiny_config(2))
    assert straight.epochs_done == 2
    lines = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    assert {"loss", "val_ged", "val_dice", "val_mean_dice", "val_effective_modules", "val_sample_diversity"} <= set(
        lines[0]
    )
    assert len(lines[0]["module_mass"]) == TINY["model"].modules and sum(lines[0]["module_mass"]) == pytest.approx(1)
    assert 1 <= lines[0]["val_effective_modules"] <= TINY["model"].modules
    assert set(lines[0]["val_dice"]) == {"ulna", "radius", "M1", "M2", "M3", "M4", "M5"}
    card = json.loads((tmp_path / "a" / "checkpoints" / "last.json").read_text())
    assert card["model"] == "MixtureSegmenter" and card["epoch"] == 2 and "metrics" in card
    assert card["provenance"]["data"] == {str(data[0]): data_hash(data[0])} and card["provenance"]["versions"]
    with pytest.raises(_Stop):
        train_segmenter(data, tmp_path / "b", tiny_config(2), events=_interrupted_after(1))
    train_segmenter(data, tmp_path / "b", tiny_config(2), resume=True)
    a = load_file(tmp_path / "a" / "checkpoints" / "last.safetensors")
    b = load_file(tmp_path / "b" / "checkpoints" / "last.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key])
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]


def test_a_run_folder_is_not_overwritten_and_resume_needs_the_same_settings(small_cohort, tmp_path):
    data = [small_cohort / "manifest.csv"]
    train_segmenter(data, tmp_path / "r", tiny_config(1))
    with pytest.raises(ConfigError, match="--resume"):
        train_segmenter(data, tmp_path / "r", tiny_config(1))
    with pytest.raises(ConfigError, match="different settings"):
        train_segmenter(data, tmp_path / "r", replace(tiny_config(1), lr=0.5), resume=True)


def test_predict_gives_full_size_maps_and_a_summary(small_cohort, tmp_path):
    train_segmenter([small_cohort / "manifest.csv"], tmp_path / "r", tiny_config(1))
    segmenter = load_segmenter(tmp_path / "r" / "checkpoints" / "best.safetensors", device="cpu")
    image = cv2.imread(str(small_cohort / "images" / "P00001.png"), cv2.IMREAD_UNCHANGED) / 65535.0
    result = segment(image.astype(np.float32), segmenter, samples=2)
    assert result.labels.shape == image.shape and result.labels.dtype == np.uint8
    assert result.entropy.shape == image.shape and result.entropy.min() >= 0
    assert len(result.routing) == 2 and abs(sum(result.routing) - 1) < 1e-5
    summary = result.summary()
    assert set(summary["bones"]) == {"ulna", "radius", "M1", "M2", "M3", "M4", "M5"}
    # publishing keeps the weights and records evaluations in the model card
    from osteo_engine.runs import publish_checkpoint

    published = publish_checkpoint(
        tmp_path / "r" / "checkpoints" / "best.safetensors",
        tmp_path / "m.safetensors",
        {"atlas_val": {"mean_dice": 0.5}},
        note="init: none",
    )
    card = json.loads(published.with_suffix(".json").read_text())
    assert card["evaluations"]["atlas_val"]["mean_dice"] == 0.5 and card["model"] == "MixtureSegmenter"
    assert card["note"] == "init: none"
    again = segment(image.astype(np.float32), load_segmenter(published, device="cpu"), samples=2)
    assert again.labels.shape == image.shape


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no segmentation model"):
        load_segmenter(tmp_path / "none.safetensors")


@pytest.mark.parametrize("name", ["cpu-small", "paper"])
def test_presets_build_a_model_that_accepts_their_input_size(name):
    from osteo_engine.segmentation.model import MixtureSegmenter

    config = segment_preset(name)
    model = MixtureSegmenter(config.model)
    width, height = config.input_size
    multiple = 2**config.model.depth
    assert width % multiple == 0 and height % multiple == 0
    assert config.model.modules * config.samples >= 2  # the OT loss needs several samples
    with torch.inference_mode():
        out = model(
            torch.rand(
                1, 1, height // 4 // multiple * multiple or multiple, width // 4 // multiple * multiple or multiple
            ),
            samples=1,
        )
    assert out.logits.shape[3] == 8
    with pytest.raises(ConfigError, match="unknown preset"):
        segment_preset("huge")
    with pytest.raises(ConfigError, match="held for less"):
        segment_preset("cpu-small", hold_fraction=0.8)
    assert segment_preset("cpu-small", hold_fraction=0.8, anneal_fraction=0.0).anneal_fraction == 0.0
    assert segment_preset("cpu-small", samples=4).samples == 4
    with pytest.raises(ConfigError, match="at least one sample"):
        segment_preset("cpu-small", samples=0)
    assert segment_preset("cpu-small", module_cap=0.5).module_cap == 0.5
    with pytest.raises(ConfigError, match="module cap"):
        segment_preset("cpu-small", module_cap=0.2)  # four modules cannot hold a rater at 0.2 each
    with pytest.raises(ConfigError, match="module share"):
        segment_preset("cpu-small", module_share=0.2)
    assert segment_preset("cpu-small", latent_size=2).model.latent_size == 2
    with pytest.raises(ConfigError, match="latent"):
        segment_preset("cpu-small", latent_size=0)


def test_repeats_weight_a_source_and_must_match_the_sources(small_cohort, tmp_path):
    config = replace(tiny_config(epochs=1), repeats=(2,))
    result = train_segmenter([small_cohort / "manifest.csv"], tmp_path / "run", config)
    card = json.loads((result.run / "checkpoints" / "last.json").read_text())
    plain = len(load_samples(small_cohort / "manifest.csv", (64, 80))["train"])
    assert card["train_images"] == 2 * plain
    with pytest.raises(ConfigError, match="repeats"):
        train_segmenter([small_cohort / "manifest.csv"], tmp_path / "run2", replace(config, repeats=(2, 1)))


def test_a_warm_start_begins_from_the_given_weights_and_needs_their_architecture(small_cohort, tmp_path):
    data = [small_cohort / "manifest.csv"]
    first = train_segmenter(data, tmp_path / "first", tiny_config(1))
    start = first.run / "checkpoints" / "last.safetensors"
    # with a zero learning rate, a warm-started run keeps the weights it started from
    warm = train_segmenter(data, tmp_path / "warm", replace(tiny_config(1), init=str(start), lr=0.0))
    a, b = load_file(start), load_file(warm.run / "checkpoints" / "last.safetensors")
    for key in a:
        if "running" not in key and "num_batches" not in key:  # batch-norm statistics still move
            torch.testing.assert_close(a[key], b[key])
    other = replace(tiny_config(1), init=str(start), model=SegmenterConfig(base_channels=8, depth=2, modules=2))
    with pytest.raises(ConfigError, match="architecture"):
        train_segmenter(data, tmp_path / "other", other)


def test_a_smaller_trunk_learning_rate_holds_the_unet_while_the_heads_learn(small_cohort, tmp_path):
    data = [small_cohort / "manifest.csv"]
    start = train_segmenter(data, tmp_path / "first", tiny_config(1)).run / "checkpoints" / "last.safetensors"
    held = replace(tiny_config(1), init=str(start), trunk_lr_scale=1e-6)
    after = load_file(train_segmenter(data, tmp_path / "held", held).run / "checkpoints" / "last.safetensors")
    before = load_file(start)
    for key in before:
        if key.startswith("unet."):
            torch.testing.assert_close(before[key], after[key])
    assert not torch.allclose(before["heads.w_scale"], after["heads.w_scale"])
    for scale in (0.0, 1.5):
        with pytest.raises(ConfigError, match="share of the learning rate"):
            segment_preset("cpu-small", trunk_lr_scale=scale)
        with pytest.raises(ConfigError, match="background's weight"):
            segment_preset("cpu-small", background_weight=scale)


def test_the_background_weight_of_training_is_undone_when_the_model_is_loaded(tiny_segmenter, tmp_path):
    import math

    trained = tiny_segmenter.parent / "run" / "checkpoints" / "last.safetensors"  # the card training wrote
    state, card = load_checkpoint(trained)
    offset = card["background_logit_offset"]
    assert offset == pytest.approx(-math.log(segment_preset("cpu-small").background_weight))
    loaded = load_segmenter(trained).model.heads.biases[-1].detach()
    torch.testing.assert_close(loaded[:, 0], state["heads.biases.2"][:, 0] + offset)
    torch.testing.assert_close(loaded[:, 1:], state["heads.biases.2"][:, 1:])
    # a card from before the offset (none written) loads the weights as they are
    older = {k: v for k, v in card.items() if k != "background_logit_offset"}
    older_file = write_model(tmp_path / "older.safetensors", state, SegmenterCard.from_json(older, "older.json"))
    plain = load_segmenter(older_file)
    torch.testing.assert_close(plain.model.heads.biases[-1].detach(), state["heads.biases.2"])


def test_validation_scores_the_label_maps_that_prediction_will_draw(small_cohort, tiny_segmenter):
    from osteo_engine.segmentation.predict import offset_background
    from osteo_engine.segmentation.validation import validate

    config, offset = tiny_config(), 0.5  # the tiny model finds no bone at the presets' 2.3
    model = load_segmenter(tiny_segmenter, device="cpu").model  # published with no offset
    val = load_samples(small_cohort / "manifest.csv", config.input_size)["train"][:3]

    def scores(background_offset):
        torch.manual_seed(0)
        found = validate(model, val, config, torch.device("cpu"), background_offset)
        return [found["val_ged"], found["val_mean_dice"], *found["val_dice"].values()]

    in_training = scores(offset)
    plain = scores(0.0)
    offset_background(model, offset)  # what load_segmenter does with a card's offset
    assert scores(0.0) == pytest.approx(in_training)
    assert in_training[1] != pytest.approx(plain[1])


def test_phantoms_are_scored_against_their_true_maps_or_their_raters(small_cohort, tiny_segmenter):
    from osteo_engine.segmentation.evaluate import evaluate_segmenter

    segmenter = load_segmenter(tiny_segmenter, device="cpu")
    manifest = small_cohort / "manifest.csv"
    raters = evaluate_segmenter(segmenter, manifest, "train", samples=1)
    truth = evaluate_segmenter(segmenter, manifest, "train", samples=1, against_truth=True)
    assert raters.images == truth.images > 0
    # three raters per phantom image, one true map
    assert len(raters.dice["M3"]) == 3 * len(truth.dice["M3"]) > 0
    assert truth.summary()["dice"] != raters.summary()["dice"]
    uncertainty = raters.summary()["uncertainty"]
    assert uncertainty["rater_diversity"] > 0 and 1 <= uncertainty["effective_modules"] <= 4
    assert truth.summary()["uncertainty"]["rater_diversity"] is None  # one true map: no raters to compare
    assert uncertainty["ged_samples"] is not None
    assert len(uncertainty["module_six_bones_rate"]) == segmenter.model.config.modules
    assert set(uncertainty["flags_errors"]) == {"total", "mutual_information", "expected_error", "instability"}
    for score in ("expected_error", "instability"):
        assert uncertainty["flags_errors"][score]["pixel_auroc"] is None  # image scores, not maps
    # the score the app orders images by is named, and one a Segmentation gives (measured with --second-opinion)
    assert uncertainty["app_score"] == "combined" in IMAGE_SCORES


def test_rater_agreement_scores_every_pair_of_raters_or_each_rater_against_the_truth(small_cohort, capsys):
    from osteo_engine.segmentation.evaluate import rater_agreement
    from training_cli.main import main

    manifest = small_cohort / "manifest.csv"
    pairs, truth = rater_agreement(manifest, "train"), rater_agreement(manifest, "train", against_truth=True)
    assert pairs.images == truth.images > 0
    # three raters per phantom: three pairs, three comparisons with the truth
    assert len(pairs.dice["M4"]) == len(truth.dice["M4"]) == 3 * truth.images
    for evaluation in (pairs, truth):
        assert all(0.75 < d < 0.995 for d in evaluation.dice["M4"])
    # raters drawn around the truth agree with it better than with each other
    assert truth.summary()["mean_dice"] > pairs.summary()["mean_dice"]
    assert "all_bones_found_rate" not in truth.summary()  # raters' maps are not a model's findings
    with pytest.raises(ConfigError, match="no external image"):
        rater_agreement(manifest, "external")
    # `osteo segment agreement` reports the same figures
    assert main(["segment", "agreement", "--data", str(manifest), "--split", "train", "--truth", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dice"] == truth.summary()["dice"]


def test_the_best_checkpoint_is_chosen_by_validation_ged_unless_dice_is_asked_for(small_cohort, tmp_path):
    from osteo_engine.segmentation.train import selection_score

    sharper = {"loss": 1.0, "val_ged": 0.20, "val_mean_dice": 0.40}
    overlapping = {"loss": 1.0, "val_ged": 0.30, "val_mean_dice": 0.50}
    assert selection_score(sharper, "ged") > selection_score(overlapping, "ged")
    assert selection_score(overlapping, "dice") > selection_score(sharper, "dice")
    assert selection_score({"loss": 0.7}, "ged") == -0.7  # no validation images: the training loss decides
    train_segmenter([small_cohort / "manifest.csv"], tmp_path / "r", tiny_config(2))
    metrics = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    card = json.loads((tmp_path / "r" / "checkpoints" / "best.json").read_text())
    assert card["selected_by"] == "lowest validation GED"
    assert card["epoch"] == min(metrics, key=lambda m: m["val_ged"])["epoch"]
    with pytest.raises(ConfigError, match="checkpoint selection"):
        segment_preset("cpu-small", select_by="luck")


def test_a_run_can_choose_its_checkpoint_by_the_ged_of_full_size_samples(small_cohort, tmp_path):
    from osteo_engine.segmentation.validation import validate_full_size, validation_images

    manifest = small_cohort / "manifest.csv"
    config = replace(tiny_config(2), select_by="ged-full", background_weight=0.5)
    train_segmenter([manifest], tmp_path / "r", config)
    metrics = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    card = json.loads((tmp_path / "r" / "checkpoints" / "best.json").read_text())
    assert card["selected_by"] == "lowest validation GED at full size"
    assert card["epoch"] == min(metrics, key=lambda m: m["val_ged_full"])["epoch"]
    # the figure is the published model's: its card's offset applied as load_segmenter applies it
    last = load_segmenter(tmp_path / "r" / "checkpoints" / "last.safetensors", device="cpu")
    images = validation_images([manifest], config.seed)
    assert len(images) == sum(r.split == "val" for r in read_manifest(manifest).rows) > 0
    applied = last.card.with_changes(background_logit_offset=0.0)  # load_segmenter has added it to the weights
    again = validate_full_size(last.model, images, applied, config.val_samples, torch.device("cpu"))
    assert again["val_ged_full"] == pytest.approx(metrics[-1]["val_ged_full"], abs=1e-6)
