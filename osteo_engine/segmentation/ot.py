"""The γ-relaxed optimal transport coupling of paper appendix A.

    T* = argmin_T Σ T_ij C_ij   subject to   T ≥ 0,  T 1_M ≤ γ 1_N,  Tᵀ 1_N = β

A slack column of zero cost absorbs the unused row capacity N·γ − Σβ, which turns the problem into a
balanced one that POT's network simplex (`ot.emd`) solves exactly.

Optionally (beyond the paper and MoSE) the rows form `groups` equal blocks (a module's S samples), and
- `cap` < 1: each block may take at most cap·β_j of rater j, Σ_{i in block k} T_ij ≤ cap·β_j (a rater's mass
  lies on at least 1/cap modules);
- `share` < 1: each block may take at most share·Σβ of all the raters' mass, Σ_{i in block k} Σ_j T_ij ≤ share·Σβ
  (with three raters of 1/3 and a share of 1/3, each rater goes to a module of its own).
With MoSE's coupling one module's samples could take every rater's mass, and a module that loses the mass gets no
gradient from the raters again (docs/segmenter-modules.md). With either limit it is no longer a transport problem,
so it is solved as the small linear program it is (SciPy's HiGHS).
"""

from __future__ import annotations

import numpy as np
import ot as pot


def relaxed_coupling(cost, beta, gamma: float, groups: int = 1, cap: float = 1.0, share: float = 1.0):
    """N×M coupling with rows ≤ γ and columns = β that minimises the transport cost; on each of `groups` equal
    blocks of rows, with `cap` < 1 also at most cap·β_j of column j, with `share` < 1 at most share·Σβ in all.

    `cost` (N, M) and `beta` (M,) may be numpy arrays or torch tensors; the result has the type, dtype and
    device of `cost`. Requires γ·N ≥ Σβ (with Σβ = 1, γ ≥ 1/N), and groups·cap ≥ 1 and groups·share ≥ 1 with N
    divisible by groups (then the even coupling β_j/N is always feasible); raises ValueError otherwise.
    """
    cost_np = _to_numpy(cost)
    beta_np = _to_numpy(beta).reshape(-1)
    if cost_np.ndim != 2 or cost_np.shape[1] != beta_np.shape[0]:
        raise ValueError(f"cost must be (N, M) with M = len(beta); got {cost_np.shape} and {beta_np.shape}")
    if not np.isfinite(cost_np).all():
        raise ValueError("cost holds NaN or infinite values")
    if (beta_np < 0).any():
        raise ValueError("beta must be non-negative")
    n = cost_np.shape[0]
    slack = n * gamma - beta_np.sum()
    if slack < -1e-6 * max(1.0, float(beta_np.sum())):  # float32 weights may sum to 1 + 1e-7
        raise ValueError(f"infeasible: γ·N = {n * gamma:g} is below Σβ = {beta_np.sum():g}")
    if cap < 1 or share < 1:
        return _like(_capped_coupling(cost_np, beta_np, gamma, groups, cap, share), cost)
    supply = np.full(n, float(gamma))
    demand = np.append(beta_np, max(slack, 0.0))
    demand *= supply.sum() / demand.sum()  # exact balance despite rounding
    extended = np.hstack([cost_np, np.zeros((n, 1))])
    coupling = pot.emd(supply, demand, extended, numItermax=1_000_000)[:, :-1]
    return _like(coupling, cost)


def _capped_coupling(
    cost: np.ndarray, beta: np.ndarray, gamma: float, groups: int, cap: float, share: float
) -> np.ndarray:
    from scipy.optimize import linprog

    n, m = cost.shape
    if groups < 1 or n % groups or groups * min(cap, share) < 1:
        raise ValueError(
            f"a cap of {cap:g} or share of {share:g} on {groups} blocks of {n} rows cannot hold every column's mass"
        )
    block_rows = np.kron(np.eye(groups), np.ones(n // groups))  # (groups, n): which rows form block k
    constraints = [(np.kron(np.eye(n), np.ones(m)), np.full(n, float(gamma)))]  # Σ_j T_ij ≤ γ
    if cap < 1:  # Σ_{i in k} T_ij ≤ cap·β_j (at cap 1 the columns' sums already hold it)
        constraints.append((np.kron(block_rows, np.eye(m)), np.tile(cap * beta, groups)))
    if share < 1:  # Σ_{i in k} Σ_j T_ij ≤ share·Σβ
        constraints.append((np.kron(block_rows, np.ones(m)), np.full(groups, share * beta.sum())))
    columns = np.kron(np.ones(n), np.eye(m))  # Σ_i T_ij = β_j
    upper, limits = np.vstack([c for c, _ in constraints]), np.concatenate([limit for _, limit in constraints])
    result = linprog(cost.ravel(), upper, limits, columns, beta, bounds=(0, None), method="highs")
    if result.status != 0:
        raise ValueError(f"the capped coupling has no solution ({result.message})")
    return np.clip(result.x, 0.0, None).reshape(n, m)


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _like(values: np.ndarray, reference):
    if hasattr(reference, "detach"):
        import torch

        return torch.as_tensor(values, dtype=reference.dtype, device=reference.device)
    return values.astype(np.asarray(reference).dtype if np.asarray(reference).dtype.kind == "f" else np.float64)
