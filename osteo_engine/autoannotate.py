"""SAM-assisted ground truth from landmarks: the expert's clicks replaced by the atlas landmarks.

Per bone: a box around the landmarks that bound it, positive points on its shaft and negative points on
its neighbours; LiteMedSAM answers; classical refinement keeps the connected part at the bone's landmark,
fills holes, clips metacarpals at their joints and settles overlaps by the larger SAM logit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .anatomy import BONE_NAMES
from .annotations import BonePrompts
from .landmarks import NEXT_JOINT, CheckTally, Landmarks
from .sam import BonePrompter
from .sam.crops import Crop

BOX_HALF_WIDTH = 0.11  # of the metacarpal's length: a metacarpal is about a fifth as wide as it is long
FOREARM_CONTEXT = 2.5  # radius and ulna need the wrist around them to be told apart from their epiphyses
BAND_HALF_WIDTH = 0.13  # masks are clipped to this band around the base-head axis, which cuts neighbours
# The thumb's metacarpal is short and wide: with the fingers' box and band, 23 of 24 thumb masks on 12 atlas val
# images were cut straight along both sides of the band, where the bone is about 0.18 of its length off the axis.
THUMB_BOX_HALF_WIDTH, THUMB_BAND_HALF_WIDTH = 0.16, 0.21


def _box_and_band(thumb: bool) -> tuple[float, float]:
    """Half-widths of a metacarpal's prompt box and clipping band, in units of its length."""
    return (THUMB_BOX_HALF_WIDTH, THUMB_BAND_HALF_WIDTH) if thumb else (BOX_HALF_WIDTH, BAND_HALF_WIDTH)


@dataclass(frozen=True)
class BonePrompt:
    box: np.ndarray  # x0, y0, x1, y1
    points: np.ndarray  # (N, 2)
    labels: np.ndarray  # (N,) 1 positive, 0 negative
    anchor: np.ndarray  # a point that lies inside the bone
    axis: tuple[np.ndarray, np.ndarray] | None = None  # (proximal, distal) ends, to clip at joints
    context: float = 1.5  # side of the square crop SAM sees, in units of the box's longer side
    follow_cortex: bool = False  # re-draw SAM's mask along the bone's edge (see follow_cortex)
    band: float = BAND_HALF_WIDTH  # half-width of the band around `axis` the mask is clipped to, in lengths

    def as_store_prompts(self) -> BonePrompts:
        return BonePrompts(
            [(float(x), float(y), bool(v)) for (x, y), v in zip(self.points, self.labels)],
            tuple(float(v) for v in self.box),
        )


