import math

import numpy as np
import pytest
import torch

from osteo_engine.segmentation.uncertainty import module_disagreement, sample_maps


def _confident(classes: int, winner: int, h: int = 2, w: int = 3) -> torch.Tensor:
    logits = torch.full((classes, h, w), -20.0)
    logits[winner] = 20.0
    return logits


def test_total_entropy_is_expected_entropy_plus_mutual_information():
    torch.manual_seed(0)
    maps = sample_maps(torch.randn(3, 4, 8, 5, 6) * 3, torch.tensor([0.5, 0.3, 0.2]))
    np.testing.assert_allclose(maps.total, maps.expected + maps.mutual_information, atol=1e-5)
    assert (maps.mutual_information >= 0).all() and (maps.expected >= 0).all()
    assert maps.weights.sum() == pytest.approx(1.0) and maps.modules.shape == (3, 8, 5, 6)
    np.testing.assert_allclose(maps.mean.sum(0), 1.0, atol=1e-5)


def test_confident_samples_that_disagree_are_epistemic_and_agreeing_ones_are_certain():
    two_minds = torch.stack([_confident(8, 1)[None], _confident(8, 2)[None]])  # (K=2, S=1, C, h, w)
    maps = sample_maps(two_minds, torch.tensor([0.5, 0.5]))
    np.testing.assert_allclose(maps.mutual_information, math.log(2), atol=1e-4)
    np.testing.assert_allclose(maps.expected, 0, atol=1e-4)
    np.testing.assert_allclose(maps.variance, 0.5, atol=1e-4)  # two one-hots half apart: 2 classes × 0.25
    one_mind = torch.stack([_confident(8, 1)[None], _confident(8, 1)[None]])
    agreeing = sample_maps(one_mind, torch.tensor([0.5, 0.5]))
    assert agreeing.total.max() < 1e-4 and agreeing.variance.max() < 1e-6
    blurred = torch.zeros(2, 1, 8, 2, 3)  # every sample unsure alike: aleatoric, not epistemic
    maps = sample_maps(blurred, torch.tensor([0.5, 0.5]))
    np.testing.assert_allclose(maps.expected, math.log(8), atol=1e-4)
    np.testing.assert_allclose(maps.mutual_information, 0, atol=1e-4)
    np.testing.assert_allclose(maps.variance, 0, atol=1e-6)


def test_module_disagreement_weighs_pairs_by_routing_and_ignores_dead_modules():
    a = np.zeros((10, 10), np.uint8)
    a[2:8, 2:8] = 1
    b = np.zeros_like(a)
    b[2:8, 5:8] = 1  # half of a's bone 1
    b[0, 0] = 2  # bone 2 in b alone
    empty = np.zeros_like(a)
    assert module_disagreement([a, a], np.array([0.5, 0.5]), 3).tolist() == [0.0, 0.0, 0.0]
    assert module_disagreement([a, b], np.array([0.5, 0.5]), 3)[1:].tolist() == pytest.approx([0.5, 1.0])
    assert module_disagreement([a, a, empty], np.array([0.5, 0.5, 0.0]), 3)[1] == 0.0
    assert module_disagreement([a, empty], np.array([1.0, 0.0]), 3)[1] == 0.0
    three = module_disagreement([a, a, b], np.array([0.25, 0.25, 0.5]), 3)[1]
    assert three == pytest.approx((0.25 * 0.5 * 0.5 * 2) / (0.25 * 0.25 + 0.25 * 0.5 * 2))


def _segmentation(labels, samples, entropy, routing=(0.5, 0.5)):
    from osteo_engine.segmentation.predict import ModuleMap, SampleMap, Segmentation

    per_module = len(samples) // len(routing)
    return Segmentation(
        labels=labels,
        entropy=entropy,
        routing=list(routing),
        bones={},
        expected_entropy=np.zeros_like(entropy),
        mutual_information=entropy,
        modules=[ModuleMap(w, samples[k * per_module]) for k, w in enumerate(routing)],
        samples=[SampleMap(i // per_module, routing[i // per_module] / per_module, s) for i, s in enumerate(samples)],
    )


def test_samples_that_reproduce_the_raters_beat_their_mean_and_uncertainty_on_the_errors_scores_one():
    from osteo_engine.segmentation.uncertainty_eval import UncertaintyEvaluation, hungarian_matched_iou

    evaluation = UncertaintyEvaluation()
    for k in range(4):
        tight, loose = np.zeros((40, 40), np.uint8), np.zeros((40, 40), np.uint8)
        tight[10:20, 10 : 20 + k] = 1
        loose[8:22, 8 : 22 + 2 * k] = 1
        between = np.zeros_like(tight)
        between[9:21, 9 : 21 + k] = 1
        wrong = between != tight
        entropy = np.where(wrong, 1.0, 0.01).astype(np.float32) * (1 + k)  # more uncertain where more is wrong
        evaluation.add(_segmentation(between, [tight, loose], entropy), [tight, loose])
        assert hungarian_matched_iou([tight, loose], [loose, tight]) == 1.0
        junk = np.zeros_like(tight)
        junk[30:35, 30:35] = 1
        assert hungarian_matched_iou([tight, junk], [tight], np.array([1.0, 0.0])) == 1.0  # a dead module's sample
        assert hungarian_matched_iou([tight, junk], [tight]) < 0.6
    summary = evaluation.summary()
    assert summary["ged_samples"] == pytest.approx(0.0, abs=1e-9) and summary["ged_mean_map"] > 0.05
    assert summary["ged_reduction"] == 1.0 and summary["hm_iou"] == 1.0
    assert summary["sample_diversity"] == summary["rater_diversity"] > 0
    assert summary["effective_modules"] == pytest.approx(2.0)
    assert summary["flags_errors"]["total"]["pixel_auroc"] == 1.0
    assert summary["flags_errors"]["total"]["image_spearman"] == pytest.approx(1.0)


def test_expected_error_scores_the_label_map_against_the_models_own_samples():
    bone = np.zeros((20, 20), np.uint8)
    bone[5:15, 5:15] = 1
    half = bone.copy()
    half[5:15, 10:15] = 0  # Dice with `bone`: 2·50 / 150
    entropy = np.zeros(bone.shape, np.float32)
    assert _segmentation(bone, [bone, bone], entropy).expected_error() == 0.0
    assert _segmentation(bone, [bone, np.zeros_like(bone)], entropy).expected_error() == pytest.approx(0.5)
    unsure = _segmentation(bone, [bone, half], entropy, routing=(0.25, 0.75))
    assert unsure.expected_error() == pytest.approx(0.75 * (1 - 100 / 150))
    unsure.samples = []  # without the samples, each module's map stands for its samples
    assert unsure.expected_error() == pytest.approx(0.75 * (1 - 100 / 150))
    unsure.modules = []  # segment(..., modules=False) keeps no maps to score against
    with pytest.raises(ValueError, match="modules=True"):
        unsure.expected_error()
