"""Screening one radiograph: segment → bone patches → bone probabilities → subject probability → decision.

The decision is `normal`, `osteoporosis` or `refer`. It refers, and says why, when the answer is unreliable:
too few bones found, a segmentation too uncertain, or a probability too close to the threshold. The
probability is always reported, also when referring.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .anatomy import BONE_NAMES
from .patches import bone_patches
from .population import Demographics, PopulationCheck, check_population
from .radiogrammetry import BoneMeasurement, measure_bones, radiogrammetry_json
from .segmentation.image_scores import IMAGE_SCORE, LEGACY_SCORE, MADE_FROM, score_label

if TYPE_CHECKING:
    from .screening_model import ScreeningModel
    from .segmentation.predict import Segmentation

DISCLAIMER = (
    "Research tool, not a medical device: this is not a diagnosis. Osteoporosis is diagnosed by DXA and a clinician."
)
# the default policy's; a calibrated one sizes its own (screening_model.py): with the bundled segmenter, the 1%
# most unstable of phantom cohort c2 lay above 0.114, so this refers only what is far outside the ordinary
INSTABILITY_LIMIT = 0.15
MAX_SCREEN_PIXELS = 16_000_000  # larger images are screened from a copy shrunk to this size (`working_copy`)


@dataclass(frozen=True)
class ReferPolicy:
    min_bones: int = 5  # fewer bones found than this: refer
    # the segmentation's image score `score` (`Segmentation.image_score`, 1 − Dice) above this: refer
    max_uncertainty: float = INSTABILITY_LIMIT
    margin: float = 0.05  # |probability − threshold| below this: refer
    score: str = IMAGE_SCORE  # one of image_scores.IMAGE_SCORES


@dataclass
class ScreeningResult:
    probability: float | None  # mean over the bones found; None when there is none to give (then `refer`)
    decision: str
    reasons: list[str]
    bones: dict[str, dict]
    uncertainty: float | None  # the segmentation's image score (1 − Dice, 0–1); None when not a number
    threshold: float
    timings_s: dict[str, float]
    model: dict
    orientation: dict = field(default_factory=dict)  # how the file was read: quarter turns, inverted contrast
    population: dict = field(default_factory=dict)  # PopulationCheck: the person's age against the model's
    radiogrammetry: dict = field(default_factory=dict)  # radiogrammetry_json: the metacarpals' T, W, MCI, BHI
    uncertainty_score: str = LEGACY_SCORE  # which image score `uncertainty` is (answers saved before: this one)
    disclaimer: str = DISCLAIMER

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Screened:
    """A screening answer with what it was made from, for a reader who wants to see why."""

    result: ScreeningResult
    segmentation: Segmentation  # maps at the size of `pixels`
    pixels: np.ndarray  # the image screened: the input, or its working copy when that was smaller
    measurements: dict[str, BoneMeasurement] = field(default_factory=dict)  # with their edges, for drawing


def screen(
    pixels: np.ndarray,
    model: ScreeningModel,
    pixel_spacing_mm: float | None = None,
    person: Demographics | None = None,
) -> ScreeningResult:
    """pixels (H, W) float32 in [0, 1], bone bright; `pixel_spacing_mm` of a row; `person` the age and sex the
    file or the user gives (unknown when None). The probability is None when there is none to give (no bones,
    or a model output that is not a number), and the decision is then `refer`; so it is for a person outside
    the model's population."""
    return screen_image(pixels, model, pixel_spacing_mm, person).result


