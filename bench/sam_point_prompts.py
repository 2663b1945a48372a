"""Which way of answering a single click works best with LiteMedSAM on real radiographs?

For each metacarpal of the atlas images, one positive click at the shaft's midpoint (from the landmarks) is
answered four ways on the whole-image embedding, and each mask is scored (Dice) against the SAM-assisted
masks made from landmark boxes (`osteo annotate-auto`):
  point          the click alone
  multimask      the click alone, best of SAM's three masks by predicted IoU
  point+box      the click inside a square box around it (a quarter of the image's shorter side)
  two-pass       multimask first, then the click plus the box around that first mask (grown by 15%)

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
    out = {"point": prompter.predict(points=point, labels=label).mask, "multimask": best.mask,
           "point+box": prompter.predict(points=point, labels=label, box=square).mask}
    ys, xs = np.nonzero(best.mask)
    if len(xs):
        grow = 0.15 * np.array([xs.ptp(), ys.ptp()])
        box = np.r_[np.array([xs.min(), ys.min()]) - grow, np.array([xs.max(), ys.max()]) + grow]
        out["two-pass"] = prompter.predict(points=point, labels=label, box=box).mask
    else:
        out["two-pass"] = best.mask
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
        prompter.set_image(pixels)
        for n in range(1, 6):
            click = (lm[f"mc{n}_base"] + lm[f"mc{n}_head"]) / 2
            truth = reference == BONE_IDS[f"M{n}"]
            for name, mask in strategies(prompter, click, pixels.shape).items():
                scores.setdefault(name, []).append(dice(mask, truth))
    count = len(next(iter(scores.values())))
    for name, values in scores.items():
        print(f"{name:10s} mean Dice {np.mean(values):.3f}  median {np.median(values):.3f}  ({count} bones)")


if __name__ == "__main__":
    main()
