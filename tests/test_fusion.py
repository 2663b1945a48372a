"""Radiogrammetry as probe features: missing values, the indices alone, and fused with encoder features."""

import numpy as np
import pytest

from osteo_engine.errors import ConfigError
from osteo_engine.evaluation import screening_metrics
from osteo_engine.fusion import fill_values, fused, fusion_probe_config, indices_of
from osteo_engine.radiogrammetry import FEATURES
from osteo_engine.ssl.data import PatchBank
from osteo_engine.ssl.probe import ProbeConfig, subject_scores, train_probe

BONES = ["ulna", "radius", "M1", "M2", "M3", "M4", "M5"]


def _bank(subjects=300, seed=0):
    """Subjects whose label lives in their M2 MCI (an image-level value) and weakly in the patch features."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(subjects) < 0.4).astype(int)
    mci = 0.45 - 0.08 * labels + rng.normal(0, 0.03, subjects)
    split = np.where(np.arange(subjects) < 0.6 * subjects, "train", "test")
    split[int(0.6 * subjects) : int(0.75 * subjects)] = "val"
    rows = [(s, b) for s in range(subjects) for b in BONES]
    index = np.array([s for s, _ in rows])
    indices = rng.normal(1.0, 0.1, (subjects, len(FEATURES))).astype(np.float32)
    indices[:, FEATURES.index("M2_MCI")] = mci
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
    assert fill == pytest.approx(np.nanmean(bank.radiogrammetry[fitted], 0), rel=1e-5)
    x = indices_of(bank, fill)
    assert not np.isnan(x).any()
    missing = np.isnan(bank.radiogrammetry)
    assert np.allclose(x[missing], np.broadcast_to(fill, x.shape)[missing])
    assert np.array_equal(x[~missing], bank.radiogrammetry[~missing].astype(np.float64))


def test_the_indices_alone_and_fused_beat_weak_encoder_features():
    bank, features = _bank()
    fill = fill_values(bank)
    encoder_only = _test_auc(features, bank)
    indices_only = _test_auc(indices_of(bank, fill), bank)
    both = _test_auc(fused(features, bank, fill), bank)
    assert fused(features, bank, fill).shape == (len(features), 32 + len(FEATURES))
    assert indices_only > 0.85 and both > 0.85 and both > encoder_only + 0.1


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
    assert list(loaded.subjects) == list(bank.subjects)