def _box(points: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    pts = np.array(points)
    h, w = shape
    lo, hi = pts.min(0), pts.max(0)
    return np.array([max(lo[0], 0), max(lo[1], 0), min(hi[0], w - 1), min(hi[1], h - 1)])


def metacarpal_prompt(lm: Landmarks, n: int, shape: tuple[int, int]) -> BonePrompt:
    base, head = lm[f"mc{n}_base"], lm[f"mc{n}_head"]
    axis = head - base
    length = float(np.linalg.norm(axis))
    u = axis / max(length, 1e-6)
    normal = np.array([-u[1], u[0]])
    box_half_width, band = _box_and_band(thumb=n == 1)
    half_width = box_half_width * length
    corners = [base - 0.04 * length * u + s * half_width * normal for s in (-1, 1)]
    corners += [head + 0.02 * length * u + s * half_width * normal for s in (-1, 1)]
    mid = (base + head) / 2
    positives = [base + f * axis for f in (0.3, 0.5, 0.7)]
    negatives = [(head + lm[NEXT_JOINT[n]]) / 2]
    for m in (n - 1, n + 1):
        if 1 <= m <= 5:
            negatives.append((lm[f"mc{m}_base"] + lm[f"mc{m}_head"]) / 2)
    points = np.array(positives + negatives)
    labels = np.array([1] * len(positives) + [0] * len(negatives))
    return BonePrompt(_box(corners, shape), points, labels, mid, (base, head), band=band)


def forearm_prompt(lm: Landmarks, bone: str, shape: tuple[int, int]) -> BonePrompt:
    h, w = shape
    side_a, side_b, styloid = lm["radius_ulnar_side_a"], lm["radius_ulnar_side_b"], lm["radius_styloid"]
    radius_width = float(np.linalg.norm(styloid - side_b))
    margin = 0.15 * radius_width
    if bone == "radius":
        anchor = (side_b + styloid) / 2
        top = min(side_a[1], side_b[1], styloid[1]) - margin
        box = np.array([min(side_a[0], side_b[0]) - margin, top, styloid[0] + margin, h - 1])
        positives = [anchor, anchor + np.array([0.0, 0.5 * radius_width])]
        negatives = [lm["ulna_distal"]]
    else:
        anchor = lm["ulna_distal"]
        half = 0.35 * radius_width
        top = min(lm["ulna_styloid"][1], anchor[1]) - margin
        # the landmark can sit near the ulna's outer edge: the box reaches across to just short of the radius
        radius_side = (side_a[0] + side_b[0]) / 2
        toward = 1.0 if radius_side >= anchor[0] else -1.0
        reach = max(half, abs(radius_side - anchor[0]) - 0.05 * radius_width)
        x0, x1 = sorted((anchor[0] - toward * half, anchor[0] + toward * reach))
        box = np.array([x0, top, x1, h - 1])
        positives = [anchor, anchor + np.array([0.0, 0.4 * radius_width])]
        negatives = [(side_b + styloid) / 2]
    box = np.clip(box, 0, [w - 1, h - 1, w - 1, h - 1])
    points = np.array(positives + negatives)
    labels = np.array([1] * len(positives) + [0] * len(negatives))
    # the ulna's box takes in the soft tissue on its ulnar side, and SAM's mask often follows that tissue
    return BonePrompt(box, points, labels, anchor, context=FOREARM_CONTEXT, follow_cortex=bone == "ulna")


def landmark_prompts(lm: Landmarks, shape: tuple[int, int]) -> dict[str, BonePrompt]:
    prompts = {bone: forearm_prompt(lm, bone, shape) for bone in ("ulna", "radius")}
    prompts.update({f"M{n}": metacarpal_prompt(lm, n, shape) for n in range(1, 6)})
    return prompts


def component_at(mask: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """The connected part of `mask` that holds `anchor` (or lies nearest to it), with holes filled."""
    count, components = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask.astype(bool)
    x, y = (int(round(v)) for v in anchor)
    h, w = mask.shape
    label = components[min(max(y, 0), h - 1), min(max(x, 0), w - 1)]
    if label == 0:
        ys, xs = np.nonzero(components)
        nearest = np.argmin(np.hypot(xs - anchor[0], ys - anchor[1]))
        label = components[ys[nearest], xs[nearest]]
    part = (components == label).astype(np.uint8)
    filled = part.copy()
    flood = np.zeros((h + 2, w + 2), np.uint8)
    cv2.floodFill(filled, flood, (0, 0), 1)
    return (part | (1 - filled)).astype(bool)


def in_band(xy: np.ndarray, proximal: np.ndarray, distal: np.ndarray, margin: float, band: float) -> np.ndarray:
    """Which points (N, 2) lie between the joints (plus a margin) and within a band around the axis, both in
    units of the bone's length."""
    axis = distal - proximal
    length = float(np.linalg.norm(axis))
    u = axis / max(length, 1e-6)
    rel = np.asarray(xy, float).reshape(-1, 2) - proximal
    t = rel @ u
    across = np.abs(rel[:, 1] * u[0] - rel[:, 0] * u[1])
    return (t >= -margin * length) & (t <= (1 + margin) * length) & (across <= band * length)


def clip_to_band(mask: np.ndarray, proximal: np.ndarray, distal: np.ndarray, margin: float, band: float) -> np.ndarray:
    """Keep the part of the mask between the joints (plus a margin) and within a band around the axis."""
    ys, xs = np.nonzero(mask)
    keep = in_band(np.stack([xs, ys], 1), proximal, distal, margin, band)
    out = np.zeros_like(mask)
    out[ys[keep], xs[keep]] = True
    return out


def follow_cortex(pixels: np.ndarray, mask: np.ndarray, anchor: np.ndarray, scale: float) -> np.ndarray:
    """Re-draw a bone's mask along its edge: near SAM's mask, bone is brighter than the soft tissue around
    it, so an Otsu threshold over that neighbourhood, smoothed, keeps the bone and drops the tissue.
    Falls back to SAM's mask when the threshold keeps less than a third of it."""
    if not mask.any():
        return mask
    reach = max(3, int(0.06 * scale))
    near = cv2.dilate(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2))
    ys, xs = np.nonzero(near)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    region = near[y0:y1, x0:x1].astype(bool)
    smooth = cv2.GaussianBlur(pixels[y0:y1, x0:x1].astype(np.float32), (0, 0), 2)
    values = smooth[region]
    lo, span = float(values.min()), float(np.ptp(values)) + 1e-6
    level, _ = cv2.threshold(
        ((values - lo) / span * 255).astype(np.uint8).reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU
    )
    bright = ((smooth > lo + level / 255 * span) & region).astype(np.uint8)
    size = max(1, int(0.015 * scale))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * size + 1,) * 2)
    bright = cv2.morphologyEx(cv2.morphologyEx(bright, cv2.MORPH_OPEN, kernel), cv2.MORPH_CLOSE, kernel)
    out = np.zeros_like(mask, dtype=bool)
    out[y0:y1, x0:x1] = bright.astype(bool)
    out = component_at(out, anchor) if out.any() else out
    return out if out.sum() >= mask.sum() / 3 else mask