def screen_image(
    pixels: np.ndarray,
    model: ScreeningModel,
    pixel_spacing_mm: float | None = None,
    person: Demographics | None = None,
) -> Screened:
    """`screen`, keeping the segmentation (every module's map and the uncertainty maps) for display."""
    from .segmentation.jobs import load_refiner
    from .segmentation.predict import segment

    timings = {}
    started = time.perf_counter()
    pixels, pixel_spacing_mm = working_copy(pixels, pixel_spacing_mm)
    needs = MADE_FROM[model.policy.score]
    seg = segment(
        pixels,
        model.segmenter,
        score_instability="instability" in needs,
        second_opinion=load_refiner("sam") if "sam_disagreement" in needs else None,
    )
    timings["segment"] = time.perf_counter() - started
    started = time.perf_counter()
    measurements = measure_bones(1.0 - pixels if seg.inverted else pixels, seg.labels, pixel_spacing_mm)
    timings["radiogrammetry"] = time.perf_counter() - started
    started = time.perf_counter()
    indices, fusion_note = _probe_indices(measurements, model)
    found, *per_module = _bone_probabilities(
        pixels, [seg.labels, *(m.labels for m in seg.modules)], model, pixel_spacing_mm, indices
    )
    spread = _module_spread(per_module, [m.weight for m in seg.modules])
    timings["classify"] = time.perf_counter() - started
    probability = float(np.mean(list(found.values()))) if found else float("nan")
    bones = {
        b: {"present": b in found, "probability": _number(found.get(b)), "spread": _number(spread.get(b), 4)}
        for b in BONE_NAMES
    }
    # a NaN anywhere in the segmenter's maps, also outside the bones, makes the whole answer suspect
    uncertainty = seg.image_score(model.policy.score) if np.isfinite(seg.entropy).all() else float("nan")
    population = check_population(person or Demographics(), model.population)
    decision, reasons = decide(probability, len(found), uncertainty, model.probe.threshold, model.policy, population)
    timings = {k: round(v, 3) for k, v in timings.items()}
    result = ScreeningResult(
        _number(probability),
        decision,
        reasons,
        bones,
        _number(uncertainty, 4),
        model.probe.threshold,
        timings,
        model.names,
        {"quarter_turns": seg.quarter_turns, "inverted": seg.inverted},
        population.to_json(),
        radiogrammetry_json(measurements) | ({"fusion_note": fusion_note} if fusion_note else {}),
        model.policy.score,
    )
    return Screened(result, seg, pixels, measurements)


def _probe_indices(measurements: dict, model: ScreeningModel) -> tuple[np.ndarray | None, str]:
    """What a fused probe appends to every patch's features (the image's indices, `fusion.image_indices`) and its
    note; (None, "") for a probe that reads the encoder's features alone."""
    if model.probe.fill is None:
        return None, ""
    from .fusion import image_indices

    return image_indices(measurements, model.probe.fill, model.probe.indices_unit, model.probe.indices)


def _bone_probabilities(
    pixels: np.ndarray,
    label_maps: list[np.ndarray],
    model: ScreeningModel,
    pixel_spacing_mm: float | None,
    indices: np.ndarray | None = None,
) -> list[dict[str, float]]:
    """For each label map, each bone's probability: its patch through the encoder and the probe, with the image's
    radiogrammetry `indices` appended for a fused probe (measured on the weighted-mean map, so the same for every
    module's map). The patches of every map go through the encoder together, each distinct patch once (modules
    often draw a bone alike)."""
    from .ssl.probe import encode

    found = [bone_patches(pixels, labels, model.patch_size, pixel_spacing_mm=pixel_spacing_mm) for labels in label_maps]
    index: dict[bytes, int] = {}
    distinct = []
    for patch in (p for patches in found for p in patches.patches):
        if index.setdefault(patch.pixels.tobytes(), len(distinct)) == len(distinct):
            distinct.append(patch.pixels)
    if not distinct:
        return [{} for _ in label_maps]
    features = encode(model.encoder, np.stack(distinct))
    if indices is not None:
        features = np.concatenate([features, np.repeat(indices[None], len(features), axis=0)], axis=1)
    probs = model.probe.patch_probabilities(features)
    return [{p.bone: float(probs[index[p.pixels.tobytes()]]) for p in patches.patches} for patches in found]


def _module_spread(per_module: list[dict[str, float]], weights: list[float]) -> dict[str, float]:
    """Per bone, how far its probability moves when its patch comes from each module's own map instead: the
    π-weighted standard deviation over the modules that find it (the error bars of the per-bone chart). A
    bone fewer than two modules find has none."""
    spread = {}
    for bone in BONE_NAMES:
        values = [(w, found[bone]) for w, found in zip(weights, per_module) if bone in found]
        w = np.array([v[0] for v in values])
        if len(values) < 2 or w.sum() <= 0:
            continue
        probs = np.array([v[1] for v in values])
        mean = np.average(probs, weights=w)
        spread[bone] = float(np.sqrt(np.average((probs - mean) ** 2, weights=w)))
    return spread


