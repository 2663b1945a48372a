"""The γ-relaxed optimal transport coupling of paper appendix A.

    T* = argmin_T Σ T_ij C_ij   subject to   T ≥ 0,  T 1_M ≤ γ 1_N,  Tᵀ 1_N = β

A slack column of zero cost absorbs the unused row capacity N·γ − Σβ, which turns the problem into a
balanced one that POT's network simplex (`ot.emd`) solves exactly.
"""

from __future__ import annotations

import numpy as np
import ot as pot


def relaxed_coupling(cost, beta, gamma: float):
    """N×M coupling with rows ≤ γ and columns = β that minimises the transport cost.

    `cost` (N, M) and `beta` (M,) may be numpy arrays or torch tensors; the result has the type, dtype and
    device of `cost`. Requires γ·N ≥ Σβ (with Σβ = 1, γ ≥ 1/N).
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
    supply = np.full(n, float(gamma))
    demand = np.append(beta_np, max(slack, 0.0))
    demand *= supply.sum() / demand.sum()  # exact balance despite rounding
    extended = np.hstack([cost_np, np.zeros((n, 1))])
    coupling = pot.emd(supply, demand, extended, numItermax=1_000_000)[:, :-1]
    return _like(coupling, cost)


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _like(values: np.ndarray, reference):
    if hasattr(reference, "detach"):
        import torch

        return torch.as_tensor(values, dtype=reference.dtype, device=reference.device)
    return values.astype(np.asarray(reference).dtype if np.asarray(reference).dtype.kind == "f" else np.float64)
