"""Screening one radiograph: segment → bone patches → bone probabilities → subject probability → decision.

The decision is `normal`, `osteoporosis` or `refer`. It refers, and says why, when the answer is unreliable:
too few bones found, a segmentation too uncertain, or a probability too close to the threshold. The
probability is always reported, also when referring.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .anatomy import BONE_NAMES
from .errors import ConfigError
from .patches import bone_patches

DISCLAIMER = ("Research tool, not a medical device: this is not a diagnosis. Osteoporosis is diagnosed by DXA "
              "and a clinician.")
MODELS = Path(__file__).resolve().parents[1] / "resources" / "models"


@dataclass(frozen=True)
class ReferPolicy:
    min_bones: int = 5  # fewer bones found than this: refer
    max_uncertainty: float = 0.35  # mean predictive entropy (nats) over the bones above this: refer
    margin: float = 0.05  # |probability − threshold| below this: refer


@dataclass
class ScreeningResult:
    probability: float
    decision: str
    reasons: list[str]
    bones: dict[str, dict]
    uncertainty: float
    threshold: float
    timings_s: dict[str, float]
    model: dict
    orientation: dict = field(default_factory=dict)  # how the file was read: quarter turns, inverted contrast
    disclaimer: str = DISCLAIMER

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class ScreeningModel:
    segmenter: object  # LoadedSegmenter
    encoder: object
    probe: object  # Probe
    patch_size: int
    policy: ReferPolicy = field(default_factory=ReferPolicy)
    names: dict = field(default_factory=dict)


def load_screening_model(folder: str | Path | None = None, segmenter: str | Path | None = None) -> ScreeningModel:
    """A folder with `encoder.safetensors` and `probe.safetensors` (default: the bundled demo classifier)."""
    from .segmentation.predict import load_segmenter
    from .ssl.probe import Probe, load_encoder

    folder = Path(folder) if folder else MODELS / "screening"
    if not (folder / "probe.safetensors").exists() or not (folder / "encoder.safetensors").exists():
        raise ConfigError(f"no screening model in {folder} (encoder.safetensors and probe.safetensors); "
                          "train one with `osteo pretrain` and `osteo probe`.")
    loaded_segmenter = load_segmenter(segmenter)
    encoder, _, encoder_card = load_encoder(folder / "encoder.safetensors")
    probe, probe_card = Probe.load(folder / "probe.safetensors")
    policy = ReferPolicy(**probe_card.get("refer_policy", {}))
    names = {"segmenter": loaded_segmenter.card.get("name", "segmenter"),
             "encoder": f"{encoder_card['method_config']['method']} {encoder_card['method_config']['encoder']}",
             "probe": probe_card.get("name", "linear probe"), "trained_on": probe_card.get("trained_on", "")}
    return ScreeningModel(loaded_segmenter, encoder, probe, int(encoder_card["patch_size"]), policy, names)


def screen(pixels: np.ndarray, model: ScreeningModel, pixel_spacing_mm: float | None = None) -> ScreeningResult:
    from .segmentation.predict import segment
    from .ssl.probe import encode

    timings = {}
    started = time.perf_counter()
    seg = segment(pixels, model.segmenter)
    timings["segment"] = time.perf_counter() - started
    started = time.perf_counter()
    patches = bone_patches(pixels, seg.labels, model.patch_size, pixel_spacing_mm=pixel_spacing_mm)
    bone_probs = (model.probe.patch_probabilities(encode(model.encoder, patches.stack()))
                  if patches.patches else np.zeros(0))
    timings["classify"] = time.perf_counter() - started
    probability = float(bone_probs.mean()) if len(bone_probs) else float("nan")
    found = dict(zip(patches.names, bone_probs.tolist()))
    bones = {b: {"present": b in found, "probability": found.get(b)} for b in BONE_NAMES}
    uncertainty = seg.mean_uncertainty()
    decision, reasons = decide(probability, len(found), uncertainty, model.probe.threshold, model.policy)
    if np.isnan(probability):
        probability = 0.0  # always a number; the decision is `refer` and says why
    timings = {k: round(v, 3) for k, v in timings.items()}
    return ScreeningResult(probability, decision, reasons, bones, round(uncertainty, 4), model.probe.threshold,
                           timings, model.names, {"quarter_turns": seg.quarter_turns, "inverted": seg.inverted})


def refer_checks(probability: float, bones_found: int, uncertainty: float, threshold: float, policy: ReferPolicy
                 ) -> dict[str, bool]:
    """Which of the policy's reasons to refer hold (by name, as audits count them)."""
    return {"too_few_bones": bones_found < policy.min_bones,
            "uncertain_segmentation": uncertainty > policy.max_uncertainty,
            "near_threshold": bool(not np.isnan(probability) and abs(probability - threshold) < policy.margin)}


def decide(probability: float, bones_found: int, uncertainty: float, threshold: float, policy: ReferPolicy
           ) -> tuple[str, list[str]]:
    checks = refer_checks(probability, bones_found, uncertainty, threshold, policy)
    reasons = []
    if checks["too_few_bones"]:
        reasons.append(f"only {bones_found} of 7 bones were found (at least {policy.min_bones} are needed).")
    if checks["uncertain_segmentation"]:
        reasons.append(f"the bone segmentation is uncertain (mean entropy {uncertainty:.2f} above "
                       f"{policy.max_uncertainty:.2f}).")
    if checks["near_threshold"]:
        reasons.append(f"the probability {probability:.2f} is within {policy.margin:.2f} of the decision "
                       f"threshold {threshold:.2f}.")
    if reasons:
        return "refer", reasons
    if probability >= threshold:
        return "osteoporosis", [f"the probability {probability:.2f} is above the threshold {threshold:.2f}."]
    return "normal", [f"the probability {probability:.2f} is below the threshold {threshold:.2f}."]
