"""What does a pretrained patch encoder read of the phantom's label-carrying latents? (issue 18's diagnosis,
docs/results/phantom/diagnosis.md)

For the external phantom cohort of an `osteo experiment` folder, this encodes every labelled bone patch with a
run's encoder and, in 5 subject-wise folds, fits a ridge regression from the features to each bone's true
cortical index and trabecular density (each bone's features and values standardised on the training folds).
It prints, per latent: the correlation of the held-out readings with the truth per bone and for the subject's
mean over its bones, and how far two bones of one subject share their reading error (the correlation between
the errors of a subject's first two patches, after the part the truth explains). Shared errors do not average
out over a subject's bones, so they cost more AUC than independent ones.

Run: .venv/bin/python bench/encoder_readout.py --run build/diag/base/runs/t1-swav-s0
     --test-data build/ext500/manifest.csv [--bank build/diag/base/cache/patches-....npz]
(without --bank, the experiment folder's cached bank with the most subjects: the external cohort's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from osteo_engine.cohort import read_manifest  # noqa: E402
from osteo_engine.ssl.data import PatchBank, cached_bone_banks  # noqa: E402
from osteo_engine.ssl.probe import encode, load_encoder  # noqa: E402

LATENTS = ("ci", "density")


def external_bank(run: Path, bank: Path | None) -> PatchBank:
    chosen = cached_bone_banks(run.parents[1] / "cache")[-1] if bank is None else PatchBank.load(bank)
    return chosen.select(chosen.labels >= 0)


def per_bone_standardised(values: np.ndarray, bones: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """values (N, F) or (N,), each bone's rows standardised by the mean and sd of its rows in `reference`."""
    out = values.astype(np.float64).copy()
    for bone in np.unique(bones):
        rows = bones == bone
        ref = values[rows & reference]
        out[rows] = (values[rows] - ref.mean(0)) / (ref.std(0) + 1e-6)
    return out


def held_out_readings(features: np.ndarray, truth: np.ndarray, bank: PatchBank) -> np.ndarray:
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import GroupKFold

    readings = np.zeros(len(truth))
    for train, test in GroupKFold(5).split(features, truth, bank.subjects):
        on_train = np.zeros(len(truth), bool)
        on_train[train] = True
        x = per_bone_standardised(features, bank.bones, on_train)
        y = per_bone_standardised(truth, bank.bones, on_train)
        readings[test] = RidgeCV(alphas=np.logspace(-1, 4, 11)).fit(x[train], y[train]).predict(x[test])
    return readings


def report(latent: str, readings: np.ndarray, truth: np.ndarray, bank: PatchBank) -> str:
    standard = per_bone_standardised(truth, bank.bones, np.ones(len(truth), bool))
    per_bone = {
        b: np.corrcoef(readings[bank.bones == b], standard[bank.bones == b])[0, 1] for b in np.unique(bank.bones)
    }
    errors = readings - np.polyfit(standard, readings, 1)[0] * standard
    subjects = np.unique(bank.subjects)
    mean_read = [readings[bank.subjects == s].mean() for s in subjects]
    mean_true = [standard[bank.subjects == s].mean() for s in subjects]
    pairs = np.array([errors[bank.subjects == s][:2] for s in subjects if (bank.subjects == s).sum() >= 2])
    bones = ", ".join(f"{b} {r:.2f}" for b, r in per_bone.items())
    return (
        f"{latent}: r per bone {bones}; subject's mean r {np.corrcoef(mean_read, mean_true)[0, 1]:.2f}; "
        f"two bones' reading errors correlate at {np.corrcoef(pairs.T)[0, 1]:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", type=Path, required=True, help="an experiment run folder (runs/t1-METHOD-sSEED)")
    parser.add_argument("--test-data", type=Path, required=True, help="the external phantom cohort's manifest")
    parser.add_argument("--bank", type=Path, help="its cached patch bank (default: found beside the run)")
    args = parser.parse_args()
    import torch

    bank = external_bank(args.run, args.bank)
    encoder, _, _ = load_encoder(args.run / "pretrain" / "checkpoints" / "last.safetensors", torch.device("cpu"))
    features = encode(encoder, bank.patches)
    rows = {r.subject_id: r for r in read_manifest(args.test_data, check_files=False).rows}
    print(f"{args.run.name}: {len(bank.patches)} patches of {len(np.unique(bank.subjects))} subjects")
    for latent in LATENTS:
        truth = np.array([float(rows[s].extra[f"{b}_{latent}"]) for s, b in zip(bank.subjects, bank.bones)])
        print(report(latent, held_out_readings(features, truth, bank), truth, bank))


if __name__ == "__main__":
    main()
