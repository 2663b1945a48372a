"""The probe job: a linear probe on a frozen pretrained encoder, scored on the test subjects.

`osteo probe` and `experiments.run_one` both go through `fit_probe`; `probe_encoder` is the whole job as the
CLI (and later the Jobs panel) runs it. The subject split is the one the encoder's pretraining saw
(RUN/splits.json): with a manifest that has no split column, a split drawn anew could put the encoder's
training subjects into the probe's test set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..cards import ProbeCard, Provenance
from ..cohort import load_split_assignment
from ..errors import ConfigError
from ..fusion import READ, fill_values, fused, train_fused_probe
from ..radiogrammetry import UNITS
from ..registry import PROBE_INDICES
from ..runs import RunFolder
from ..storage import atomic_write_json
from .data import PatchBank, cached_patch_bank, probe_inputs
from .probe import Probe, ProbeConfig, encode, evaluate_probe, load_encoder, train_probe


@dataclass(frozen=True, kw_only=True)
class ProbeRequest:
    encoder: Path  # a pretraining run folder, or its encoder .safetensors
    data: Path  # labelled manifest CSV
    out: Path  # folder for probe.safetensors (+ card), report.json and the patch cache
    segmenter: Path | None = None  # for the bone patches; None: the bundled segmenter
    folds: int = 5  # subject-wise folds of train+val that choose the probe's strength and threshold
    protocol: str = "folds"  # or "paper": fitted on train, chosen on val at threshold 0.5 (ProbeConfig)
    radiogrammetry: str = "off"  # registry.PROBE_INDICES: append each image's indices to its patches' features
    command: str = ""


@dataclass(frozen=True)
class ProbeResult:
    probe: Path
    report: dict
    test_subjects: list[str]  # in memory only: report.json holds no subject identifiers
    skipped: list[str]  # images that could not be used, and why


@dataclass(frozen=True)
class FittedProbe:
    probe: Probe
    info: dict  # strength, threshold, validation macro-F1 (train_probe)
    features: np.ndarray  # (patches, F) of the bank the probe saw
    encoder: object


def encoder_checkpoint(path: str | Path) -> Path:
    """RUN/checkpoints/last.safetensors for a run folder; a file as it is."""
    path = Path(path)
    return path / "checkpoints" / "last.safetensors" if path.is_dir() else path


def fit_probe(checkpoint: Path, bank: PatchBank, config: ProbeConfig = ProbeConfig()) -> FittedProbe:
    """Encode every patch of `bank` with the frozen encoder and fit the probe on its train+val subjects."""
    encoder, _, _ = load_encoder(checkpoint)
    features = encode(encoder, bank.patches)
    probe, info = train_probe(features, bank, config)
    return FittedProbe(probe, info, features, encoder)


def fuse_probe(plain: FittedProbe, bank: PatchBank, config: ProbeConfig) -> FittedProbe:
    """The probe refitted on `plain`'s features with each patch's image's radiogrammetry appended (fusion.py).
    Raises ConfigError for a bank without indices, or whose T and W are not all in one unit."""
    fill = fill_values(bank)
    if bank.radiogrammetry_unit not in UNITS:
        raise ConfigError(
            "the patch bank's images do not all measure in one unit (some with a pixel spacing, some without), "
            "or it was cached before the unit was kept; fusion needs one unit (remove the probe's cache to remake it)."
        )
    features = fused(plain.features, bank, fill)
    probe, info = train_fused_probe(features, bank, config)
    fused_probe = replace(probe, fill=fill, indices_unit=bank.radiogrammetry_unit, indices=READ)
    return FittedProbe(fused_probe, info, features, plain.encoder)


def chosen_inputs(plain: FittedProbe, bank: PatchBank, config: ProbeConfig, mode: str) -> tuple[FittedProbe, dict]:
    """The probe on the inputs `mode` asks for (registry.PROBE_INDICES), and a record of the choice: each fitted
    kind's validation macro-F1 and which was kept ("auto" keeps the fused probe only when it scores higher)."""
    if mode not in PROBE_INDICES:
        raise ConfigError(f"unknown radiogrammetry mode {mode!r}; choose one of {', '.join(PROBE_INDICES)}.")
    if mode == "off":
        return plain, {}
    with_indices = fuse_probe(plain, bank, config)
    scores = {"encoder": plain.info["val_macro_f1"], "encoder+radiogrammetry": with_indices.info["val_macro_f1"]}
    keep = mode == "on" or scores["encoder+radiogrammetry"] > scores["encoder"]
    record = {"mode": mode, "val_macro_f1": scores, "kept": "encoder+radiogrammetry" if keep else "encoder"}
    return (with_indices if keep else plain), record


def probe_encoder(request: ProbeRequest, progress: Callable[[int, int], None] | None = None) -> ProbeResult:
    """The probe job. `progress(done, total)` follows the patch bank while it is built (images).
    Raises ConfigError for an unusable encoder or too few labelled subjects, CohortError for a bad manifest."""
    checkpoint = encoder_checkpoint(request.encoder)
    _, _, card = load_encoder(checkpoint)
    source = card.source
    bank = cached_patch_bank(
        request.data, card.patch_size, source, request.segmenter, request.out / "cache", 0, progress
    )
    assignment = load_split_assignment(RunFolder.of_checkpoint(checkpoint).splits)
    bank = probe_inputs(bank.with_splits(assignment), card.patch_size)
    config = ProbeConfig(folds=request.folds, protocol=request.protocol)
    fitted, fusion = chosen_inputs(fit_probe(checkpoint, bank, config), bank, config, request.radiogrammetry)
    report = {
        "encoder": str(checkpoint),
        "method": card.method_config["method"],
        "input": source,
        "split": "the encoder's pretraining run" if assignment else "the manifest",
        **fitted.info,
        **({"radiogrammetry": fusion} if fusion else {}),
        "test": evaluate_probe(fitted.probe, fitted.features, bank, "test"),
    }
    path = fitted.probe.save(
        request.out / "probe.safetensors",
        ProbeCard(
            provenance=Provenance.capture(request.command, [request.data]),
            threshold=fitted.probe.threshold,
            encoder=str(checkpoint),
            method=report["method"],
            input=source,
            fusion=fusion,
        ),
    )
    atomic_write_json(request.out / "report.json", report)
    test = (bank.splits == "test") & (bank.labels >= 0)
    return ProbeResult(path, report, sorted(set(bank.subjects[test].tolist())), list(bank.skipped))
