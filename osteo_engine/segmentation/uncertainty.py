"""What the mixture's samples say beyond their mean: each module's own prediction, and the predictive
uncertainty split into its aleatoric and epistemic parts.

For N = K·S samples with class probabilities p_i and weights α_i = π_k / S (π: the routing):

    mean          p̄ = Σ_i α_i p_i
    total         H[p̄]                      predictive entropy, nats
    expected      Σ_i α_i H[p_i]            aleatoric: what every sample finds ambiguous (a blurred edge)
    mutual info   H[p̄] − Σ_i α_i H[p_i]     epistemic: where the samples disagree (raters, modules)
    variance      Σ_i α_i ‖p_i − p̄‖²        the samples' spread around their mean, summed over classes

All three are ≥ 0 and total = expected + mutual information at every pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .data import Letterbox
from .metrics import class_ious


@dataclass
class SampleMaps:
    """At the network's input size (h, w)."""

    samples: np.ndarray  # (K, S, C, h, w) float32 class probabilities of every sample
    weights: np.ndarray  # (K, S) α = π_k / S
    routing: np.ndarray  # (K,) π
    mean: np.ndarray  # (C, h, w) p̄
    modules: np.ndarray  # (K, C, h, w) each module's mean over its S samples
    total: np.ndarray  # (h, w) nats
    expected: np.ndarray  # (h, w) nats
    mutual_information: np.ndarray  # (h, w) nats
    variance: np.ndarray  # (h, w): the weighted variance of the samples' probabilities, summed over classes


def entropy(probs: torch.Tensor, dim: int) -> torch.Tensor:
    """Shannon entropy (nats) along `dim` of probabilities that sum to one there."""
    return -torch.special.xlogy(probs, probs).sum(dim)


@torch.inference_mode()
def sample_maps(logits: torch.Tensor, routing: torch.Tensor) -> SampleMaps:
    """logits (K, S, C, h, w) of one image and its routing π (K,) -> its SampleMaps."""
    k, s = logits.shape[:2]
    probs = logits.float().softmax(2)
    weights = routing.float()[:, None].expand(k, s) / s
    mean = (probs * weights[..., None, None, None]).sum((0, 1))
    total = entropy(mean, 0)
    expected = (entropy(probs, 2) * weights[..., None, None]).sum((0, 1))
    return SampleMaps(
        samples=probs.cpu().numpy(),
        weights=weights.cpu().numpy(),
        routing=routing.float().cpu().numpy(),
        mean=mean.cpu().numpy(),
        modules=probs.mean(1).cpu().numpy(),
        total=total.cpu().numpy(),
        expected=expected.cpu().numpy(),
        mutual_information=(total - expected).clamp_min(0).cpu().numpy(),
        variance=(((probs - mean) ** 2).sum(2) * weights[..., None, None]).sum((0, 1)).cpu().numpy(),
    )


def effective_modules(routing) -> float:
    """exp(H(π)) of one routing vector (K,): 1 when one module takes all the weight, K when all weigh alike."""
    pi = np.maximum(np.asarray(routing, np.float64), 1e-12)
    return float(np.exp(-(pi * np.log(pi)).sum()))


def restored_labels(probs: np.ndarray, box: Letterbox) -> np.ndarray:
    """The arg-max label map (uint8) at `box.original` of class probabilities (C, h, w) at the network's size,
    restored a class at a time (bilinear) with a running maximum: 5 bytes a pixel, not 4·C."""
    best = box.restore(probs[0:1])[0]
    labels = np.zeros(box.original, np.uint8)
    for c in range(1, len(probs)):
        channel = box.restore(probs[c : c + 1])[0]
        np.copyto(labels, np.uint8(c), where=channel > best)
        np.maximum(best, channel, out=best)
    return labels


def module_disagreement(maps: list[np.ndarray], weights: np.ndarray, classes: int) -> np.ndarray:
    """Per label value (classes,; 0 for the background), the expected 1 − IoU of that label between the maps of
    two different modules drawn by their weights π: Σ_{i<j} π_i π_j (1 − IoU_ij) / Σ_{i<j} π_i π_j, in 0–1.
    Modules that carry no weight count for nothing, so a dead module does not make a bone look disputed; 0
    where fewer than two modules carry weight. `maps` are label maps (H, W), one per module."""
    spread, total = np.zeros(classes), 0.0
    for i in range(len(maps)):
        for j in range(i + 1, len(maps)):
            pair = float(weights[i] * weights[j])
            if pair > 0:
                spread[1:] += pair * (1.0 - np.nan_to_num(class_ious(maps[i], maps[j], classes), nan=1.0))
                total += pair
    return spread / total if total > 1e-12 else spread
