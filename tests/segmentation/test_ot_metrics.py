import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from osteo_engine.segmentation.metrics import dice_per_bone, generalized_energy_distance
from osteo_engine.segmentation.ot import relaxed_coupling


def _linprog_optimum(cost, beta, gamma):
    n, m = cost.shape
    rows = np.zeros((n, n * m))
    for i in range(n):
        rows[i, i * m : (i + 1) * m] = 1
    cols = np.zeros((m, n * m))
    for j in range(m):
        cols[j, j::m] = 1
    res = linprog(
        cost.ravel(), A_ub=rows, b_ub=np.full(n, gamma), A_eq=cols, b_eq=beta, bounds=(0, None), method="highs"
    )
    assert res.status == 0
    return res.fun


@pytest.mark.parametrize("seed", range(20))
def test_relaxed_coupling_reaches_the_linear_programming_optimum(seed):
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(2, 17)), int(rng.integers(1, 6))
    cost = rng.random((n, m))
    beta = rng.random(m) + 0.05
    beta /= beta.sum()
    gamma = float(rng.uniform(1.0 / n, 1.0))
    coupling = relaxed_coupling(cost, beta, gamma)
    assert coupling.shape == (n, m) and (coupling >= -1e-12).all()
    np.testing.assert_allclose(coupling.sum(0), beta, atol=1e-9)
    assert (coupling.sum(1) <= gamma + 1e-9).all()
    assert (coupling * cost).sum() == pytest.approx(_linprog_optimum(cost, beta, gamma), abs=1e-9)


def test_relaxed_coupling_keeps_torch_type_and_rejects_infeasible():
    cost = torch.rand(4, 3, dtype=torch.float32)
    beta = torch.full((3,), 1 / 3)
    out = relaxed_coupling(cost, beta, 0.5)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (4, 3)
    with pytest.raises(ValueError, match="infeasible"):
        relaxed_coupling(cost, beta, 0.2)  # 4 x 0.2 < 1


def test_gamma_one_gives_the_unconstrained_nearest_assignment():
    cost = np.array([[0.1, 0.9], [0.2, 0.8], [0.7, 0.05]])
    coupling = relaxed_coupling(cost, np.array([0.5, 0.5]), 1.0)
    np.testing.assert_allclose(coupling, [[0.5, 0], [0, 0], [0, 0.5]], atol=1e-12)


