"""Segmenting one radiograph with a trained mixture segmenter.

The label map is the arg-max of the weighted mean prediction, restored to the radiograph's size; each bone
keeps its largest connected part. Each module's own label map (the arg-max of its samples' mean), and on
request every sample's, come with it, and the uncertainty is split into total predictive entropy, expected
entropy (aleatoric) and mutual information (the samples' disagreement): uncertainty.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from ..anatomy import BONES, NUM_CLASSES
from ..cards import SegmenterCard
from ..errors import ConfigError
from ..runs import load_model, pick_device
from ..sam import BonePrompter
from .data import Letterbox
from .error_map import ErrorMap, companion_path, load_error_map
from .identity import order_metacarpals
from .image_scores import IMAGE_SCORE, IMAGE_SCORES, MADE_FROM
from .metrics import mean_dice
from .model import MixtureSegmenter, SegmenterConfig
from .parts import MIN_AREA_FRACTION, largest_parts
from .reading import find_orientation, network_input, plausibility, reorient, repeatable, turned_back
from .second_opinion import combined_score, refine_with_sam, sam_disagreement
from .stability import instability
from .uncertainty import SampleMaps, effective_modules, module_disagreement, restored_labels, sample_maps

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "resources" / "models" / "segmenter.safetensors"
# Above this many pixels the label, confidence and entropy maps are made at a smaller size and enlarged: the
# network sees at most 480x384 pixels, and full-size class maps of a 100-megapixel file took 12 GB.
MAX_MAP_PIXELS = 16_000_000
# The modules' and samples' maps are made at most this large and enlarged (nearest) to the radiograph's size:
# still five times the network's resolution, for a fraction of the time of full-size maps.
OVERLAY_PIXELS = 1_000_000


@dataclass(frozen=True)
class BoneFinding:
    present: bool
    area_px: int
    mean_confidence: float  # mean of the winning class probability over the bone's pixels
    module_area_px: tuple[int, ...] = ()  # the bone's area in each module's map (counted at OVERLAY_PIXELS)
    module_present: tuple[bool, ...] = ()
    uncertainty: dict[str, float] = field(default_factory=dict)  # kind -> mean over the bone's pixels, nats
    module_disagreement: float = 0.0  # π-weighted 1 − IoU of the bone between modules (uncertainty.py)


@dataclass
class ModuleMap:
    weight: float  # π_k
    labels: np.ndarray  # (H, W) uint8: the arg-max of the module's mean over its samples

    @property
    def bones_found(self) -> int:
        minimum = MIN_AREA_FRACTION * self.labels.size
        counts = np.bincount(self.labels.ravel(), minlength=NUM_CLASSES)
        return int(sum(counts[v] >= minimum for v in BONES))


@dataclass
class SampleMap:
    module: int  # k, from 0
    weight: float  # α = π_k / S
    labels: np.ndarray  # (H, W) uint8


_MADE_BY = {  # how `segment` makes each part that image_scores.MADE_FROM names
    "instability": "the modules' readings (segment with modules=True)",
    "sam_disagreement": "SAM's redraw (segment with second_opinion)",
}


@dataclass
class Segmentation:
    labels: np.ndarray  # (H, W) uint8
    entropy: np.ndarray  # (H, W) float32, nats: total predictive entropy of the weighted mean
    routing: list[float]  # π_k
    bones: dict[str, BoneFinding]
    quarter_turns: int = 0  # counter-clockwise quarter turns that made the hand upright
    inverted: bool = False  # whether the file's contrast was read inverted (bone dark)
    expected_entropy: np.ndarray | None = None  # (H, W) float32, nats: aleatoric
    mutual_information: np.ndarray | None = None  # (H, W) float32, nats: epistemic
    sample_variance: np.ndarray | None = None  # (H, W) float32: the samples' variance around their mean
    modules: list[ModuleMap] = field(default_factory=list)
    samples: list[SampleMap] = field(default_factory=list)  # only when asked for
    error: np.ndarray | None = None  # (H, W) float32, 0–1: the error map's P(label wrong), when the model has one
    instability: float | None = None  # 0–1: 1 − Dice against readings of the image turned ±12° (stability.py)
    sam_disagreement: float | None = None  # 0–1: 1 − Dice against SAM's redraw of the bones (second_opinion.py)

    @property
    def effective_modules(self) -> float:
        """exp(H(π)): 1 when one module takes all the weight, K when all weigh the same."""
        return effective_modules(self.routing)

    def mean_uncertainty(self, kind: str = "total") -> float:
        """Mean of one uncertainty map (nats: "total", "expected" or "mutual_information"; a probability: "error")
        over the pixels the model calls bone, or over the image when none. Raises KeyError for another kind, or
        for "error" when the segmenter has no error map."""
        values = self.uncertainty_maps()[kind]
        bone = self.labels > 0
        return float(values[bone].mean() if bone.any() else values.mean())

    def expected_error(self) -> float:
        """The segmentation's own estimate of its label map's 1 − mean Dice over the bones: that 1 − Dice against
        each of its samples (each module's map when the samples were not kept), weighted by α (π). If the samples
        are drawn as a rater would draw, this is the expected error against a rater. It ranks images by their
        real error better than the mean entropy on every set measured (Spearman 0.27 against 0.22 on the
        atlas's 91 training images, 0.77 against 0.49 on h0 test), the instability better still on the atlas
        (README). Raises ValueError for a segmentation made with `modules=False`."""
        maps = self.samples or self.modules
        if not maps:
            raise ValueError("the expected error needs the modules' maps (segment with modules=True)")
        errors = [1.0 - mean_dice(self.labels, m.labels) for m in maps]
        weights = np.array([m.weight for m in maps], np.float64)
        return float(np.dot(errors, weights / weights.sum())) if weights.sum() > 0 else float(np.mean(errors))

    def image_score(self, kind: str = IMAGE_SCORE) -> float:
        """One of `IMAGE_SCORES` by name, 0–1 (1 − Dice): "instability" (stability.py), "expected_error",
        "sam_disagreement" or "combined", the geometric mean of those two (second_opinion.py). Raises ValueError
        when this segmentation lacks what the score needs (the modules' readings, `second_opinion`), KeyError
        for another name."""
        if kind not in IMAGE_SCORES:
            raise KeyError(f"no image score {kind!r}; the scores are {', '.join(IMAGE_SCORES)}")
        if kind == "expected_error":
            return self.expected_error()
        value = self.image_scores()[kind]
        if value is None:
            needs = " and ".join(_MADE_BY[p] for p in MADE_FROM[kind] if getattr(self, p) is None)
            raise ValueError(f"the {kind.replace('_', ' ')} score needs {needs}")
        return value

    def image_scores(self) -> dict[str, float | None]:
        """The scores made while segmenting, by name (None where not made): those besides `expected_error`."""
        combined = combined_score(self.instability, self.sam_disagreement)
        return {"instability": self.instability, "sam_disagreement": self.sam_disagreement, "combined": combined}

    def summary(self) -> dict:
        return {
            "mean_uncertainty": round(self.mean_uncertainty(), 4),
            "expected_error": round(self.expected_error(), 4) if self.modules else None,
            **{k: None if v is None else round(v, 4) for k, v in self.image_scores().items()},
            "uncertainty": self.uncertainty_summary(),
            "routing": [round(p, 4) for p in self.routing],
            "effective_modules": round(self.effective_modules, 4),
            "orientation": {"quarter_turns": self.quarter_turns, "inverted": self.inverted},
            "modules": [{"weight": round(m.weight, 4), "bones_found": m.bones_found} for m in self.modules],
            "bones": {b: _finding_json(f) for b, f in self.bones.items()},
        }

    def uncertainty_maps(self) -> dict[str, np.ndarray]:
        """The uncertainty maps this segmentation has, by kind."""
        maps = {
            "total": self.entropy,
            "expected": self.expected_entropy,
            "mutual_information": self.mutual_information,
            "error": self.error,
        }
        return {k: v for k, v in maps.items() if v is not None}

    def uncertainty_summary(self) -> dict[str, float]:
        """`mean_uncertainty` of each kind."""
        return {k: round(self.mean_uncertainty(k), 4) for k in self.uncertainty_maps()}


@dataclass
class LoadedSegmenter:
    model: MixtureSegmenter
    input_size: tuple[int, int]
    card: SegmenterCard
    device: torch.device
    error_map: ErrorMap | None = None  # the learned map of likely errors, when one lies beside the weights


def load_segmenter(path: str | Path | None = None, device: str | None = None) -> LoadedSegmenter:
    path = Path(path) if path else DEFAULT_MODEL
    if not path.exists():
        raise ConfigError(f"no segmentation model at {path}; train one with `osteo segment train`.")
    state, card = load_model(path, SegmenterCard)
    try:
        model = MixtureSegmenter(SegmenterConfig(**card.model_config))
        model.load_state_dict(state)
        offset_background(model, card.background_logit_offset)
        input_size = tuple(int(v) for v in card.input_size)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"{path.name} does not hold a mixture segmenter ({str(exc).splitlines()[0][:160]}).") from exc
    if len(input_size) != 2 or min(input_size) < 16:
        raise ConfigError(
            f"{path.with_suffix('.json').name} gives an input size {input_size} that is not "
            "(width, height) of at least 16 pixels."
        )
    target = pick_device(device)
    # channels_last: the U-Net's convolutions ran 1.5x faster on 2 CPU cores (bench/patch_bank_speed.py)
    model = model.eval().to(target, memory_format=torch.channels_last)
    errors = companion_path(path)
    return LoadedSegmenter(model, input_size, card, target, load_error_map(errors) if errors.exists() else None)


def offset_background(model: MixtureSegmenter, offset: float) -> None:
    """Adds `offset` to the background logit of every sample (the heads' last bias). A cross-entropy that weighs
    the background by w learns probabilities tilted toward the bones by 1/w; adding −log w undoes the tilt
    (logit adjustment). On atlas val it raised the mean Dice from 0.860 to 0.870 and the entropy's pixel AUROC
    from 0.900 to 0.915, and the phantoms' Dice against the truth too (README)."""
    with torch.no_grad():
        model.heads.biases[-1][:, 0] += offset


@torch.inference_mode()
def segment(
    pixels: np.ndarray,
    segmenter: LoadedSegmenter,
    samples: int = 4,
    anatomical_order: bool = False,
    refine: BonePrompter | None = None,
    second_opinion: BonePrompter | None = None,
    find_upright: bool = True,
    keep_samples: bool = False,
    modules: bool = True,
    score_instability: bool = True,
) -> Segmentation:
    """Segment one radiograph. `pixels` is (H, W) float32 in 0–1, bone bright or dark; the result's maps are
    (H, W) in the file's own orientation: `labels` uint8 (0 background, 1 ulna, 2 radius, 3–7 M1–M5), the
    confidence and the entropy (nats) of the mean prediction over `samples` samples of each module.

    `find_upright` first turns the image by quarter turns and inverts its contrast where that makes the hand
    look like the training hands (`find_orientation`); `anatomical_order` gives each metacarpal part one
    identity, in order across the hand (identity.py; off by default, see the model card's evaluations);
    `refine` redraws each bone found with SAM, prompted by a box made from the network's mask (the modules'
    and samples' maps stay the network's). `second_opinion` has SAM redraw the network's bones the same way and
    scores the network's map against that redraw (`sam_disagreement`; with `refine` too, one redraw serves
    both). `keep_samples` adds every sample's label map; `modules=False`
    leaves out the modules' maps, their per-bone figures and the `instability` (for callers that need the
    label map alone, such as patch banks: it saves K·C resizes, the modules' statistics and the two turned
    readings); `score_instability=False` keeps the modules' maps but skips the two turned readings (a caller that
    ranks by the expected error, such as a refer policy made before the instability). Raises ValueError for an
    array that is not 2-D."""
    if pixels.ndim != 2:
        raise ValueError(f"segment takes one grey image (H, W), not an array of shape {pixels.shape}.")
    turns, inverted = 0, False
    upright, box, x, out = _read(pixels, segmenter, samples, turns, inverted)
    if find_upright:  # the as-stored reading settles it when confident; else the orientation search
        as_stored = plausibility(out.mean_probabilities()[0].float().cpu().numpy())
        turns, inverted = find_orientation(pixels, segmenter, as_stored)
        if turns or inverted:
            upright, box, x, out = _read(pixels, segmenter, samples, turns, inverted)
    maps = sample_maps(out.logits[0], out.routing[0])
    unstable = None
    if modules and score_instability:
        unstable = instability(x[0, 0].float().cpu().numpy(), box.content, maps.mean, segmenter)
    if anatomical_order:
        maps.mean = order_metacarpals(maps.mean)
        maps.modules = np.stack([order_metacarpals(m) for m in maps.modules])
    work = replace(box, original=_working_shape(upright.shape))
    labels, confidence, entropy = _pixel_maps(maps.mean, work)
    labels = largest_parts(labels)
    floats = {"entropy": entropy, "confidence": confidence}
    # total entropy comes from the restored mean (sharp edges); the samples' disagreement is restored from the
    # network's size, and the aleatoric part is the rest, so that total = expected + mutual information here too
    mi = np.minimum(work.restore(maps.mutual_information[None])[0], entropy)
    floats.update(mi=mi, expected=entropy - mi, variance=work.restore(maps.variance[None])[0])
    modules, drawn = _module_and_sample_maps(maps, work, keep_samples) if modules else ([], [])
    module_stats = _module_stats(modules, maps.routing, upright.size / modules[0].size if modules else 1.0)
    if work.original != upright.shape:  # a very large image: maps made at a smaller size, enlarged at the end
        labels, floats = _nearest(labels, upright.shape), {k: _linear(v, upright.shape) for k, v in floats.items()}
    redrawn = refine_with_sam(upright, labels, refine or second_opinion) if refine or second_opinion else None
    disagreement = sam_disagreement(labels, redrawn) if second_opinion is not None else None
    if refine is not None:
        labels = redrawn
    findings = _findings(labels, floats, *module_stats)
    back = turned_back(turns)
    labels, floats = back(labels), {k: back(v) for k, v in floats.items()}
    modules, drawn = ([back(_nearest(m, upright.shape)) for m in group] for group in (modules, drawn))
    error = None
    if modules and segmenter.error_map is not None:  # patch banks (modules=False) have no use for it
        error = segmenter.error_map.map(pixels, labels, floats["entropy"], floats["mi"])
    return Segmentation(
        labels,
        floats["entropy"],
        maps.routing.tolist(),
        findings,
        turns,
        inverted,
        expected_entropy=floats["expected"],
        mutual_information=floats["mi"],
        sample_variance=floats["variance"],
        modules=[ModuleMap(float(w), m) for w, m in zip(maps.routing, modules)],  # empty with modules=False
        samples=[SampleMap(i // samples, float(maps.weights.flat[i]), d) for i, d in enumerate(drawn)],
        error=error,
        instability=unstable,
        sam_disagreement=disagreement,
    )


def _read(pixels: np.ndarray, segmenter: LoadedSegmenter, samples: int, turns: int, inverted: bool):
    """(the image turned upright, its Letterbox, the network's input (1, 1, H_in, W_in), its SegmenterOutput)."""
    upright = reorient(pixels, turns, inverted)
    box, x = network_input(upright, segmenter)
    return upright, box, x, segmenter.model(x, samples=samples, generator=repeatable(segmenter))


def _module_and_sample_maps(maps: SampleMaps, box: Letterbox, keep_samples: bool):
    """(each module's label map, every sample's label map or none), upright, at most OVERLAY_PIXELS large."""
    h, w = box.original
    scale = min(1.0, math.sqrt(OVERLAY_PIXELS / (h * w)))
    small = replace(box, original=(max(1, round(h * scale)), max(1, round(w * scale))))
    modules = [restored_labels(m, small) for m in maps.modules]
    samples = maps.samples.reshape(-1, *maps.samples.shape[2:]) if keep_samples else []
    return modules, [restored_labels(p, small) for p in samples]


def _module_stats(modules: list[np.ndarray], routing: np.ndarray, area_scale: float):
    """(each module's area per label (K, C) in the radiograph's pixels, the modules' disagreement per label)."""
    areas = np.array([np.bincount(m.ravel(), minlength=NUM_CLASSES) for m in modules]) * area_scale
    return areas.reshape(len(modules), NUM_CLASSES), module_disagreement(modules, routing, NUM_CLASSES)


def _nearest(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return labels if labels.shape == shape else cv2.resize(labels, shape[::-1], interpolation=cv2.INTER_NEAREST)


def _linear(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return cv2.resize(values, shape[::-1], interpolation=cv2.INTER_LINEAR)


def _working_shape(shape: tuple[int, int]) -> tuple[int, int]:
    """The image's size, or a smaller one of the same aspect with at most `MAX_MAP_PIXELS` pixels."""
    h, w = shape
    scale = min(1.0, math.sqrt(MAX_MAP_PIXELS / (h * w)))
    return (h, w) if scale == 1.0 else (max(1, int(h * scale)), max(1, int(w * scale)))


def _pixel_maps(mean: np.ndarray, box: Letterbox) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(arg-max labels uint8, confidence, entropy in nats) at `box.original`, from the network's mean class
    probabilities (C, H_in, W_in). Built a class at a time in place: about 50 bytes a pixel at the peak."""
    probs = box.restore(mean)
    total = probs.sum(0)
    np.maximum(total, 1e-6, out=total)
    probs /= total
    del total
    labels = probs.argmax(0).astype(np.uint8)
    confidence = probs.max(0)
    entropy = np.zeros(box.original, np.float32)
    for channel in probs:
        entropy -= channel * np.log(np.maximum(channel, 1e-8))
    return labels, confidence, entropy


def _findings(
    labels: np.ndarray, floats: dict[str, np.ndarray], module_areas: np.ndarray, disputed: np.ndarray
) -> dict[str, BoneFinding]:
    """Per bone: presence, area and confidence in the label map; its area in each module's map; the mean of
    each uncertainty over it; and how differently the modules draw it. Sums per label come from one
    weighted bincount per map over the bones' pixels, not a mask per bone."""
    minimum = MIN_AREA_FRACTION * labels.size
    bone = labels > 0
    flat = labels[bone]
    areas = np.bincount(flat, minlength=NUM_CLASSES)
    means = {
        kind: np.bincount(flat, weights=floats[key][bone], minlength=NUM_CLASSES) / np.maximum(areas, 1)
        for kind, key in (
            ("confidence", "confidence"),
            ("total", "entropy"),
            ("expected", "expected"),
            ("mutual_information", "mi"),
        )
    }
    out = {}
    for value, name in BONES.items():
        drawn = tuple(int(round(a[value])) for a in module_areas)
        out[name] = BoneFinding(
            present=bool(areas[value] >= minimum),
            area_px=int(areas[value]),
            mean_confidence=float(means["confidence"][value]),
            module_area_px=drawn,
            module_present=tuple(a >= minimum for a in drawn),
            uncertainty={k: float(means[k][value]) for k in ("total", "expected", "mutual_information")},
            module_disagreement=float(disputed[value]),
        )
    return out


def _finding_json(f: BoneFinding) -> dict:
    return {
        "present": f.present,
        "area_px": f.area_px,
        "mean_confidence": round(f.mean_confidence, 4),
        "uncertainty": {k: round(v, 4) for k, v in f.uncertainty.items()},
        "module_present": list(f.module_present),
        "module_area_px": list(f.module_area_px),
        "module_disagreement": round(f.module_disagreement, 4),
    }


def entropy_png(entropy: np.ndarray) -> np.ndarray:
    """Entropy scaled to 8 bits: 255 is the maximum, log(8 classes)."""
    return np.round(np.clip(entropy / np.log(NUM_CLASSES), 0, 1) * 255).astype(np.uint8)
