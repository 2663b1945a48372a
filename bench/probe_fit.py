"""How long the linear probe's fit takes, with the solver the probe uses (Newton-Cholesky) against L-BFGS, the
solver it used before, in one run on the same features (issue 18: the fused probe's fit took about 100 s of every
table-1 run).

For an `osteo experiment` run folder, this encodes its internal cohort's patches with the run's encoder and fits
the plain probe and the fused probe (fusion.train_fused_probe: the hand's indices appended, three emphases and
nine strengths over five subject-wise folds) with each solver. It prints each fit's time, the ratio, what each
chose, the largest difference between the two probes' patch probabilities on the external cohort and each one's
external AUC, so that a faster solver that changed the answer would show.

Run: .venv/bin/python bench/probe_fit.py --run build/diag/acq/runs/t1-swav-s0
(the experiment folder's cached banks: the one with fewer subjects is the internal cohort, the other the
external one)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from osteo_engine.evaluation import screening_metrics  # noqa: E402
from osteo_engine.experiments import external_inputs  # noqa: E402
from osteo_engine.fusion import fill_values, fused, train_fused_probe  # noqa: E402
from osteo_engine.ssl import probe as probe_module  # noqa: E402
from osteo_engine.ssl.data import PatchBank, cached_bone_banks, probe_inputs  # noqa: E402
from osteo_engine.ssl.probe import ProbeConfig, encode, load_encoder, subject_scores, train_probe  # noqa: E402

SOLVERS = ("lbfgs", probe_module.SOLVER)  # the reference first


def cached_banks(run: Path) -> tuple[PatchBank, PatchBank]:
    """(internal, external) patch banks of the experiment folder that holds `run`, as its probes read them."""
    banks = cached_bone_banks(run.parents[1] / "cache")
    if len(banks) < 2:
        raise SystemExit(f"{run.parents[1] / 'cache'} needs the internal and the external cohort's patch banks")
    size = banks[0].patches.shape[-1]
    return probe_inputs(banks[0], size), external_inputs(banks[-1], size)


def timed_fits(solver: str, inputs: dict, bank: PatchBank) -> dict:
    """{fit name: (seconds, probe, info)} of the plain and the fused probe with `solver`."""
    probe_module.SOLVER = solver
    out = {}
    for name, (features, fit) in inputs.items():
        start = time.perf_counter()
        probe, info = fit(features, bank, ProbeConfig())
        out[name] = (time.perf_counter() - start, probe, info)
    return out


def external_auc(probe, features: np.ndarray, bank: PatchBank) -> tuple[np.ndarray, float]:
    patch_probs = probe.patch_probabilities(features)
    _, labels, probs = subject_scores(bank, patch_probs)
    return patch_probs, screening_metrics(labels, probs, probe.threshold)["auc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="an experiment's run folder (RUN/pretrain/...)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    bank, external = cached_banks(args.run)
    encoder, _, _ = load_encoder(args.run / "pretrain" / "checkpoints" / "last.safetensors", torch.device("cpu"))
    fill = fill_values(bank)
    plain, plain_ext = encode(encoder, bank.patches), encode(encoder, external.patches)
    inputs = {"plain": (plain, train_probe), "fused": (fused(plain, bank, fill), train_fused_probe)}
    scored_on = {"plain": plain_ext, "fused": fused(plain_ext, external, fill)}
    print(f"{len(bank.patches)} internal patches, {len(external.patches)} external; features {plain.shape[1]}")
    results = {solver: timed_fits(solver, inputs, bank) for solver in SOLVERS}
    reference, ours = SOLVERS
    for name in inputs:
        ref_probs, ref_auc = external_auc(results[reference][name][1], scored_on[name], external)
        new_probs, new_auc = external_auc(results[ours][name][1], scored_on[name], external)
        for solver in SOLVERS:
            seconds, _, info = results[solver][name]
            print(
                f"{name:5s} {solver:15s} {seconds:6.1f} s  strength {info['strength']:g} emphasis "
                f"{info['emphasis']:g}  external AUC {ref_auc if solver == reference else new_auc:.4f}"
            )
        ratio = results[reference][name][0] / results[ours][name][0]
        print(
            f"{name:5s} {ours} is {ratio:.1f}x faster; patch probabilities differ by up to "
            f"{np.abs(ref_probs - new_probs).max():.4f}"
        )


if __name__ == "__main__":
    main()
