"""Radiogrammetry as a classifier, alone and beside the SSL features (the experiment report's fusion rows).

Each bone patch of a bank carries its image's indices (`PatchBank.radiogrammetry`: MCI, T, W, RMD and RBD of the
radius, ulna and M1–M5, and the hand's mean MCI and median RBD, `radiogrammetry.FEATURES`). The probes read
`READ`, the hand's two summaries: on the phantom cohort they beat every per-bone set tried, which a few hundred
subjects cannot weigh without overfitting (README, "Radiogrammetry"). The same linear probe protocol as the SSL
rows
(`ssl.probe.train_probe`: subject-wise folds choose the strength and threshold, a subject's probability is the
mean over its bones) is fitted on
- the indices alone: every patch of an image holds the same values, so this is a logistic regression on the
  subject's indices, weighted by its number of bones;
- the encoder's features of the patch with its image's indices appended (early fusion).
A value that was not measured (a bone missing or flagged by its quality check) takes the mean of the train and
val patches, which standardisation maps to 0: it adds nothing to the score.

A probe fitted so (`osteo probe --radiogrammetry`) keeps those fill values and the unit its T and W were
measured in; screening appends one radiograph's indices to each of its patches' features (`image_indices`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .errors import ConfigError
from .radiogrammetry import FEATURES, SUMMARY, BoneMeasurement, feature_vector
from .ssl.data import PatchBank
from .ssl.probe import Probe, ProbeConfig, train_probe

READ = SUMMARY  # the indices a fused or indices-only probe reads, from FEATURES
# the probe's strengths and two weaker regularisations: a few indices need less shrinking than 512 features
STRENGTHS = ProbeConfig().strengths + (0.3, 1.0)
# how much less a fused probe shrinks the indices than the encoder's features (ssl.probe.train_probe's emphases):
# with one penalty for all, 512 weak features outvote two strong ones (ext500 AUC 0.830 fused against 0.840 for
# the indices alone, seed 0; README, "Radiogrammetry")
EMPHASES = (1.0, 3.0, 10.0)
FUSION_VARIANTS = ("radiogrammetry", "fusion")  # the indices alone; fused with an encoder's features


def fusion_probe_config(config: ProbeConfig) -> ProbeConfig:
    return replace(config, strengths=STRENGTHS)


def train_fused_probe(features: np.ndarray, bank: PatchBank, config: ProbeConfig) -> tuple[Probe, dict]:
    """`train_probe` on an encoder's features with the indices READ appended (`fused`): fusion's strengths, and
    the emphasis on the indices chosen with them."""
    return train_probe(features, bank, fusion_probe_config(config), appended=len(READ), emphases=EMPHASES)


def fill_values(bank: PatchBank, names: tuple[str, ...] = READ) -> np.ndarray:
    """(len(names),) each index's mean over the bank's labelled train and val patches (what a missing value
    becomes). Raises ConfigError for a bank made without radiogrammetry."""
    if bank.radiogrammetry is None:
        raise ConfigError("this patch bank has no radiogrammetry (a raw bank, or one cached before it existed).")
    fitted = np.isin(bank.splits, ("train", "val")) & (bank.labels >= 0)
    values = _columns(bank, names)[fitted]
    finite = np.isfinite(values)
    counts = finite.sum(axis=0)
    return np.where(counts > 0, np.where(finite, values, 0.0).sum(axis=0) / np.maximum(counts, 1), 0.0)


def indices_of(bank: PatchBank, fill: np.ndarray, names: tuple[str, ...] = READ) -> np.ndarray:
    """(N, len(names)) the bank's indices `names` with each missing value replaced by `fill`."""
    values = _columns(bank, names)
    return np.where(np.isnan(values), fill[None], values).astype(np.float64)


def _columns(bank: PatchBank, names: tuple[str, ...]) -> np.ndarray:
    return bank.radiogrammetry[:, [FEATURES.index(name) for name in names]]


def fused(features: np.ndarray, bank: PatchBank, fill: np.ndarray) -> np.ndarray:
    """(N, F_encoder + len(READ)): each patch's encoder features with its image's indices `READ` appended."""
    return np.concatenate([features.astype(np.float64), indices_of(bank, fill)], axis=1)


def probe_features(part: PatchBank, fill: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
    """What a radiogrammetry row's probe reads: the indices `READ` alone, or appended to an encoder's `features`
    (patches, F) of `part`'s patches."""
    return indices_of(part, fill) if features is None else fused(features, part, fill)


def image_indices(
    measurements: dict[str, BoneMeasurement], fill: np.ndarray, unit: str, names: tuple[str, ...] = FEATURES
) -> tuple[np.ndarray, str]:
    """(len(names),) one radiograph's indices `names` (the probe's, from FEATURES) as a fused probe reads them, each
    missing one set to `fill`, and a note ("" when none). T and W measured in another unit than the probe's
    (`unit`: "mm" with a pixel spacing, "px" without) cannot be compared with what it learned, so they count as
    missing too, and the note says so."""
    values = feature_vector(measurements).astype(np.float64)[[FEATURES.index(name) for name in names]]
    measured = {m.unit for m in measurements.values() if m.T is not None}
    note = ""
    lengths = [i for i, name in enumerate(names) if name.endswith(("_T", "_W"))]
    if measured - {unit} and lengths:  # a probe that reads no length is not affected
        values[lengths] = np.nan
        note = (
            f"T and W were measured in {', '.join(sorted(measured))} but the probe learned them in {unit}; "
            "it read them as unmeasured (MCI and the densities still count)."
        )
    return np.where(np.isnan(values), fill, values), note
