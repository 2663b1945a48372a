"""The optimal-transport segmentation loss of paper §3.1.3 and appendix A, as pure functions.

cost_ij    = d(softmax(s_i), y_j): 1 − soft mean IoU over foreground classes present in y_j or in s_i
T*         = relaxed_coupling(cost, β, γ)  (rows ≤ γ, columns = β; not differentiated)
loss       = Σ_ij T*_ij (cost_ij + ce_weight · CE(s_i, y_j)) + λ · KL(Σ_j T*_i· per module ‖ π)
(optionally each module's samples take at most `module_cap` of a rater's mass, or `module_share` of all the
raters' mass: ot.py)

An image with one rater (the atlas's) says nothing about how raters disagree. Coupled to the nearest sample
alone (γ → 1), such images taught the router to send everything to one module; spread over every sample
(γ = 1/N), they taught every sample that one outline and erased the spread the phantoms' raters teach
(docs/segmenter-modules.md). So an image with one rater is compared with the samples' mean probabilities,
p̄ = (1/N) Σ_i softmax(s_i): the mixture's centre must match the rater, its samples may still differ around
it, and the routing target stays even (tests/segmentation/test_modules.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .ot import relaxed_coupling


@dataclass
class OTLoss:
    total: torch.Tensor
    segmentation: torch.Tensor
    routing: torch.Tensor
    coupling: torch.Tensor  # (B, N, M)


def _onehot(annotations: torch.Tensor, classes: int, dtype: torch.dtype) -> torch.Tensor:
    """(M, H, W) labels -> (M, C, H, W) one-hot, built in place without an int64 intermediate."""
    m, h, w = annotations.shape
    out = torch.zeros(m, classes, h, w, dtype=dtype, device=annotations.device)
    return out.scatter_(1, annotations.long()[:, None], 1.0)


def _predicted_classes(probs: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) probabilities -> (N, C) bool: which classes win at some pixel.

    Comparing with the channel maximum gives argmax's answer (up to exact ties) many times faster on CPU.
    """
    return (probs == probs.amax(1, keepdim=True)).flatten(2).any(2)


