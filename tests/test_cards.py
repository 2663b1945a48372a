import json

import pytest
import torch

from osteo_engine.cards import EncoderCard, ProbeCard, Provenance, SegmenterCard, SupervisedEncoderCard, data_hash
from osteo_engine.errors import ConfigError
from osteo_engine.runs import load_model, publish_checkpoint, write_model

from .conftest import REPO


def test_a_card_written_and_read_back_is_equal_and_keeps_fields_it_does_not_know(tmp_path):
    card = ProbeCard(threshold=0.3, encoder="run/last.safetensors", refer_policy={"margin": 0.1})
    path = write_model(tmp_path / "probe.safetensors", {"w": torch.zeros(2)}, card)
    written = json.loads(path.with_suffix(".json").read_text())
    assert written["model"] == "LinearProbe" and written["threshold"] == 0.3
    written["added_by_a_newer_version"] = {"x": 1}
    path.with_suffix(".json").write_text(json.dumps(written))
    _, again = load_model(path, ProbeCard)
    assert again.with_changes(extra={}) == card
    write_model(path, {"w": torch.zeros(2)}, again)
    assert json.loads(path.with_suffix(".json").read_text())["added_by_a_newer_version"] == {"x": 1}


def test_a_card_of_another_kind_or_without_a_required_field_is_refused_by_name(tmp_path):
    path = write_model(tmp_path / "enc.safetensors", {"w": torch.zeros(2)}, EncoderCard(method_config={}, patch_size=8))
    with pytest.raises(ConfigError, match="enc.json describes a SSLEncoder, not a LinearProbe"):
        load_model(path, ProbeCard)
    card = json.loads(path.with_suffix(".json").read_text())
    del card["patch_size"]
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ConfigError, match="enc.json lacks 'patch_size'"):
        load_model(path, EncoderCard)


def test_a_supervised_encoder_is_read_as_an_encoder_of_its_own_kind(tmp_path):
    card = SupervisedEncoderCard(method_config={"method": "supervised"}, patch_size=8, val_macro_f1=0.7)
    path = write_model(tmp_path / "enc.safetensors", {"w": torch.zeros(2)}, card)
    _, again = load_model(path, EncoderCard)
    assert isinstance(again, SupervisedEncoderCard) and again.val_macro_f1 == 0.7


def test_provenance_records_the_command_versions_and_a_hash_that_follows_the_data(tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("image,subject\na.png,s1\n")
    first = Provenance.capture("osteo segment train --data manifest.csv", [manifest])
    assert first.command.startswith("osteo segment train")
    assert {"python", "osteo_engine", "torch", "numpy"} <= set(first.versions)
    assert first.data[str(manifest)] == data_hash(manifest)
    manifest.write_text("image,subject\na.png,s2\n")
    assert data_hash(manifest) != first.data[str(manifest)]
    folder = tmp_path / "project"
    (folder / "cache").mkdir(parents=True)
    (folder / "project.json").write_text("{}")
    before = data_hash(folder)
    (folder / "cache" / "patches.npz").write_bytes(b"rebuilt")  # a cache is not data
    assert data_hash(folder) == before
    (folder / "project.json").write_text('{"raters": []}')
    assert data_hash(folder) != before
    with pytest.raises(ConfigError, match="does not exist"):
        data_hash(tmp_path / "missing.csv")


def test_the_bundled_cards_load_typed_and_publishing_keeps_their_provenance(tmp_path):
    models = REPO / "resources" / "models"
    _, segmenter = load_model(models / "segmenter.safetensors", SegmenterCard)
    assert segmenter.command.startswith("osteo segment train") and segmenter.evaluations
    _, probe = load_model(models / "screening" / "probe.safetensors", ProbeCard)
    assert 0 < probe.threshold < 1 and set(probe.refer_policy) == {"margin", "max_uncertainty", "min_bones", "score"}
    assert probe.refer_policy["score"] == "instability"  # the app's image score sized the bundled policy
    out = publish_checkpoint(models / "segmenter.safetensors", tmp_path / "copy.safetensors", {"x": {"dice": 1}})
    _, copy = load_model(out, SegmenterCard)
    assert copy.command == segmenter.command and copy.evaluations == {"x": {"dice": 1}}
    # a published copy published again (new evaluations) still names the run checkpoint it came from
    assert copy.source_checkpoint == segmenter.source_checkpoint == "runs/graft-e2/best.safetensors"
    assert copy.note == segmenter.note
    state, _ = load_model(models / "segmenter.safetensors", SegmenterCard)
    run = write_model(tmp_path / "run.safetensors", state, segmenter.with_changes(source_checkpoint=None))
    _, from_run = load_model(publish_checkpoint(run, tmp_path / "pub.safetensors", {}), SegmenterCard)
    assert from_run.source_checkpoint == str(run)  # a run's checkpoint published for the first time


def test_publishing_refuses_a_companion_without_its_card_before_writing_anything(tmp_path):
    import shutil

    models = REPO / "resources" / "models"
    shutil.copy(models / "segmenter.safetensors", tmp_path / "m.safetensors")
    shutil.copy(models / "segmenter.json", tmp_path / "m.json")
    shutil.copy(models / "segmenter.errors.safetensors", tmp_path / "m.errors.safetensors")  # its card left behind
    with pytest.raises(ConfigError, match="m.errors.safetensors has no card"):
        publish_checkpoint(tmp_path / "m.safetensors", tmp_path / "out" / "p.safetensors", {})
    assert not (tmp_path / "out").exists()


def test_the_bundled_demo_classifier_reads_the_inputs_its_card_chose():
    from osteo_engine.radiogrammetry import FEATURES
    from osteo_engine.screening_model import load_screening_model

    _, card = load_model(REPO / "resources" / "models" / "screening" / "probe.safetensors", ProbeCard)
    model = load_screening_model()
    fused = card.fusion.get("kept") == "encoder+radiogrammetry"
    assert (model.probe.fill is not None) == fused == bool(card.indices)
    assert set(card.indices) <= set(FEATURES) and model.probe.indices == tuple(card.indices)
    assert ("radiogrammetry" in model.names["probe"]) == fused
    if card.fusion.get("mode") == "auto":  # kept only when validation said the indices help
        scores = card.fusion["val_macro_f1"]
        assert fused == (scores["encoder+radiogrammetry"] > scores["encoder"])
