"""Radiogrammetry as probe features: missing values, the indices alone, and fused with encoder features."""

import numpy as np
import pytest

from osteo_engine.cards import ProbeCard
from osteo_engine.errors import ConfigError
from osteo_engine.evaluation import screening_metrics
from osteo_engine.fusion import (
    EMPHASES,
    READ,
    fill_values,
    fused,
    fusion_probe_config,
    image_indices,
    indices_of,
    train_fused_probe,
)
from osteo_engine.radiogrammetry import FEATURES, BoneMeasurement
from osteo_engine.ssl.data import PatchBank
from osteo_engine.ssl.probe import Probe, ProbeConfig, subject_scores, train_probe
from osteo_engine.ssl.probing import FittedProbe, chosen_inputs

BONES = ["ulna", "radius", "M1", "M2", "M3", "M4", "M5"]


def _bank(subjects=300, seed=0):
    """Subjects whose label lives in their M2 MCI and the hand's mean MCI (image-level values), and weakly in the
    patch features."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(subjects) < 0.4).astype(int)
    mci = 0.45 - 0.08 * labels + rng.normal(0, 0.03, subjects)
    split = np.where(np.arange(subjects) < 0.6 * subjects, "train", "test")
    split[int(0.6 * subjects) : int(0.75 * subjects)] = "val"
    rows = [(s, b) for s in range(subjects) for b in BONES]
    index = np.array([s for s, _ in rows])
    indices = rng.normal(1.0, 0.1, (subjects, len(FEATURES))).astype(np.float32)
    indices[:, FEATURES.index("M2_MCI")] = mci
    indices[:, FEATURES.index("hand_MCI")] = mci + rng.normal(0, 0.01, subjects)
    indices[rng.random(indices.shape) < 0.1] = np.nan  # bones flagged by the quality check
    features = rng.normal(size=(len(rows), 32))
    features[:, 0] += 0.3 * labels[index]
    bank = PatchBank(
        np.zeros((len(rows), 4, 4), np.float32),
        np.array([b for _, b in rows]),
        np.array([f"s{s}" for s in index]),
        labels[index],
        split[index],
        np.array([f"i{s}" for s in index]),
        [],
        indices[index],
        "px",
    )
    return bank, features


def _test_auc(x, bank):
    probe, _ = train_probe(x, bank, fusion_probe_config(ProbeConfig()))
    test = bank.splits == "test"
    _, labels, probs = subject_scores(bank.select(test), probe.patch_probabilities(x[test]))
    return screening_metrics(labels, probs, probe.threshold)["auc"]


def test_a_missing_index_becomes_the_training_mean_and_adds_nothing():
    bank, _ = _bank()
    fill = fill_values(bank)
    fitted = np.isin(bank.splits, ("train", "val"))
    read = bank.radiogrammetry[:, [FEATURES.index(name) for name in READ]]
    assert fill == pytest.approx(np.nanmean(read[fitted], 0), rel=1e-5)
    x = indices_of(bank, fill)
    assert not np.isnan(x).any() and x.shape == (len(read), len(READ))
    missing = np.isnan(read)
    assert np.allclose(x[missing], np.broadcast_to(fill, x.shape)[missing])
    assert np.array_equal(x[~missing], read[~missing].astype(np.float64))
    everything = indices_of(bank, fill_values(bank, FEATURES), FEATURES)
    assert everything.shape == bank.radiogrammetry.shape and not np.isnan(everything).any()


def test_the_indices_alone_and_fused_beat_weak_encoder_features():
    bank, features = _bank()
    fill = fill_values(bank)
    encoder_only = _test_auc(features, bank)
    indices_only = _test_auc(indices_of(bank, fill), bank)
    both = _test_auc(fused(features, bank, fill), bank)
    assert fused(features, bank, fill).shape == (len(features), 32 + len(READ))
    assert indices_only > 0.85 and both > 0.85 and both > encoder_only + 0.1


def test_a_fused_probe_shrinks_the_indices_less_than_hundreds_of_weak_features():
    bank, features = _bank(subjects=200)
    noise = np.random.default_rng(1).normal(size=(len(features), 480))
    x = fused(np.c_[features, noise], bank, fill_values(bank))
    test = bank.splits == "test"
    one_penalty, plain = train_probe(x, bank, fusion_probe_config(ProbeConfig()))
    probe, info = train_fused_probe(x, bank, ProbeConfig())
    assert plain["emphasis"] == 1.0 and info["emphasis"] in EMPHASES and info["emphasis"] > 1
    assert info["val_macro_f1"] >= plain["val_macro_f1"]  # the plain probe is one of the candidates
    scale = one_penalty.std[-1] / probe.std[-1] * probe.std[0] / one_penalty.std[0]
    assert scale == pytest.approx(info["emphasis"], rel=1e-3)  # kept in the probe as a smaller std
    auc = {}
    for name, p in (("one", one_penalty), ("fused", probe)):
        _, labels, probs = subject_scores(bank.select(test), p.patch_probabilities(x[test]))
        auc[name] = screening_metrics(labels, probs, p.threshold)["auc"]
    assert auc["fused"] > auc["one"] + 0.03  # 0.89 against 0.82 when written


def test_a_bank_without_radiogrammetry_is_refused_plainly():
    bank, _ = _bank(subjects=10)
    bank.radiogrammetry = None
    with pytest.raises(ConfigError, match="no radiogrammetry"):
        fill_values(bank)


def test_the_indices_travel_with_their_patches_through_select_and_the_cache(tmp_path):
    bank, _ = _bank(subjects=20)
    picked = bank.select(bank.bones == "M2")
    assert len(picked.radiogrammetry) == 20
    assert np.array_equal(picked.radiogrammetry, bank.radiogrammetry[bank.bones == "M2"], equal_nan=True)
    bank.save(tmp_path / "bank.npz")
    loaded = PatchBank.load(tmp_path / "bank.npz")
    assert np.array_equal(loaded.radiogrammetry, bank.radiogrammetry, equal_nan=True)
    assert loaded.radiogrammetry_unit == "px" and picked.radiogrammetry_unit == "px"
    assert list(loaded.subjects) == list(bank.subjects)


def _plain(bank, features):
    probe, info = train_probe(features, bank, ProbeConfig())
    return FittedProbe(probe, info, features, None)


@pytest.mark.slow
def test_auto_keeps_the_indices_only_when_validation_says_they_help():
    bank, features = _bank(subjects=120)
    plain = _plain(bank, features)
    assert chosen_inputs(plain, bank, ProbeConfig(), "off") == (plain, {})
    fitted, record = chosen_inputs(plain, bank, ProbeConfig(), "auto")
    assert record["kept"] == "encoder+radiogrammetry" and fitted.probe.fill is not None
    assert record["val_macro_f1"]["encoder+radiogrammetry"] > record["val_macro_f1"]["encoder"]
    assert fitted.features.shape[1] == features.shape[1] + len(READ) and fitted.probe.indices_unit == "px"
    useless = bank.select(np.arange(len(bank.bones)))
    useless.radiogrammetry = np.random.default_rng(1).normal(size=bank.radiogrammetry.shape).astype(np.float32)
    strong = features.copy()
    strong[:, 0] += 3.0 * bank.labels  # the encoder alone separates the classes; the indices hold no label
    fitted, record = chosen_inputs(_plain(useless, strong), useless, ProbeConfig(), "auto")
    assert record["kept"] == "encoder" and fitted.probe.fill is None


@pytest.mark.parametrize("unit", [None, "mixed"])
def test_fusion_refuses_a_bank_whose_lengths_are_not_in_one_known_unit(unit):
    bank, features = _bank(subjects=20)
    bank.radiogrammetry_unit = unit
    with pytest.raises(ConfigError, match="one unit"):
        chosen_inputs(_plain(bank, features), bank, ProbeConfig(), "on")


def test_a_fused_probe_keeps_its_fill_and_unit_and_refuses_other_indices(tmp_path):
    bank, features = _bank(subjects=40)
    fitted, _ = chosen_inputs(_plain(bank, features), bank, ProbeConfig(), "on")
    path = fitted.probe.save(tmp_path / "probe.safetensors", ProbeCard(threshold=0.5))
    loaded, card = Probe.load(path, features=features.shape[1])
    assert card.indices == list(READ) and loaded.indices_unit == "px"
    assert np.allclose(loaded.fill, fitted.probe.fill) and len(loaded.weight) == features.shape[1] + len(READ)
    with pytest.raises(ConfigError, match="its encoder gives"):
        Probe.load(path, features=features.shape[1] + 1)
    text = (tmp_path / "probe.json").read_text().replace('"hand_MCI"', '"hand_CTI"')
    (tmp_path / "probe.json").write_text(text)
    with pytest.raises(ConfigError, match="does not measure"):
        Probe.load(path, features=features.shape[1])


def test_a_probe_fitted_before_an_index_was_added_reads_the_indices_it_knows(tmp_path):
    # as the bundled demo probe was fitted: every metacarpal index but RBD, before the forearm and the summary
    older = tuple(f"{bone}_{kind}" for bone in ("M1", "M2", "M3", "M4", "M5") for kind in ("MCI", "T", "W", "RMD"))
    width, n = 32, 32 + len(older)
    probe = Probe(np.ones(n), 0.0, np.zeros(n), np.ones(n), 0.5, np.full(len(older), 2.0), "px", older)
    loaded, card = Probe.load(probe.save(tmp_path / "probe.safetensors", ProbeCard(threshold=0.5)), width)
    assert loaded.indices == probe.indices and "M2_RBD" not in card.indices
    values, _ = image_indices(_measured("px"), loaded.fill, "px", loaded.indices)
    assert len(values) == len(older) and values[loaded.indices.index("M2_RMD")] == pytest.approx(0.5)
    assert values[loaded.indices.index("M2_W")] == pytest.approx(8.0)
    everything, _ = image_indices(_measured("px"), np.zeros(len(FEATURES)), "px")
    assert everything[FEATURES.index("M2_RBD")] == pytest.approx(0.7)
    assert everything[FEATURES.index("hand_MCI")] == pytest.approx(0.4)  # the mean of five bones of MCI 0.4


def _measured(unit, mci=0.4):
    return {
        bone: BoneMeasurement(8.0, 2.0, mci, 1.0, 60.0, unit, 100, "ok", 0.5, 0.7)
        for bone in ("M1", "M2", "M3", "M4", "M5")
    }


def test_screening_reads_lengths_in_the_probe_s_unit_and_says_when_it_cannot():
    fill = np.arange(len(FEATURES), dtype=np.float64)
    measured = _measured("px")
    measured["M3"] = BoneMeasurement(None, None, None, None, None, "px", 0, "not found")
    same, note = image_indices(measured, fill, "px")
    assert note == ""
    assert same[FEATURES.index("M2_T")] == pytest.approx(2.0) and same[FEATURES.index("M2_MCI")] == pytest.approx(0.4)
    assert same[FEATURES.index("M3_T")] == fill[FEATURES.index("M3_T")]  # not found: the fill value
    other, note = image_indices({**measured, "M2": _measured("mm")["M2"]}, fill, "px")
    assert "mm" in note and "unmeasured" in note
    lengths = [i for i, name in enumerate(FEATURES) if name.endswith(("_T", "_W"))]
    assert np.array_equal(other[lengths], fill[lengths])
    assert other[FEATURES.index("M2_MCI")] == pytest.approx(0.4)  # unit-free indices still count
    summary, note = image_indices({**measured, "M2": _measured("mm")["M2"]}, np.zeros(len(READ)), "px", READ)
    assert note == "" and summary[0] == pytest.approx(0.4)  # the hand's summary reads no length
