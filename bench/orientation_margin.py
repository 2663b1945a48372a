"""How clearly the segmenter tells an upright hand from a turned or inverted one, on real radiographs.

For every atlas image of a split and its mirror image (a right hand), `find_orientation`'s score is taken
for all 8 readings (4 quarter turns, each with and without inverted contrast). It prints the upright
readings' lowest score, the other readings' highest, whether the upright reading won on every file, and
how many upright files the shortcut `CONFIDENT_UPRIGHT` lets skip the other 7 readings. The shortcut is
safe while it lies above every non-upright score.

Run: .venv/bin/python bench/orientation_margin.py [--split val] [--model PATH]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

ATLAS = Path(__file__).resolve().parents[2] / "shared" / "data" / "hand-atlas"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="val")
    parser.add_argument("--model", help="a segmenter .safetensors (default: the bundled model)")
    args = parser.parse_args()

    from osteo_engine.io import load_radiograph
    from osteo_engine.segmentation.predict import CONFIDENT_UPRIGHT, load_segmenter, orientation_scores

    segmenter = load_segmenter(args.model)
    with open(ATLAS / "splits.csv", newline="") as f:
        names = [row["image"] for row in csv.DictReader(f) if row["split"] == args.split]
    upright, others, wins = [], [], 0
    for name in names:
        pixels = load_radiograph(ATLAS / "images" / name).pixels
        for view in (pixels, np.ascontiguousarray(pixels[:, ::-1])):
            scores = orientation_scores(view, segmenter)
            upright.append(scores[0])
            others.append(max(scores[1:]))
            wins += scores[0] > others[-1]
    upright, others = np.array(upright), np.array(others)
    print(
        f"{len(upright)} files ({len(names)} {args.split} atlas images and their mirror images), "
        f"input {segmenter.input_size[0]}x{segmenter.input_size[1]}"
    )
    print(f"upright reading won on {wins}/{len(upright)}; smallest margin {np.min(upright - others):.3f}")
    print(f"upright scores {upright.min():.3f}-{upright.max():.3f}; best other reading at most {others.max():.3f}")
    verdict = (
        "safe: no other reading reaches it"
        if others.max() < CONFIDENT_UPRIGHT
        else "NOT safe: another reading reaches it"
    )
    print(
        f"CONFIDENT_UPRIGHT {CONFIDENT_UPRIGHT}: {int((upright >= CONFIDENT_UPRIGHT).sum())}/{len(upright)} "
        f"upright files skip the other readings; {verdict}"
    )


if __name__ == "__main__":
    main()
