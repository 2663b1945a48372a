"""Radiogrammetry of the metacarpals, radius and ulna: cortical thickness T, width W, the cortical (metacarpal)
index MCI = 2T/W and the bone health index BHI = π·T·(1 − T/W)/(L·W)^0.33, measured on the radiograph along each
bone's mid-shaft (for the radius and ulna, the middle of what the image shows of them).

A metacarpal's shaft is a hollow tube, and its radiograph is the tube's projection: across the shaft the
intensity rises steeply at the outer (periosteal) edge, peaks where the ray grazes the inner (endosteal) edge,
and falls toward the marrow. So, on each of `PROFILES` intensity profiles perpendicular to the bone's axis
(evenly spaced over the middle `SHAFT` of its length, the axis and length from its mask):
- the outer edges are the steepest rise on either side (sub-pixel, by a parabola through the gradient's peak);
- the inner edges are the steepest fall past the intensity peak that follows (sub-pixel likewise). The peak
  itself lies where the ray grazes the marrow, but blur moves it outward, toward the side that falls slowly;
  the two steepest slopes, both at edges where the projected thickness changes as a square root, are moved
  inward alike, so T keeps no bias while W is about 4% short (bench/radiogrammetry_accuracy.py, phantoms);
- W is the distance between the outer edges and T the mean of the two sides' outer-to-inner distances.
Profiles whose edges are not found, or whose T is not between 0 and W/2, are dropped; of the rest, those further
from the median W or T than `OUTLIER_MADS` robust standard deviations (1.4826 median absolute deviations) and
`OUTLIER_FLOOR` of the median are dropped, and the others averaged.

Lengths are in mm when the pixel spacing is known, in pixels otherwise (`unit` says which); BHI follows
BoneXpert's formula with lengths in mm (in pixels it is only comparable between images of one spacing).

Two densities, both ratios of differences within the image (so free of its window): RMD, the marrow seen
through the mid-shaft, and RBD, the trabecular bone near the wrist end (base_density.py), which follows the bone's
density far more closely.

The hand's summary (`SUMMARY`): the mean MCI and the median RBD over its bones that were read, where at least
`SUMMARY_MIN_BONES` were. Disease thins every bone's cortex and trabeculae together, so these keep that shared
part and average away each bone's own noise; two numbers are also all a probe fitted on a few hundred subjects
can weigh without overfitting (README, "Radiogrammetry", has the figures). RBD takes the median because a mask
that runs on into a neighbour (a radius into the carpals) moves its region onto brighter bone now and then.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import cv2
import numpy as np

from .anatomy import BONE_IDS, BONES, bone_extents
from .base_density import base_density, centroid
from .cortex_profiles import STEP, read_profiles
from .errors import AnnotationError

METACARPALS = ("M1", "M2", "M3", "M4", "M5")
FOREARM = ("ulna", "radius")
MEASURED = FOREARM + METACARPALS  # measure_bones' bones, in anatomy.BONES' order
SHAFT = (0.35, 0.65)  # the mid-shaft region, as shares of the bone's length from its proximal end
PROFILES = 160
OUTLIER_MADS = 3.0
OUTLIER_FLOOR = 0.03  # of the median
MIN_KEPT = 0.5  # a bone whose profiles are kept less often than this is flagged
KINDS = ("MCI", "T", "W", "RMD", "RBD")  # of each bone
SUMMARY = ("hand_MCI", "hand_RBD")
SUMMARY_MIN_BONES = 4
# feature_vector's order
FEATURES = tuple(f"{bone}_{kind}" for bone in MEASURED for kind in KINDS) + SUMMARY
UNITS = ("mm", "px")  # of lengths: mm with a known pixel spacing, pixels without


def length_unit(spacing_mm: float | None) -> str:
    """The unit `measure_bones` gives T, W and L in for an image of this pixel spacing."""
    return UNITS[0] if spacing_mm else UNITS[1]


@dataclass
class BoneMeasurement:
    W: float | None  # outer width
    T: float | None  # one side's cortical thickness
    MCI: float | None  # 2T/W
    BHI: float | None
    L: float | None  # the bone's length along its axis (from the mask)
    unit: str  # "mm" or "px"
    n_profiles: int  # profiles kept
    quality: str  # "ok", or why the figure cannot be trusted
    # relative marrow density: (marrow − tissue beside the bone) / (cortex peak − tissue), the profiles' mean;
    # the trabecular bone that fills the shaft, which the cortical figures do not see
    RMD: float | None = None
    # relative base density (base_density.py): the trabecular bone near the base against the tissue beside it, on
    # the scale of the mid-shaft cortex's contrast; None without a forearm in the label map to tell the base
    RBD: float | None = None
    # for drawing (pixels, image frame): the region's corners and each kept profile's four edges as (x, y)
    region: list[list[float]] | None = None
    edges: list[list[list[float]]] | None = None

    def to_json(self, with_geometry: bool = False) -> dict:
        # not dataclasses.asdict: it deep-copies the edges (thousands of floats) only for them to be dropped
        geometry = ("region", "edges")
        out = {f.name: getattr(self, f.name) for f in fields(self) if with_geometry or f.name not in geometry}
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


def measure_bones(
    pixels: np.ndarray, labels: np.ndarray, spacing_mm: float | None = None, bones=MEASURED
) -> dict[str, BoneMeasurement]:
    """pixels (H, W) float in 0–1, bone bright; labels (H, W) uint8 (anatomy.BONES). One measurement per bone
    asked for; a bone the label map lacks gets quality "not found". Raises ValueError for shapes that differ."""
    if pixels.shape != labels.shape:
        raise ValueError(f"the image {pixels.shape} and its label map {labels.shape} differ in size")
    smooth = cv2.GaussianBlur(pixels.astype(np.float32), (0, 0), 0.7)
    forearm = centroid(labels, tuple(BONE_IDS[b] for b in FOREARM))
    hand = centroid(labels, tuple(BONE_IDS[b] for b in METACARPALS))
    extents = bone_extents(labels)
    return {
        bone: measure_bone(
            smooth,
            labels == BONE_IDS[bone],
            spacing_mm,
            hand if bone in FOREARM else forearm,
            extent=extents[BONE_IDS[bone] - 1],
        )
        for bone in bones
    }


def measure_bone(
    pixels: np.ndarray,
    mask: np.ndarray,
    spacing_mm: float | None,
    wrist: np.ndarray | None = None,
    *,
    extent: tuple[slice, slice] | None = None,
) -> BoneMeasurement:
    """One bone's measurement (pixels smoothed as measure_bones does); RBD needs a point `wrist` (x, y) beyond the
    bone's wrist end (base_density), and is None without it. `extent`: the mask's bounding box (rows, columns),
    when the caller knows it (anatomy.bone_extents); found here otherwise."""
    unit, scale = length_unit(spacing_mm), spacing_mm or 1.0
    if extent is None:
        extent = bone_extents(np.asarray(mask, bool).view(np.uint8))[0]  # the mask as label 1
    if extent is None or np.count_nonzero(mask[extent]) < 50:
        return BoneMeasurement(None, None, None, None, None, unit, 0, "not found")
    centre, u, t_range, breadth = _axis(mask, extent)
    length = t_range[1] - t_range[0]
    normal = np.array([-u[1], u[0]])
    ts = t_range[0] + length * np.linspace(*SHAFT, PROFILES)
    points = centre + ts[:, None] * u
    found = read_profiles(pixels, points, u, normal, mask, breadth)
    kept = found.subset(_within_mads(found.width) & _within_mads(found.thickness))
    n = len(kept.width)
    if not n:
        return BoneMeasurement(None, None, None, None, length * scale, unit, 0, "no cortical edges found")
    w, t = float(kept.width.mean()), float(kept.thickness.mean())
    W, T, L = w * scale, t * scale, length * scale
    region = [list(centre + a * u + b * normal) for a, b in _corners(t_range, length, w)]
    rmd = float(np.nanmean(kept.marrow)) if np.isfinite(kept.marrow).any() else None
    tissue, contrast = float(kept.tissue.mean()), float(kept.contrast.mean())
    rbd = base_density(pixels, mask, (centre, u, t_range), wrist, tissue, contrast, extent=extent)
    bhi = bone_health_index(T, W, L)
    edges = kept.edges.tolist()
    return BoneMeasurement(W, T, 2 * T / W, bhi, L, unit, n, _quality(w, t, n), rmd, rbd, region, edges)


def feature_vector(measurements: dict[str, BoneMeasurement]) -> np.ndarray:
    """(len(FEATURES),) float32: each bone's MCI, T and W (in its unit), RMD and RBD, NaN for a bone that is
    missing or not measured with quality "ok" (and for an RMD or RBD not read), then the hand's summary
    (`hand_summary`): what a classifier on the indices reads."""
    values = []
    for bone in MEASURED:
        m = measurements.get(bone)
        values += [m.MCI, m.T, m.W, _or_nan(m.RMD), _or_nan(m.RBD)] if _trusted(m) else [np.nan] * len(KINDS)
    summary = hand_summary(measurements)
    return np.array(values + [_or_nan(summary[name]) for name in SUMMARY], np.float32)


def hand_summary(measurements: dict[str, BoneMeasurement]) -> dict:
    """{"hand_MCI": the mean MCI, "hand_RBD": the median RBD, over the bones measured with quality "ok" (and RBD
    read), None where fewer than SUMMARY_MIN_BONES were; "hand_bones": how many bones the MCI's mean holds}. Bones
    differ a little in their typical MCI (about ±0.05), so a hand missing a bone reads slightly off."""
    trusted = [m for m in measurements.values() if _trusted(m)]
    mci = [m.MCI for m in trusted]
    rbd = [m.RBD for m in trusted if m.RBD is not None]
    return {
        "hand_MCI": float(np.mean(mci)) if len(mci) >= SUMMARY_MIN_BONES else None,
        "hand_RBD": float(np.median(rbd)) if len(rbd) >= SUMMARY_MIN_BONES else None,
        "hand_bones": len(mci),
    }


def _trusted(m: BoneMeasurement | None) -> bool:
    return m is not None and m.quality == "ok"


def index_kinds(names) -> str:
    """The kinds and bones of index names as FEATURES spells them: "MCI, T, W, RMD of M1, M2" for
    ("M1_MCI", "M1_T", ...), "the hand's MCI, RBD" for SUMMARY."""
    kinds = dict.fromkeys(name.split("_", 1)[1] for name in names)
    bones = dict.fromkeys(name.split("_", 1)[0] for name in names)
    if list(bones) == ["hand"]:
        return f"the hand's {', '.join(kinds)}"
    return f"{', '.join(kinds)} of {', '.join(bones)}"


def _or_nan(value: float | None) -> float:
    return np.nan if value is None else value


def radiogrammetry_json(measurements: dict[str, BoneMeasurement]) -> dict:
    """`{"bones": {"M2": {"W", "T", "MCI", "BHI", "L", "unit", "n_profiles", "quality", "RMD", "RBD"}, ...}}` plus
    the mean MCI and BHI of M2–M4 where all three are "ok" (BoneXpert's bones), else None, and the hand's summary
    (`hand_summary`: "hand_MCI", "hand_RBD", "hand_bones")."""
    middle = [measurements.get(b) for b in ("M2", "M3", "M4")]
    trusted = all(_trusted(m) for m in middle)
    summary = {k: round(v, 4) if isinstance(v, float) else v for k, v in hand_summary(measurements).items()}
    return {
        "bones": {bone: m.to_json() for bone, m in measurements.items()},
        "MCI_M2_M4": round(float(np.mean([m.MCI for m in middle])), 4) if trusted else None,
        "BHI_M2_M4": round(float(np.mean([m.BHI for m in middle])), 4) if trusted else None,
        **summary,
    }


def measurement_line(radiogrammetry: dict) -> str:
    """One line for a text answer: M2–M4's mean MCI and BHI, the hand's MCI and RBD, and each measured bone's
    MCI with its T, W and RBD."""
    bones = radiogrammetry.get("bones", {})
    unit = next((m["unit"] for m in bones.values()), "px")
    parts = [
        f"{b} {m['MCI']:.2f} (T {m['T']:.2f}, W {m['W']:.2f}"
        + (f", RBD {m['RBD']:.2f})" if m.get("RBD") is not None else ")")
        + ("" if m["quality"] == "ok" else " [unsure]")
        for b, m in bones.items()
        if m["MCI"] is not None
    ]
    head = (
        f"MCI {radiogrammetry['MCI_M2_M4']:.2f}, BHI {radiogrammetry['BHI_M2_M4']:.2f} (M2–M4); "
        if radiogrammetry.get("MCI_M2_M4") is not None
        else "M2–M4 not all measured; "
    ) + (f"hand {hand}; " if (hand := hand_summary_text(radiogrammetry)) else "")
    note = f" ({radiogrammetry['fusion_note']})" if radiogrammetry.get("fusion_note") else ""
    return f"radiogrammetry ({unit}): {head}" + ("; ".join(parts) or "no bone measured") + note


def hand_summary_text(radiogrammetry: dict) -> str:
    """ "mean MCI 0.45 over 7 bones, median base density (RBD) 0.61", or "" where the hand's MCI was not
    summarised: the wording both the text answer and the Screen panel use."""
    if radiogrammetry.get("hand_MCI") is None:
        return ""
    rbd = radiogrammetry.get("hand_RBD")
    density = f", median base density (RBD) {rbd:.2f}" if rbd is not None else ""
    return f"mean MCI {radiogrammetry['hand_MCI']:.2f} over {radiogrammetry['hand_bones']} bones{density}"


def profile_along(pixels: np.ndarray, edges: list[list[float]], margin: float = 0.3):
    """One measured profile for a plot: (distance in pixels from the first outer edge, intensity, the four
    edges' distances) along the line through a profile's edges (outer, inner, inner, outer, each (x, y)),
    reaching `margin` of the width past each outer edge."""
    first, last = np.asarray(edges[0], float), np.asarray(edges[3], float)
    width = float(np.linalg.norm(last - first))
    direction = (last - first) / max(width, 1e-6)
    d = np.arange(-margin * width, (1 + margin) * width, STEP)
    xy = (first + d[:, None] * direction).astype(np.float32)
    values = cv2.remap(pixels.astype(np.float32), xy[None, :, 0], xy[None, :, 1], cv2.INTER_LINEAR)[0]
    at = [float(np.dot(np.asarray(e, float) - first, direction)) for e in edges]
    return d, values, at


def bone_health_index(T: float, W: float, L: float) -> float:
    """BoneXpert's BHI = π·T·(1 − T/W)/(L·W)^0.33 (lengths in mm)."""
    return float(np.pi * T * (1 - T / W) / (L * W) ** 0.33)


def _axis(mask: np.ndarray, extent: tuple[slice, slice]):
    """The mask's centre, unit axis (pointing to larger y, i.e. toward the wrist in an upright hand), the
    extent of its pixels along the axis (t from the centre) and their furthest distance from the axis; `extent`
    is the mask's bounding box."""
    ys, xs = np.nonzero(mask[extent])
    pts = np.stack([xs + extent[1].start, ys + extent[0].start], 1).astype(float)
    centre = pts.mean(0)
    _, _, vt = np.linalg.svd(pts - centre, full_matrices=False)
    u = vt[0] if vt[0][1] >= 0 else -vt[0]
    t = (pts - centre) @ u
    breadth = float(np.abs((pts - centre) @ np.array([-u[1], u[0]])).max())
    return centre, u, (float(t.min()), float(t.max())), breadth


def _within_mads(v: np.ndarray) -> np.ndarray:
    """Within OUTLIER_MADS robust standard deviations of the median, or within OUTLIER_FLOOR of it: profiles
    that agree to a tenth of a pixel would otherwise lose those a few tenths away."""
    if not len(v):
        return np.zeros(0, bool)
    median = np.median(v)
    mad = np.median(np.abs(v - median)) * 1.4826
    return np.abs(v - median) <= max(OUTLIER_MADS * mad, OUTLIER_FLOOR * abs(median), 1e-6)


def _quality(w: float, t: float, kept: int) -> str:
    if kept < MIN_KEPT * PROFILES:
        return f"only {kept} of {PROFILES} profiles gave cortical edges"
    if not 0.15 <= 2 * t / w <= 0.9:
        return f"implausible cortical index {2 * t / w:.2f}"
    return "ok"


def _corners(t_range, length: float, w: float):
    a0, a1 = (t_range[0] + length * f for f in SHAFT)
    return [(a0, -w / 2), (a1, -w / 2), (a1, w / 2), (a0, w / 2)]


@dataclass(frozen=True, kw_only=True)
class MeasureRequest:
    image: Path  # a radiograph
    labels: Path | None = None  # its label map (PNG, values 0–7 as anatomy.BONES); None: the segmenter's
    segmenter: Path | None = None  # None: the bundled one


def measure_image(request: MeasureRequest) -> dict:
    """`osteo measure`: every measured bone of one radiograph, as `radiogrammetry_json` with the image's name and
    pixel spacing. Raises RadiographError for an unreadable image, AnnotationError for a label map that is
    unreadable, of another size or holds values past 7."""
    from .io import load_radiograph

    image = load_radiograph(request.image)
    spacing = image.pixel_spacing_mm[0] if image.pixel_spacing_mm else None
    if request.labels is None:
        from .segmentation.predict import load_segmenter, segment

        labels = segment(image.pixels, load_segmenter(request.segmenter), modules=False).labels
    else:
        labels = _read_labels(request.labels, image.pixels.shape)
    measurements = measure_bones(bone_bright(image.pixels, labels), labels, spacing)
    return {"image": Path(request.image).name, "spacing_mm": spacing, **radiogrammetry_json(measurements)}


def bone_bright(pixels: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The image with bone brighter than the tissue around it (inverted when the bones are darker)."""
    bones = labels > 0
    if not bones.any():
        return pixels
    around = cv2.dilate(bones.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool) & ~bones
    return 1.0 - pixels if around.any() and pixels[bones].mean() < pixels[around].mean() else pixels


def _read_labels(path: Path, shape: tuple[int, int]) -> np.ndarray:
    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if labels is None or labels.ndim != 2:
        raise AnnotationError(f"{Path(path).name} is not a single-channel label map PNG.")
    if labels.shape != shape:
        raise AnnotationError(
            f"{Path(path).name} is {labels.shape[1]}×{labels.shape[0]}, the image {shape[1]}×{shape[0]}."
        )
    if labels.max() > max(BONES):
        raise AnnotationError(f"{Path(path).name} holds label {int(labels.max())}; bone labels are 0–{max(BONES)}.")
    return labels.astype(np.uint8)
