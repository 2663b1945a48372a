"""The four self-supervised objectives as plain functions (after solo-learn), with shape checks.

With `distributed=True` (inside an initialised process group) the functions gather embeddings from every
rank with gradients, so that negatives, batch statistics and Sinkhorn normalisation cover the global batch,
and each rank returns the loss of its own anchors; averaging the ranks' losses (as DDP does with their
gradients) gives the single-process loss of the global batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, or (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate x from every rank along dim 0; gradients flow back to each rank's own part."""
    rank, world = rank_and_world()
    if world == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)


def _check(name: str, condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(f"{name}: {message}")


def simclr_loss(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5, distributed: bool = False
) -> torch.Tensor:
    """NT-Xent: each embedding's positive is its other view; the other 2N − 2 embeddings are negatives."""
    _check(
        "simclr_loss",
        z1.ndim == 2 and z1.shape == z2.shape and z1.shape[0] > 0,
        f"expected two (batch, dim) tensors of one shape, got {tuple(z1.shape)} and {tuple(z2.shape)}",
    )
    n = z1.shape[0]
    local = F.normalize(torch.cat([z1, z2]), dim=1)  # (2n, d): views 1 then views 2
    if distributed:
        rank, _ = rank_and_world()
        all1, all2 = (F.normalize(gather_with_grad(z), dim=1) for z in (z1, z2))
        offset = rank * n
    else:
        all1, all2, offset = local[:n], local[n:], 0
    everything = torch.cat([all1, all2])  # (2N, d)
    big_n = all1.shape[0]
    logits = local @ everything.T / temperature  # (2n, 2N)
    rows = torch.arange(2 * n, device=z1.device)
    own = torch.cat([rows[:n] + offset, rows[:n] + offset + big_n])
    positive = torch.cat([rows[:n] + offset + big_n, rows[:n] + offset])
    logits = logits.masked_fill(F.one_hot(own, 2 * big_n).bool(), float("-inf"))
    return F.cross_entropy(logits, positive)


def supcon_loss(
    z: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1, distributed: bool = False
) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al., L_out): z (batch, views, dim); every other embedding of
    the same label is a positive."""
    _check(
        "supcon_loss",
        z.ndim == 3 and labels.shape == z.shape[:1],
        f"expected z (batch, views, dim) and labels (batch,), got {tuple(z.shape)} and {tuple(labels.shape)}",
    )
    b, v, _ = z.shape
    local = F.normalize(z.reshape(b * v, -1), dim=1)
    local_labels = labels.repeat_interleave(v)
    if distributed:
        rank, _ = rank_and_world()
        everything = F.normalize(gather_with_grad(z).reshape(-1, z.shape[-1]), dim=1)
        all_labels = torch.cat(_gather_plain(labels)).repeat_interleave(v)
        offset = rank * b * v
    else:
        everything, all_labels, offset = local, local_labels, 0
    logits = local @ everything.T / temperature
    own = F.one_hot(torch.arange(b * v, device=z.device) + offset, everything.shape[0]).bool()
    logits = logits - logits.detach().max(dim=1, keepdim=True).values
    log_prob = logits - torch.logsumexp(logits.masked_fill(own, float("-inf")), dim=1, keepdim=True)
    positives = (local_labels[:, None] == all_labels[None]) & ~own
    mean_log_prob = (positives * log_prob).sum(1) / positives.sum(1).clamp_min(1)
    return -mean_log_prob[positives.any(1)].mean()


def _gather_plain(x: torch.Tensor) -> list[torch.Tensor]:
    import torch.distributed as dist

    out = [torch.empty_like(x) for _ in range(rank_and_world()[1])]
    dist.all_gather(out, x.contiguous())
    return out


def vicreg_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    sim_weight: float = 25.0,
    var_weight: float = 25.0,
    cov_weight: float = 1.0,
    eps: float = 1e-4,
    distributed: bool = False,
) -> torch.Tensor:
    """VICReg: invariance (MSE between views), variance (hinge on each dimension's std, per branch) and
    covariance (off-diagonal squares / dim, per branch); statistics over the global batch."""
    _check(
        "vicreg_loss",
        z1.ndim == 2 and z1.shape == z2.shape and z1.shape[0] > 1,
        f"expected two (batch > 1, dim) tensors of one shape, got {tuple(z1.shape)} and {tuple(z2.shape)}",
    )
    invariance = F.mse_loss(z1, z2)
    if distributed:
        z1, z2 = gather_with_grad(z1), gather_with_grad(z2)
    variance = 0.5 * (_variance(z1, eps) + _variance(z2, eps))
    covariance = _covariance(z1) + _covariance(z2)
    return sim_weight * invariance + var_weight * variance + cov_weight * covariance


def _variance(z: torch.Tensor, eps: float) -> torch.Tensor:
    return F.relu(1.0 - torch.sqrt(z.var(dim=0) + eps)).mean()


def _covariance(z: torch.Tensor) -> torch.Tensor:
    n, d = z.shape
    centred = z - z.mean(dim=0)
    cov = centred.T @ centred / (n - 1)
    return (cov.pow(2).sum() - cov.diagonal().pow(2).sum()) / d


@torch.no_grad()
def sinkhorn(
    scores: torch.Tensor, iterations: int = 3, epsilon: float = 0.05, distributed: bool = False
) -> torch.Tensor:
    """Soft codes (batch, prototypes) with equal prototype usage over the (global) batch (SwAV)."""
    import torch.distributed as dist

    _, world = rank_and_world() if distributed else (0, 1)
    q = torch.exp(scores.float() / epsilon).T  # (K, B)
    total = q.sum()
    if world > 1:
        dist.all_reduce(total)
    q /= total
    k, b = q.shape[0], q.shape[1] * world
    for _ in range(iterations):
        rows = q.sum(dim=1, keepdim=True)
        if world > 1:
            dist.all_reduce(rows)
        q /= rows * k
        q /= q.sum(dim=0, keepdim=True) * b
    return (q * b).T


def swav_loss(
    high_res_scores: list[torch.Tensor],
    low_res_scores: list[torch.Tensor],
    temperature: float = 0.1,
    sinkhorn_iterations: int = 3,
    epsilon: float = 0.05,
    distributed: bool = False,
) -> torch.Tensor:
    """Swapped prediction: the codes of each global crop are predicted from every other crop's scores."""
    _check("swav_loss", len(high_res_scores) >= 2, "needs at least two global crops")
    shapes = {tuple(s.shape) for s in high_res_scores} | {(s.shape[1],) for s in low_res_scores}
    _check(
        "swav_loss",
        all(s.ndim == 2 for s in [*high_res_scores, *low_res_scores]),
        f"scores must be (batch, prototypes), got shapes {sorted(shapes)}",
    )
    crops = list(high_res_scores) + list(low_res_scores)
    total = high_res_scores[0].new_zeros(())
    for i, scores in enumerate(high_res_scores):
        codes = sinkhorn(scores.detach(), sinkhorn_iterations, epsilon, distributed)
        others = [c for j, c in enumerate(crops) if j != i]
        total = total + sum(-(codes * F.log_softmax(c / temperature, dim=1)).sum(1).mean() for c in others) / len(
            others
        )
    return total / len(high_res_scores)
