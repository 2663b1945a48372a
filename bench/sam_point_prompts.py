"""Which way of answering a single click works best with LiteMedSAM on real radiographs?

For each metacarpal of the atlas images, one positive click at the shaft's midpoint (from the landmarks) is
answered four ways on the whole-image embedding, and each mask is scored (Dice) against the SAM-assisted
masks made from landmark boxes (`osteo annotate-auto`):
  point          the click alone
  multimask      the click alone, best of SAM's three masks by predicted IoU
  point+box      the click inside a square box around it (a quarter of the image's shorter side)
  two-pass       multimask first, then the click plus the box around that first mask (grown by 15%)
  crop:point     the click alone on the embedding of a square crop around it (0.4 of the shorter side)
  crop:point+box the click and its square box on that crop
  crop:2points+box  two clicks (at a quarter and three quarters of the shaft) and the box around them,
                 grown by 30% of their distance, on a crop around them
  prior:box      the app's click (osteo_engine.click_prompts): the bundled segmenter's bone under the click
                 makes the box; SAM gets the box
  prior:box+click  the same, SAM also gets the click

Each mask is also checked against the landmarks: it holds its metacarpal's shaft (the points at 25%, 50% and
75% from base to head) and none of the neighbours' (the other metacarpals' shaft points, its finger's proximal
phalanx, the carpals). For the app's strategy, the time from click to mask is given twice: a bone's first click
(the segmenter's answer ready, the crop not yet embedded) and a click with the crop embedded.

Run: .venv/bin/python bench/sam_point_prompts.py build/atlas-auto ../shared/data/hand-atlas/landmarks.csv
     [--split val] [--images 21]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from osteo_engine.anatomy import BONE_IDS
from osteo_engine.annotations import AnnotationProject
from osteo_engine.click_prompts import answer_clicks
from osteo_engine.io import load_radiograph
from osteo_engine.landmarks import NEXT_JOINT, read_landmarks, read_splits
from osteo_engine.sam import BonePrompter, load_sam
from osteo_engine.segmentation.predict import load_segmenter, segment

SHAFT = (0.25, 0.5, 0.75)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def strategies(prompter: BonePrompter, click: np.ndarray, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    point, label = click[None], np.array([1])
    side = 0.25 * min(shape)
    square = np.r_[click - side / 2, click + side / 2]
    best = prompter.predict(points=point, labels=label, multimask=True)
    out = {
        "point": prompter.predict(points=point, labels=label).mask,
        "multimask": best.mask,
        "point+box": prompter.predict(points=point, labels=label, box=square).mask,
    }
    ys, xs = np.nonzero(best.mask)
    if len(xs):
        grow = 0.15 * np.array([np.ptp(xs), np.ptp(ys)])
        box = np.r_[np.array([xs.min(), ys.min()]) - grow, np.array([xs.max(), ys.max()]) + grow]
        out["two-pass"] = prompter.predict(points=point, labels=label, box=box).mask
    else:
        out["two-pass"] = best.mask
    return out


def crop_strategies(prompter: BonePrompter, pixels: np.ndarray, clicks: np.ndarray) -> dict[str, np.ndarray]:
    from osteo_engine.sam.crops import Crop

    h, w = pixels.shape
    out = {}
    side = 0.25 * min(h, w)
    centre = clicks.mean(0)
    for name, points in (("crop:point", centre[None]), ("crop:point+box", centre[None]), ("crop:2points+box", clicks)):
        if name == "crop:2points+box":
            spread = np.linalg.norm(clicks[1] - clicks[0])
            lo, hi = clicks.min(0) - 0.3 * spread, clicks.max(0) + 0.3 * spread
            box = np.r_[lo, hi]
        else:
            box = np.r_[centre - side / 2, centre + side / 2]
        crop = Crop.around(box, (h, w), factor=1.6)
        prompter.set_image(crop.pixels(pixels))
        local = crop.shift(points)
        result = prompter.predict(
            points=local,
            labels=np.ones(len(local), int),
            box=None if name == "crop:point" else crop.shift(box).reshape(-1),
        )
        full = np.zeros((h, w), bool)
        full[crop.y0 : crop.y1, crop.x0 : crop.x1] = result.mask
        out[name] = full
    return out


def shaft_points(lm, n: int) -> np.ndarray:
    base, head = lm[f"mc{n}_base"], lm[f"mc{n}_head"]
    return np.array([base + t * (head - base) for t in SHAFT])


def landmarks_ok(mask: np.ndarray, lm, n: int) -> bool:
    """Its metacarpal's shaft points in the mask, and none of the neighbours' landmarks."""
    h, w = mask.shape

    def inside(points) -> np.ndarray:
        xy = np.clip(np.round(np.reshape(points, (-1, 2))).astype(int), 0, [w - 1, h - 1])
        return mask[xy[:, 1], xy[:, 0]]

    others = [shaft_points(lm, m) for m in range(1, 6) if m != n]
    others.append((lm[f"mc{n}_head"] + lm[NEXT_JOINT[n]]) / 2)
    others.extend(lm[f"carpal_{k}"] for k in range(5, 13))
    return bool(inside(shaft_points(lm, n)).all()) and not inside(np.vstack(others)).any()


def prior_strategies(prompter, pixels, prior, click, bone, key, times) -> dict[str, np.ndarray]:
    start = time.perf_counter()
    first = answer_clicks(prompter, pixels, prior, bone, click[None], np.array([1]), image_key=key)
    times["first click"].append(time.perf_counter() - start)
    start = time.perf_counter()
    answer_clicks(prompter, pixels, prior, bone, click[None], np.array([1]), image_key=key)
    times["embedded"].append(time.perf_counter() - start)
    with_click = answer_clicks(
        prompter, pixels, prior, bone, click[None], np.array([1]), image_key=key, first_click_to_sam=True
    )
    times["prior used"].append(first.prior_used)
    return {"prior:box": first.mask, "prior:box+click": with_click.mask}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("project")
    parser.add_argument("landmarks")
    parser.add_argument("--split", default="val", help="images of this split of the project's manifest (or `all`)")
    parser.add_argument("--images", type=int, default=21)
    args = parser.parse_args()
    project = AnnotationProject.open(args.project)
    landmarks = read_landmarks(args.landmarks)
    splits = {Path(k).name: v for k, v in read_splits(Path(args.project) / "manifest.csv").items()}
    prompter = BonePrompter(load_sam("litemedsam"))
    segmenter = load_segmenter()
    scores: dict[str, list[float]] = {}
    checks: dict[str, list[bool]] = {}
    times: dict[str, list] = {"first click": [], "embedded": [], "prior used": []}
    entries = [
        e
        for e in project.images
        if args.split == "all" or splits.get(project.image_path(e.image_id).name) == args.split
    ]
    for entry in entries[: args.images]:
        annotations, _ = project.load(entry.image_id)
        if not annotations.raters:
            continue
        reference = annotations.raters[0].labels
        lm = landmarks[project.image_path(entry.image_id).name]
        pixels = load_radiograph(project.image_path(entry.image_id)).pixels
        prior = segment(pixels, segmenter, modules=False).labels
        for n in range(1, 6):
            click = (lm[f"mc{n}_base"] + lm[f"mc{n}_head"]) / 2
            truth = reference == BONE_IDS[f"M{n}"]
            prompter.set_image(pixels)
            masks = strategies(prompter, click, pixels.shape)
            base, head = lm[f"mc{n}_base"], lm[f"mc{n}_head"]
            masks.update(
                crop_strategies(prompter, pixels, np.array([base + 0.25 * (head - base), base + 0.75 * (head - base)]))
            )
            masks.update(prior_strategies(prompter, pixels, prior, click, f"M{n}", entry.image_id, times))
            for name, mask in masks.items():
                scores.setdefault(name, []).append(dice(mask, truth))
                checks.setdefault(name, []).append(landmarks_ok(mask, lm, n))
    count = len(next(iter(scores.values())))
    print(f"{count} metacarpals of {args.split} images; Dice against the annotate-auto masks; landmark checks")
    for name, values in scores.items():
        print(
            f"{name:17s} mean Dice {np.mean(values):.3f}  median {np.median(values):.3f}  "
            f"landmarks {np.mean(checks[name]):.1%}"
        )
    print(
        f"prior:box: the segmenter's bone was used for {np.mean(times['prior used']):.0%} of clicks; click to mask "
        f"median {np.median(times['embedded']) * 1000:.0f} ms with the crop embedded, "
        f"{np.median(times['first click']) * 1000:.0f} ms for a bone's first click (segmenter answer ready)"
    )


if __name__ == "__main__":
    main()