def working_copy(pixels: np.ndarray, pixel_spacing_mm: float | None) -> tuple[np.ndarray, float | None]:
    """The image shrunk to at most `MAX_SCREEN_PIXELS` (area averaging) with its spacing scaled to match; an
    image within the limit is returned as it is. Bone patches are 0.5 mm a pixel or coarser, so nothing they
    show is lost, and a 100-megapixel file no longer needs gigabytes on its way through."""
    h, w = pixels.shape
    if h * w <= MAX_SCREEN_PIXELS:
        return pixels, pixel_spacing_mm
    scale = math.sqrt(MAX_SCREEN_PIXELS / (h * w))
    size = (max(1, int(w * scale)), max(1, int(h * scale)))
    small = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    return small, pixel_spacing_mm * w / size[0] if pixel_spacing_mm else None


def shown(value: float | None) -> str:
    """A number as answers print it: two decimals, or "none" when there is none (or it is not a number)."""
    return "none" if value is None or value != value else f"{value:.2f}"


def segmentation_uncertainty(result: dict) -> str:
    """The answer's segmentation score in words: "instability 0.06 (1 − Dice)". `result` as
    ScreeningResult.to_json gives it; an answer saved before it named its score has the expected error."""
    return f"{score_label(result.get('uncertainty_score', LEGACY_SCORE))} {shown(result['uncertainty'])} (1 − Dice)"


def how_read(orientation: dict) -> str:
    """How the file was read, in words ("turned 90° counter-clockwise and with inverted contrast"); "" when it
    was read as stored. `orientation` as in ScreeningResult."""
    turns, inverted = orientation.get("quarter_turns", 0), orientation.get("inverted", False)
    parts = [f"turned {90 * turns}° counter-clockwise"] * bool(turns) + ["with inverted contrast"] * bool(inverted)
    return " and ".join(parts)


def _number(value: float | None, digits: int | None = None) -> float | None:
    """A finite float (rounded when asked), or None: NaN never reaches a result."""
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits) if digits is not None else float(value)


def refer_checks(
    probability: float,
    bones_found: int,
    uncertainty: float,
    threshold: float,
    policy: ReferPolicy,
    population: PopulationCheck | None = None,
) -> dict[str, bool]:
    """Which of the policy's reasons to refer hold (by name, as audits count them). A number that is not finite
    (a model whose weights went NaN, say) can never be compared with a limit, so it is a reason of its own; a
    person known to lie outside the model's population is another."""
    return {
        "outside_population": population is not None and population.within is False,
        "not_a_number": _not_a_number(probability, bones_found, uncertainty, threshold),
        "too_few_bones": bones_found < policy.min_bones,
        "uncertain_segmentation": uncertainty > policy.max_uncertainty,
        "near_threshold": bool(math.isfinite(probability) and abs(probability - threshold) < policy.margin),
    }


def _not_a_number(probability: float, bones_found: int, uncertainty: float, threshold: float) -> bool:
    """With no bones there is no probability to give, which `too_few_bones` already says."""
    return not (
        math.isfinite(uncertainty) and math.isfinite(threshold) and (bones_found == 0 or math.isfinite(probability))
    )


def decide(
    probability: float,
    bones_found: int,
    uncertainty: float,
    threshold: float,
    policy: ReferPolicy,
    population: PopulationCheck | None = None,
) -> tuple[str, list[str]]:
    checks = refer_checks(probability, bones_found, uncertainty, threshold, policy, population)
    reasons = []
    if checks["outside_population"]:
        reasons.append(f"{population.note} Its answer for this person would be a guess.")
    if checks["not_a_number"]:
        reasons.append(
            "the model gave a value that is not a number (probability, segmentation uncertainty or "
            "threshold); the model files may be damaged."
        )
    if checks["too_few_bones"]:
        reasons.append(f"only {bones_found} of 7 bones were found (at least {policy.min_bones} are needed).")
    if checks["uncertain_segmentation"]:
        reasons.append(
            f"the bone segmentation is uncertain ({score_label(policy.score)} {uncertainty:.2f} above "
            f"{policy.max_uncertainty:.2f})."
        )
    if checks["near_threshold"]:
        reasons.append(
            f"the probability {probability:.2f} is within {policy.margin:.2f} of the decision "
            f"threshold {threshold:.2f}."
        )
    if reasons:
        return "refer", reasons
    if probability >= threshold:
        return "osteoporosis", [f"the probability {probability:.2f} is above the threshold {threshold:.2f}."]
    return "normal", [f"the probability {probability:.2f} is below the threshold {threshold:.2f}."]