def bone_logits(prompter: BonePrompter, pixels: np.ndarray, prompt: BonePrompt, use_points: bool = False) -> np.ndarray:
    """SAM's mask logits for one bone at the image's size (-inf outside the bone's crop)."""
    crop = Crop.around(prompt.box, pixels.shape, factor=prompt.context)
    prompter.set_image(crop.pixels(pixels))
    box = crop.shift(prompt.box).reshape(-1)
    result = prompter.predict(
        points=crop.shift(prompt.points) if use_points else None, labels=prompt.labels if use_points else None, box=box
    )
    logits = np.full(pixels.shape, -np.inf, np.float32)
    logits[crop.y0 : crop.y1, crop.x0 : crop.x1] = prompter.full_logits(result.low_res_logits)
    return logits


def segment_from_prompts(
    prompter: BonePrompter, pixels: np.ndarray, prompts: dict[str, BonePrompt], use_points: bool = False
) -> np.ndarray:
    """Label map (uint8) from one prompt per bone (bones without a prompt stay background).

    Landmark prompts are used as boxes alone: on the atlas, adding the landmark points to the boxes lowered the
    landmark hit rate (on 30 atlas train images: 69.0% against 99.5% for boxes alone), as expected of a model
    trained on boxes."""
    logits = np.full((len(BONE_NAMES), *pixels.shape), -np.inf, np.float32)
    for i, bone in enumerate(BONE_NAMES):
        p = prompts.get(bone)
        if p is None:
            continue
        full = bone_logits(prompter, pixels, p, use_points)
        mask = component_at(full > 0, p.anchor)
        if p.follow_cortex:
            mask = follow_cortex(pixels, mask, p.anchor, float(p.box[2] - p.box[0]))
        if p.axis is not None:
            mask = component_at(clip_to_band(mask, *p.axis, margin=0.04, band=p.band), p.anchor)
        logits[i][mask] = full[mask]
    best = logits.argmax(0)
    return np.where(np.isfinite(logits.max(0)), best + 1, 0).astype(np.uint8)


def mask_prompt(mask: np.ndarray, bone: str) -> BonePrompt:
    """A prompt made from a rough mask of one bone (a segmenter's), in place of the expert's landmarks:
    metacarpals get a box along their principal axis and a band to clip to; forearm bones their box."""
    ys, xs = np.nonzero(mask)
    pts = np.stack([xs, ys], 1).astype(float)
    centre = pts.mean(0)
    anchor = pts[np.argmin(np.hypot(*(pts - centre).T))]
    h, w = mask.shape
    if bone in ("ulna", "radius"):
        lo, hi = pts.min(0), pts.max(0)
        margin = 0.1 * (hi - lo)
        box = np.clip(np.r_[lo - margin, hi + margin], 0, [w - 1, h - 1, w - 1, h - 1])
        return BonePrompt(box, np.zeros((0, 2)), np.zeros(0, int), anchor, context=FOREARM_CONTEXT)
    _, _, vt = np.linalg.svd(pts - centre, full_matrices=False)
    u = vt[0]
    t = (pts - centre) @ u
    ends = centre + np.outer([t.min(), t.max()], u)
    length = float(t.max() - t.min())
    proximal, distal = ends[0] - 0.05 * length * u, ends[1] + 0.05 * length * u
    box_half_width, band = _box_and_band(thumb=bone == "M1")
    normal = np.array([-u[1], u[0]]) * box_half_width * (1.1 * length)
    corners = [proximal + normal, proximal - normal, distal + normal, distal - normal]
    return BonePrompt(
        _box(corners, mask.shape), np.zeros((0, 2)), np.zeros(0, int), anchor, (proximal, distal), band=band
    )


@dataclass
class AutoAnnotationSummary:
    annotated: int
    skipped: int
    tallies: dict[str, CheckTally]  # per split ("all" too)

    def to_json(self) -> dict:
        return {
            "annotated": self.annotated,
            "skipped": self.skipped,
            "rates": {name: t.to_json() for name, t in self.tallies.items()},
        }

    def lines(self) -> list[str]:
        return [f"annotated {self.annotated} image(s), kept {self.skipped} already annotated"] + [
            f"{name}: {t.describe()}" for name, t in self.tallies.items()
        ]


