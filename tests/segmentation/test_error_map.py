"""The learned error map: its features, its fitting, its file beside the segmenter and its use in segment."""

import shutil

import cv2
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from osteo_engine.cards import ErrorMapCard
from osteo_engine.errors import ConfigError
from osteo_engine.segmentation.error_map import (
    CONTINUOUS,
    GRID_PIXELS,
    ErrorMap,
    companion_path,
    load_error_map,
    on_grid,
    pixel_features,
    save_error_map,
    train_error_classifier,
)


def _hand(shape=(200, 160)):
    """A radiograph with two bright bars (labels 3 and 4) on soft tissue, and its label map."""
    pixels = np.full(shape, 0.3, np.float32)
    labels = np.zeros(shape, np.uint8)
    for value, columns in ((3, slice(40, 60)), (4, slice(100, 120))):
        pixels[30:170, columns] = 0.8
        labels[30:170, columns] = value
    flat = np.zeros(shape, np.float32)
    return pixels, labels, flat, flat


def test_features_are_signed_by_the_label_and_relative_to_the_hands_own_bone_and_tissue():
    pixels, labels, entropy, mi = _hand()
    features = pixel_features(pixels, labels, entropy, mi)
    assert features.shape == (*labels.shape, len(CONTINUOUS)) and features.dtype == np.float32
    distance, intensity = features[..., 2], features[..., 3]
    assert (distance[labels > 0] >= 0).all() and (distance[labels == 0] <= 0).all()
    assert intensity[100, 50] == pytest.approx(1) and intensity[100, 80] == pytest.approx(0)
    inverted = pixel_features(1 - pixels, labels, entropy, mi)  # bone dark: the same features
    np.testing.assert_allclose(inverted, features, atol=1e-4)


def test_an_empty_label_map_gives_finite_features():
    pixels, labels, entropy, mi = _hand()
    features = pixel_features(pixels, np.zeros_like(labels), entropy, mi)
    assert np.isfinite(features).all() and (features[..., 3:7] == 0).all()


def _planted(n: int, seed: int):
    """Pixels whose label is wrong where a bone-labelled pixel is as dark as soft tissue (feature 3 low), a rule
    the entropy (feature 0, noise here) knows nothing of."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, len(CONTINUOUS))).astype(np.float32)
    labels = rng.integers(0, 8, n).astype(np.uint8)
    wrong = (labels > 0) & (features[:, 3] < -0.5) | (rng.random(n) < 0.02)
    return features, labels, wrong


@pytest.mark.slow
def test_the_classifier_learns_errors_that_the_entropy_cannot_see():
    features, labels, wrong = _planted(40_000, 0)
    error_map = ErrorMap(train_error_classifier(features, labels, wrong, epochs=15), ErrorMapCard())
    held_out = _planted(20_000, 1)
    probability = error_map.probability(held_out[0], held_out[1])
    assert probability.min() >= 0 and probability.max() <= 1
    assert roc_auc_score(held_out[2], probability) > 0.9
    assert roc_auc_score(held_out[2], held_out[0][:, 0]) < 0.6


def test_a_classifier_needs_right_and_wrong_pixels():
    features, labels, wrong = _planted(1000, 0)
    with pytest.raises(ValueError, match="right and .* wrong"):
        train_error_classifier(features, labels, np.zeros_like(wrong))
    features[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        train_error_classifier(features, labels, wrong)


def test_an_error_map_round_trips_and_a_foreign_or_damaged_file_is_refused(tmp_path):
    features, labels, wrong = _planted(5000, 0)
    error_map = ErrorMap(
        train_error_classifier(features, labels, wrong, epochs=1), ErrorMapCard(features=list(CONTINUOUS))
    )
    path = save_error_map(tmp_path / "m.errors.safetensors", error_map)
    np.testing.assert_array_equal(
        load_error_map(path).probability(features, labels), error_map.probability(features, labels)
    )
    other = save_error_map(tmp_path / "o.safetensors", ErrorMap(error_map.state, ErrorMapCard(features=["a"])))
    with pytest.raises(ConfigError, match="other features"):
        load_error_map(other)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ConfigError):
        load_error_map(path)


def test_a_large_radiographs_map_is_made_on_the_grid_and_enlarged_to_its_size():
    features, labels, wrong = _planted(5000, 0)
    error_map = ErrorMap(train_error_classifier(features, labels, wrong, epochs=1), ErrorMapCard())
    pixels, labels, entropy, mi = (cv2.resize(m, (1600, 2000), interpolation=cv2.INTER_NEAREST) for m in _hand())
    assert on_grid(pixels, labels)[1].size <= GRID_PIXELS
    probability = error_map.map(pixels, labels, entropy, mi)
    assert probability.shape == labels.shape and probability.dtype == np.float32
    assert 0 <= probability.min() <= probability.max() <= 1


@pytest.mark.slow
def test_fitted_beside_a_segmenter_it_is_used_by_segment_evaluate_and_publish(small_cohort, tiny_segmenter, tmp_path):
    from osteo_engine.io import load_radiograph
    from osteo_engine.runs import publish_checkpoint
    from osteo_engine.segmentation.error_fit import ErrorMapRequest, fit_error_map_job
    from osteo_engine.segmentation.evaluate import evaluate_segmenter
    from osteo_engine.segmentation.predict import load_segmenter, segment

    model = tmp_path / "seg.safetensors"
    for suffix in (".safetensors", ".json"):
        shutil.copy(tiny_segmenter.with_suffix(suffix), model.with_suffix(suffix))
    manifest = small_cohort / "manifest.csv"
    result = fit_error_map_job(ErrorMapRequest(data=(manifest,), model=model, pixels_per_manifest=20_000, epochs=1))
    assert result.path == companion_path(model) and result.train_pixels > 0
    assert set(result.evaluations[str(manifest)]["pixel_auroc"]) == {"total", "mutual_information", "error"}

    segmenter = load_segmenter(model)
    assert segmenter.error_map is not None
    pixels = load_radiograph(next((small_cohort / "images").iterdir())).pixels
    seg = segment(pixels, segmenter)
    assert seg.error.shape == seg.labels.shape and 0 <= seg.error.min() <= seg.error.max() <= 1
    assert segment(pixels, segmenter, modules=False).error is None  # patch banks do not pay for it
    flags = evaluate_segmenter(segmenter, manifest, "val").summary()["uncertainty"]["flags_errors"]
    assert flags["error"]["pixel_auroc"] is not None

    published = publish_checkpoint(model, tmp_path / "out" / "published.safetensors", {})
    assert load_segmenter(published).error_map is not None

    from osteo_engine.events import Cancelled, CancelToken

    token, before = CancelToken(), companion_path(model).read_bytes()
    token.cancel()
    with pytest.raises(Cancelled, match="nothing was written"):
        fit_error_map_job(ErrorMapRequest(data=(manifest,), model=model, seed=1), cancel=token)
    assert companion_path(model).read_bytes() == before  # the map fitted before is kept as it was
