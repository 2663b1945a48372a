"""Run folders: a resume state that is hostile, cut short or from another run is refused in one sentence."""

import io
import pickle
from dataclasses import replace

import pytest
import torch

from osteo_engine.cards import EncoderCard
from osteo_engine.errors import ConfigError
from osteo_engine.runs import RunFolder, load_checkpoint, write_model
from osteo_engine.segmentation.train import segment_preset, train_segmenter

from .segmentation.test_train import TINY, _interrupted_after, _Stop


class _Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def _hostile_pt() -> bytes:
    buffer = io.BytesIO()
    torch.save({"model": _Payload()}, buffer, pickle_module=pickle)
    return buffer.getvalue()


def test_a_hostile_resume_state_is_refused_without_advice_to_load_it_unsafely(tmp_path):
    run = RunFolder(tmp_path)
    (tmp_path / "resume.pt").write_bytes(_hostile_pt())
    with pytest.raises(ConfigError, match="resume.pt was refused") as refused:
        run.load_resume()
    assert "weights_only" not in str(refused.value) and str(tmp_path) in str(refused.value)


def test_a_truncated_resume_state_names_its_file(tmp_path):
    run = RunFolder(tmp_path)
    buffer = io.BytesIO()
    torch.save({"epoch": 1, "model": {"w": torch.zeros(1000)}}, buffer)
    (tmp_path / "resume.pt").write_bytes(buffer.getvalue()[:2000])
    with pytest.raises(ConfigError, match=r"resume.pt is truncated or corrupt"):
        run.load_resume()


def test_resuming_from_a_damaged_state_stops_in_one_sentence_and_keeps_the_checkpoints(small_cohort, tmp_path):
    data = [small_cohort / "manifest.csv"]
    config = replace(segment_preset("cpu-small"), epochs=2, **TINY)
    with pytest.raises(_Stop):
        train_segmenter(data, tmp_path / "r", config, events=_interrupted_after(1))
    last = load_checkpoint(tmp_path / "r" / "checkpoints" / "last.safetensors")
    for damage, message in ((_hostile_pt(), "was refused"), (b"PK\x03\x04" + b"\x00" * 10, "truncated or corrupt")):
        (tmp_path / "r" / "resume.pt").write_bytes(damage)
        with pytest.raises(ConfigError, match=message):
            train_segmenter(data, tmp_path / "r", config, resume=True)
    torch.save({"epoch": 1, "model": {"nothing": torch.zeros(1)}, "optimiser": {}}, tmp_path / "r" / "resume.pt")
    with pytest.raises(ConfigError, match="does not fit this run"):
        train_segmenter(data, tmp_path / "r", config, resume=True)
    again = load_checkpoint(tmp_path / "r" / "checkpoints" / "last.safetensors")
    assert all(torch.equal(last[0][k], again[0][k]) for k in last[0])


def test_a_checkpoint_with_nan_weights_is_refused(tmp_path):
    card = EncoderCard(method_config={}, patch_size=32)
    write_model(tmp_path / "m.safetensors", {"w": torch.tensor([1.0, float("nan")])}, card)
    with pytest.raises(ConfigError, match="m.safetensors holds weights that are not numbers"):
        load_checkpoint(tmp_path / "m.safetensors")