@dataclass(frozen=True, kw_only=True)
class AutoAnnotateRequest:
    images: Path  # folder of radiographs named as in the landmark CSV
    landmarks: Path  # landmark CSV (image, then x,y per landmark)
    out: Path  # annotation project to create or extend
    splits: Path | None = None  # CSV of image,split; None: splits.csv beside the landmarks, if there is one
    rater: str = "sam-auto"
    overwrite: bool = False  # redo images this rater already annotated
    limit: int | None = None  # only the first N images
    bones: tuple[str, ...] | None = None  # make only these bones again in images already annotated


def auto_annotate(request: AutoAnnotateRequest, progress: Callable[[int, int], None] | None = None):
    """The annotate-auto job: LiteMedSAM masks from the atlas landmarks' boxes, into a project; resumable.
    Returns an AutoAnnotationSummary. Raises ConfigError for unreadable landmarks or a rater name in use."""
    splits = request.splits
    if splits is None and (request.landmarks.parent / "splits.csv").is_file():
        splits = request.landmarks.parent / "splits.csv"
    return annotate_from_landmarks(
        request.images,
        request.landmarks,
        request.out,
        splits,
        rater=request.rater,
        overwrite=request.overwrite,
        limit=request.limit,
        progress=progress,
        bones=list(request.bones) if request.bones else None,
    )


def annotate_from_landmarks(
    images_dir: str | Path,
    landmarks_csv: str | Path,
    out_project: str | Path,
    splits_csv: str | Path | None = None,
    rater: str = "sam-auto",
    prompter: BonePrompter | None = None,
    overwrite: bool = False,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    bones: list[str] | None = None,
) -> AutoAnnotationSummary:
    """Annotate every landmarked image in `images_dir` into an annotation project; resumable. With `bones`,
    only those bones are made again in images this rater already annotated; the rest of its masks stay."""
    from .annotations import AnnotationProject, RaterAnnotation
    from .io import load_radiograph
    from .landmarks import check_landmarks, read_landmarks, read_splits
    from .sam import load_sam

    images_dir = Path(images_dir)
    landmarks = read_landmarks(landmarks_csv)
    splits = read_splits(splits_csv) if splits_csv else {}
    names = [n for n in sorted(landmarks) if (images_dir / n).is_file()][:limit]
    project = AnnotationProject.open_or_create(out_project)
    ids = project.add_images([images_dir / n for n in names])
    prompter = prompter or BonePrompter(load_sam("litemedsam"))
    tallies: dict[str, CheckTally] = {"all": CheckTally()}
    annotated = skipped = 0
    for k, (name, image_id) in enumerate(zip(names, ids)):
        existing = None
        if (bones or not overwrite) and rater in project.raters(image_id):
            loaded, problems = project.load(image_id)
            existing = next((r for r in loaded.raters if r.rater == rater), None) if not problems else None
        if existing is None or bones:
            pixels = load_radiograph(images_dir / name).pixels
            prompts = landmark_prompts(landmarks[name], pixels.shape)
            if existing is not None:
                prompts = {b: p for b, p in prompts.items() if b in bones}
            labels = segment_from_prompts(prompter, pixels, prompts)
            stored = {b: p.as_store_prompts() for b, p in prompts.items()}
            if existing is not None:
                labels = _replace_bones(existing.labels, labels, bones)
                stored = {**existing.prompts, **stored}
            project.save(
                image_id,
                RaterAnnotation(
                    rater, labels, prompts=stored, author="osteo annotate-auto (LiteMedSAM, landmark prompts)"
                ),
            )
            annotated += 1
        else:
            labels = existing.labels
            skipped += 1
        check = check_landmarks(labels, landmarks[name])
        tallies["all"].add(check)
        if name in splits:
            tallies.setdefault(splits[name], CheckTally()).add(check)
        if progress:
            progress(k + 1, len(names))
    if splits:
        _write_manifest(Path(out_project), images_dir, names, splits)
    return AutoAnnotationSummary(annotated, skipped, tallies)


def _replace_bones(old: np.ndarray, new: np.ndarray, bones: list[str]) -> np.ndarray:
    """`old` with the named bones taken from `new`; where a new mask meets another kept bone, that bone stays."""
    values = [BONE_NAMES.index(b) + 1 for b in bones]
    out = np.where(np.isin(old, values), 0, old).astype(np.uint8)
    fresh = np.isin(new, values) & (out == 0)
    out[fresh] = new[fresh]
    return out


def _write_manifest(project_dir: Path, images_dir: Path, names: list[str], splits: dict[str, str]) -> None:
    """manifest.csv beside the project: one unlabelled row per image with its split, for `osteo segment train`."""
    import os

    from .storage import atomic_write_bytes

    lines = ["subject_id,image,split"]
    for name in names:
        rel = Path(os.path.relpath(images_dir / name, project_dir)).as_posix()
        lines.append(f"{Path(name).stem},{rel},{splits.get(name, 'train')}")
    atomic_write_bytes(project_dir / "manifest.csv", ("\n".join(lines) + "\n").encode())
