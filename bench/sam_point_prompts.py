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

Run: .venv/bin/python bench/sam_point_prompts.py build/atlas-auto ../shared/data/hand-atlas/landmarks.csv [--images 20]
"""

from __future__ import annotations

import argparse

import numpy as np

from osteo_engine.anatomy import BONE_IDS
from osteo_engine.annotations import AnnotationProject
from osteo_engine.io import load_radiograph
from osteo_engine.landmarks import read_landmarks
from osteo_engine.sam import BonePrompter, load_sam


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("project")
    parser.add_argument("landmarks")
    parser.add_argument("--images", type=int, default=20)
    args = parser.parse_args()
    project = AnnotationProject.open(args.project)
    landmarks = read_landmarks(args.landmarks)
    prompter = BonePrompter(load_sam("litemedsam"))
    scores: dict[str, list[float]] = {}
    for entry in project.images[: args.images]:
        annotations, _ = project.load(entry.image_id)
        if not annotations.raters:
            continue
        reference = annotations.raters[0].labels
        lm = landmarks[project.image_path(entry.image_id).name]
        pixels = load_radiograph(project.image_path(entry.image_id)).pixels
        for n in range(1, 6):
            click = (lm[f"mc{n}_base"] + lm[f"mc{n}_head"]) / 2
            truth = reference == BONE_IDS[f"M{n}"]
            prompter.set_image(pixels)
            masks = strategies(prompter, click, pixels.shape)
            base, head = lm[f"mc{n}_base"], lm[f"mc{n}_head"]
            masks.update(
                crop_strategies(prompter, pixels, np.array([base + 0.25 * (head - base), base + 0.75 * (head - base)]))
            )
            for name, mask in masks.items():
                scores.setdefault(name, []).append(dice(mask, truth))
    count = len(next(iter(scores.values())))
    for name, values in scores.items():
        print(f"{name:10s} mean Dice {np.mean(values):.3f}  median {np.median(values):.3f}  ({count} bones)")


if __name__ == "__main__":
    main()