def _iou_cost(probs: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
    inter = torch.einsum("nchw,mchw->nmc", probs[:, 1:], onehot[:, 1:])
    union = probs[:, 1:].sum((2, 3))[:, None] + onehot[:, 1:].sum((2, 3))[None] - inter
    present = (onehot[:, 1:].flatten(2).amax(2) > 0)[None] | _predicted_classes(probs)[:, None, 1:]  # (N, M, C-1)
    iou = inter / union.clamp_min(1e-6)
    counted = present.sum(-1)
    mean_iou = (iou * present).sum(-1) / counted.clamp_min(1)
    return torch.where(counted > 0, 1.0 - mean_iou, torch.zeros_like(mean_iou))


def _cross_entropy(log_probs: torch.Tensor, onehot: torch.Tensor, class_weights: torch.Tensor | None):
    if class_weights is not None:
        onehot = onehot * class_weights.to(onehot)[None, :, None, None]
    return -torch.einsum("nchw,mchw->nm", log_probs, onehot) / onehot.sum((1, 2, 3)).clamp_min(1e-6)[None]


def soft_iou_cost(probs: torch.Tensor, annotations: torch.Tensor) -> torch.Tensor:
    """probs (N, C, H, W) softmax outputs, annotations (M, H, W) int labels -> cost (N, M).

    Intersections are pixel sums of products, computed as one contraction over pixels (no N×M×C×H×W tensor).
    """
    return _iou_cost(probs, _onehot(annotations, probs.shape[1], probs.dtype))


def pairwise_cross_entropy(
    logits: torch.Tensor, annotations: torch.Tensor, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """logits (N, C, H, W), annotations (M, H, W) -> pixel cross-entropy (N, M), class-weighted like
    `F.cross_entropy(weight=...)`: Σ w_y (−log p_y) / Σ w_y."""
    log_probs = logits.log_softmax(1)
    return _cross_entropy(log_probs, _onehot(annotations, logits.shape[1], log_probs.dtype), class_weights)


def background_weighted(num_classes: int, background: float) -> torch.Tensor:
    """Class weights for the cross-entropy: bones are a tenth of a radiograph, so background counts less."""
    weights = torch.ones(num_classes)
    weights[0] = background
    return weights


def ot_segmentation_loss(
    logits: torch.Tensor,
    routing: torch.Tensor,
    annotations: torch.Tensor,
    annotation_weights: torch.Tensor,
    gamma: float,
    kl_weight: float = 1.0,
    ce_weight: float = 1.0,
    class_weights: torch.Tensor | None = None,
    single_rater: str = "mean",
    module_cap: float = 1.0,
    module_share: float = 1.0,
) -> OTLoss:
    """logits (B, K, S, C, H, W); routing π (B, K); annotations (B, M, H, W); annotation_weights β (B, M),
    zero for padding. `module_cap` < 1 lets one module's samples take at most that share of a rater's mass
    (ot.relaxed_coupling's cap; 1, MoSE's coupling), `module_share` < 1 at most that share of all the raters'
    mass (its share). An image with fewer than two weighted raters is compared
    with the samples' mean (`single_rater="mean"`) or coupled to every sample alike (`"spread"`, the earlier
    design, kept for the comparison in tests); its reported coupling is even over the samples either way.
    Raises ValueError for tensors of other shapes or another `single_rater`."""
    if single_rater not in ("mean", "spread"):
        raise ValueError(f"single_rater must be 'mean' or 'spread', got {single_rater!r}")
    if logits.ndim != 6 or annotations.ndim != 4 or annotations.shape[0] != logits.shape[0]:
        raise ValueError(
            f"expected logits (B,K,S,C,H,W) and annotations (B,M,H,W), got {tuple(logits.shape)} "
            f"and {tuple(annotations.shape)}"
        )
    b, k, s = logits.shape[:3]
    seg_terms, kl_terms, couplings = [], [], []
    # unbind, not logits[n]: indexing's backward would build a zero tensor of the whole batch per image
    for n, image_logits in enumerate(logits.unbind(0)):
        log_probs = image_logits.reshape(k * s, *logits.shape[3:]).float().log_softmax(1)
        onehot = _onehot(annotations[n], log_probs.shape[1], log_probs.dtype)
        one_rater = int((annotation_weights[n] > 0).sum()) < 2
        if one_rater and single_rater == "mean":
            log_probs = log_probs.exp().mean(0, keepdim=True).clamp_min(1e-12).log()  # the samples' mean p̄
        cost = _iou_cost(log_probs.exp(), onehot)
        cost_for_loss = cost + ce_weight * _cross_entropy(log_probs, onehot, class_weights) if ce_weight else cost
        if one_rater:
            seg_terms.append((annotation_weights[n][None] * cost_for_loss).sum() / cost.shape[0])
            coupling = annotation_weights[n][None].expand(k * s, -1) / (k * s)  # even: the routing stays even
        else:
            coupling = relaxed_coupling(
                cost.detach(), annotation_weights[n].detach(), gamma, k, module_cap, module_share
            )
            seg_terms.append((coupling * cost_for_loss).sum())
        target = coupling.sum(1).reshape(k, s).sum(1).clamp_min(0)
        target = target / target.sum().clamp_min(1e-12)
        kl_terms.append((target * (target.clamp_min(1e-12).log() - routing[n].clamp_min(1e-12).log())).sum())
        couplings.append(coupling)
    segmentation, kl = torch.stack(seg_terms).mean(), torch.stack(kl_terms).mean()
    return OTLoss(segmentation + kl_weight * kl, segmentation, kl, torch.stack(couplings))


def gamma_schedule(
    step: int, total_steps: int, gamma0: float, anneal_fraction: float = 0.5, hold_fraction: float = 0.0
) -> float:
    """γ stays at γ0 for the first `hold_fraction` of training, rises linearly to 1 by `anneal_fraction` of it,
    then stays at 1; `anneal_fraction` 0 gives γ = 1 throughout (a warm start)."""
    if anneal_fraction <= 0:
        return 1.0
    start = int(total_steps * hold_fraction)
    span = max(1, int(total_steps * anneal_fraction) - start)
    return float(min(1.0, gamma0 + (1.0 - gamma0) * max(0, step - start) / span))