def test_a_module_cap_spreads_each_raters_mass_over_modules():
    # two modules of two samples; module 0's samples are nearest to both raters
    cost = np.array([[0.1, 0.2], [0.1, 0.2], [0.6, 0.7], [0.6, 0.7]])
    beta = np.array([0.5, 0.5])
    free = relaxed_coupling(cost, beta, 1.0, groups=2)
    assert free[:2].sum() == pytest.approx(1.0)  # uncapped, module 0 takes every rater's mass
    capped = relaxed_coupling(cost, beta, 1.0, groups=2, cap=0.5)
    np.testing.assert_allclose(capped.sum(0), beta, atol=1e-9)
    np.testing.assert_allclose(capped.reshape(2, 2, 2).sum(1), [[0.25, 0.25], [0.25, 0.25]], atol=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_a_module_cap_of_one_changes_nothing_and_any_cap_keeps_the_rows_limits(seed):
    rng = np.random.default_rng(seed)
    k, s, m = 4, 3, 3
    cost, beta, gamma = rng.random((k * s, m)), np.full(m, 1 / m), float(rng.uniform(1 / (k * s), 1))
    np.testing.assert_allclose(relaxed_coupling(cost, beta, gamma, k, 1.0), relaxed_coupling(cost, beta, gamma))
    capped = relaxed_coupling(cost, beta, gamma, groups=k, cap=0.3)
    assert (capped.sum(1) <= gamma + 1e-9).all()
    assert (capped.reshape(k, s, m).sum(1) <= 0.3 * beta + 1e-9).all()
    uncapped_cost = (relaxed_coupling(cost, beta, gamma) * cost).sum()
    assert (capped * cost).sum() >= uncapped_cost - 1e-9  # a constraint can only cost


def test_a_module_share_gives_each_rater_a_module_of_its_own():
    # four modules of two samples; module 1's samples are nearest to all three raters, module 0 next
    cost = np.full((8, 3), 0.9)
    cost[2:4] = [0.1, 0.2, 0.3]
    cost[0:2] = [0.5, 0.3, 0.4]
    beta = np.full(3, 1 / 3)
    free = relaxed_coupling(cost, beta, 1.0, groups=4)
    np.testing.assert_allclose(free.reshape(4, 2, 3).sum((1, 2)), [0, 1, 0, 0], atol=1e-9)
    shared = relaxed_coupling(cost, beta, 1.0, groups=4, share=1 / 3)
    per_module = shared.reshape(4, 2, 3).sum(1)
    np.testing.assert_allclose(shared.sum(0), beta, atol=1e-9)
    assert (per_module.sum(1) <= 1 / 3 + 1e-9).all()
    # the cheapest matching: rater 0 keeps module 1, rater 1 takes module 0 (0.3), rater 2 a third module
    np.testing.assert_allclose(per_module[:2], [[0, 1 / 3, 0], [1 / 3, 0, 0]], atol=1e-9)
    assert per_module[2:, 2].sum() == pytest.approx(1 / 3)


def test_a_module_cap_too_small_to_hold_a_rater_is_refused():
    with pytest.raises(ValueError, match="cannot hold"):
        relaxed_coupling(np.ones((4, 2)), np.array([0.5, 0.5]), 1.0, groups=2, cap=0.4)
    with pytest.raises(ValueError, match="cannot hold"):
        relaxed_coupling(np.ones((4, 2)), np.array([0.5, 0.5]), 1.0, groups=2, share=0.4)


def _d_loop(a, b):
    ious = []
    for c in range(1, 8):
        inter = union = 0
        for x, y in zip(a.ravel(), b.ravel()):
            inter += (x == c) and (y == c)
            union += (x == c) or (y == c)
        if union:
            ious.append(inter / union)
    return 0.0 if not ious else 1 - sum(ious) / len(ious)


def _ged_loop(s, y, p, q):
    total = 0.0
    for i in range(len(s)):
        for j in range(len(y)):
            total += 2 * p[i] * q[j] * _d_loop(s[i], y[j])
    for i in range(len(s)):
        for k in range(len(s)):
            total -= p[i] * p[k] * _d_loop(s[i], s[k])
    for j in range(len(y)):
        for l_ in range(len(y)):
            total -= q[j] * q[l_] * _d_loop(y[j], y[l_])
    return total


@pytest.mark.parametrize("seed", range(5))
def test_ged_matches_a_direct_loop_over_the_formula(seed):
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, 8, (4, 6, 5)) * (rng.random((4, 6, 5)) < 0.6)
    annotations = rng.integers(0, 8, (3, 6, 5)) * (rng.random((3, 6, 5)) < 0.6)
    p, q = rng.random(4), rng.random(3)
    p, q = p / p.sum(), q / q.sum()
    expected = _ged_loop(samples, annotations, p, q)
    assert generalized_energy_distance(samples, annotations, p, q) == pytest.approx(expected, abs=1e-12)
    uniform = _ged_loop(samples, annotations, np.full(4, 0.25), np.full(3, 1 / 3))
    assert generalized_energy_distance(samples, annotations) == pytest.approx(uniform, abs=1e-12)


def test_ged_edge_cases():
    empty = np.zeros((2, 4, 4), int)
    assert generalized_energy_distance(empty, empty) == 0.0
    one = np.zeros((1, 4, 4), int)
    one[0, :2] = 3
    assert generalized_energy_distance(one, one) == 0.0
    other = np.zeros((1, 4, 4), int)
    other[0, 2:] = 3
    assert generalized_energy_distance(one, other) == pytest.approx(2.0)


def test_dice_per_bone():
    a = np.zeros((4, 4), int)
    a[:2] = 4
    b = np.zeros((4, 4), int)
    b[:1] = 4
    dice = dice_per_bone(a, b)
    assert dice["M2"] == pytest.approx(2 * 4 / (8 + 4)) and np.isnan(dice["ulna"])


@pytest.mark.parametrize("highest", [7, 20])  # 20: labels beyond the bones' (another project's map) still count
def test_dice_per_bone_counts_each_bone_as_its_two_masks_would(highest):
    from osteo_engine.anatomy import BONES

    rng = np.random.default_rng(highest)
    a = rng.integers(0, highest + 1, (30, 40)).astype(np.uint8)
    b = rng.integers(0, 8, (30, 40))
    dice = dice_per_bone(a, b)
    for value, name in BONES.items():
        p, t = a == value, b == value
        assert dice[name] == pytest.approx(2 * (p & t).sum() / (p.sum() + t.sum()))
