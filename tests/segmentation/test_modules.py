"""The mixture's modules must model how raters disagree, not collapse into one."""

import cv2
import numpy as np
import pytest
import torch

from osteo_engine.segmentation.losses import background_weighted, gamma_schedule, ot_segmentation_loss, soft_iou_cost
from osteo_engine.segmentation.model import MixtureSegmenter, SegmenterConfig
from osteo_engine.segmentation.uncertainty import effective_modules


def _two_raters(n: int, seed: int, size: int = 48):
    """Images of two blobs; rater 0 outlines them tight, rater 1 loose, and the truth lies between."""
    rng = np.random.default_rng(seed)
    images, maps = [], []
    kernel = np.ones((5, 5), np.uint8)
    for _ in range(n):
        truth = np.zeros((size, size), np.uint8)
        for c in (1, 2):
            centre = tuple(int(v) for v in rng.uniform(12, size - 12, 2))
            axes = tuple(int(v) for v in rng.uniform(5, 9, 2))
            cv2.ellipse(truth, centre, axes, float(rng.uniform(0, 180)), 0, 360, c, -1)
        image = cv2.GaussianBlur((truth > 0).astype(np.float32) * 0.6, (5, 5), 1.5)
        tight, loose = np.zeros_like(truth), np.zeros_like(truth)
        for c in (1, 2):
            tight[cv2.erode((truth == c).astype(np.uint8), kernel) > 0] = c
            loose[cv2.dilate((truth == c).astype(np.uint8), kernel) > 0] = c
        images.append(image + rng.normal(0, 0.03, image.shape).astype(np.float32))
        maps.append(np.stack([tight, loose, truth]))
    return torch.from_numpy(np.stack(images))[:, None], torch.from_numpy(np.stack(maps)).long()


def _train(
    single_rater_share: float,
    steps: int = 200,
    modules: int = 2,
    samples: int = 2,
    *,
    heads: str = "per-module",
    latent: int = 1,
    ce_weight: float = 1.0,
    one_rater_weight: float = 1.0,
    module_cap: float = 1.0,
    module_share: float = 1.0,
):
    """Train on tight/loose pairs, where a share of the images has one rater alone (the truth), as the atlas
    images have beside the phantoms' several raters; `one_rater_weight` scales those images' share of the loss,
    `module_cap` and `module_share` are the loss's (bench/segmenter_rater_spread.py)."""
    torch.manual_seed(0)
    images, maps = _two_raters(64, seed=0)
    single = torch.rand(64, generator=torch.Generator().manual_seed(1)) < single_rater_share
    annotations = maps[:, :2].clone()
    annotations[single] = maps[single][:, 2:3].expand(-1, 2, -1, -1)
    weights = torch.full((64, 2), 0.5)
    weights[single] = torch.tensor([1.0, 0.0])
    config = SegmenterConfig(
        num_classes=3, base_channels=8, depth=3, modules=modules, head_channels=8, latent_size=latent, heads=heads
    )
    model = MixtureSegmenter(config)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(steps):
        chosen = torch.randint(0, 64, (8,))
        out = model(images[chosen], samples=samples)
        gamma = gamma_schedule(step, steps, 1 / (modules * samples))
        parts = [(torch.ones(8, dtype=torch.bool), 1.0)]
        if one_rater_weight != 1.0:  # the loss is a mean over images, so its parts weigh by their counts
            parts = [(~single[chosen], 1.0), (single[chosen], one_rater_weight)]
        total = 0.0
        for part, weight in parts:
            if part.any():
                loss = ot_segmentation_loss(
                    out.logits[part],
                    out.routing[part],
                    annotations[chosen][part],
                    weights[chosen][part],
                    gamma,
                    ce_weight=ce_weight,
                    class_weights=background_weighted(3, 0.1),
                    module_cap=module_cap,
                    module_share=module_share,
                )
                total = total + weight * loss.total * part.float().mean()
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
    return model.eval()


@torch.inference_mode()
def _nearest_module_per_rater(model, modules: int, samples: int = 2):
    """Per held-out image and rater, the module whose samples match that rater best; and the mean exp(H(π))."""
    images, maps = _two_raters(32, seed=100)
    out = model(images, samples=samples)
    nearest = []
    for b in range(len(images)):
        cost = soft_iou_cost(out.flat_logits()[b].softmax(1), maps[b, :2]).reshape(modules, samples, 2).mean(1)
        nearest.append(cost.argmin(0).tolist())
    effective = np.mean([effective_modules(r) for r in out.routing.numpy()])
    return np.array(nearest), effective


@pytest.mark.slow
def test_modules_split_between_two_raters_even_when_half_the_images_have_one_rater():
    model = _train(single_rater_share=0.5)
    nearest, effective = _nearest_module_per_rater(model, modules=2)
    assert (nearest[:, 0] != nearest[:, 1]).mean() >= 0.9  # the tight and the loose rater have modules of their own
    assert effective >= 1.9  # and the routing weighs both: one-rater images did not pull it onto one module


def _one_rater_loss(samples: torch.Tensor, annotation: torch.Tensor, single_rater: str) -> float:
    logits = torch.log(samples.clamp_min(1e-4))[None, :, None]  # (1, K, S=1, C, H, W)
    k = samples.shape[0]
    loss = ot_segmentation_loss(
        logits, torch.full((1, k), 1 / k), annotation[None, None], torch.ones(1, 1), 1.0, single_rater=single_rater
    )
    np.testing.assert_allclose(loss.coupling[0].sum(0).numpy(), [1.0])  # the routing target stays even
    np.testing.assert_allclose(loss.coupling[0].sum(1).numpy(), np.full(k, 1 / k), rtol=1e-6)
    return loss.segmentation.item()


def test_an_image_with_one_rater_teaches_the_mixtures_centre_not_one_outline_to_every_sample():
    annotation = torch.zeros(16, 16, dtype=torch.long)
    annotation[4:12, 4:12] = 1
    tight, loose = torch.zeros_like(annotation), torch.zeros_like(annotation)
    tight[5:11, 5:11], loose[3:13, 3:13] = 1, 1

    def probs(labels):
        return torch.nn.functional.one_hot(labels, 2).permute(2, 0, 1).float() * 0.98 + 0.01

    faithful = torch.stack([probs(annotation), probs(annotation)])
    spread_out = torch.stack([probs(tight), probs(loose)])  # a tight and a loose sample around the rater
    cost = {
        mode: _one_rater_loss(spread_out, annotation, mode) - _one_rater_loss(faithful, annotation, mode)
        for mode in ("mean", "spread")
    }
    # the samples' spread around the one rater costs much less than when each sample must draw the rater's outline
    assert 0 < cost["mean"] < 0.6 * cost["spread"]
    with pytest.raises(ValueError, match="single_rater"):
        _one_rater_loss(faithful, annotation, "vote")
