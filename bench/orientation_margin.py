"""How clearly the segmenter tells an upright hand from a turned or inverted one.

For every atlas image of a split and its mirror image (a right hand), and for `--phantoms N` phantoms of the
synthetic cohort (seed 0, each as generated), `find_orientation`'s score is taken for all 8 readings (4 quarter
turns, each with and without inverted contrast). For each set it prints the upright readings' lowest score, the
other readings' highest, whether the upright reading won on every file, and how many upright files the shortcut
`CONFIDENT_UPRIGHT` lets skip the other 7 readings. The shortcut is safe while it lies above every non-upright
score; the further it lies below the upright ones, the fewer files pay for the 7 other readings.

Run: .venv/bin/python bench/orientation_margin.py [--split val] [--phantoms 32] [--model PATH]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

ATLAS = Path(__file__).resolve().parents[2] / "shared" / "data" / "hand-atlas"


def _atlas_views(split: str):
    from osteo_engine.io import load_radiograph

    with open(ATLAS / "splits.csv", newline="") as f:
        names = [row["image"] for row in csv.DictReader(f) if row["split"] == split]
    for name in names:
        pixels = load_radiograph(ATLAS / "images" / name).pixels
        yield from (pixels, np.ascontiguousarray(pixels[:, ::-1]))


def _phantom_views(count: int):
    from osteo_engine.phantom import generate_subject

    for i in range(count):
        yield generate_subject(0, i, raters=0).image.astype(np.float32) / 65535.0


def _report(title: str, views, segmenter) -> None:
    from osteo_engine.segmentation.reading import CONFIDENT_UPRIGHT, orientation_scores

    scores = np.array([orientation_scores(view, segmenter) for view in views])
    upright, others = scores[:, 0], scores[:, 1:].max(1)
    print(f"{title}: {len(upright)} files, input {segmenter.input_size[0]}x{segmenter.input_size[1]}")
    print(
        f"  upright reading won on {int((upright > others).sum())}/{len(upright)}; "
        f"smallest margin {np.min(upright - others):.3f}"
    )
    print(f"  upright scores {upright.min():.3f}-{upright.max():.3f}; best other reading at most {others.max():.3f}")
    verdict = "safe: no other reading reaches it" if others.max() < CONFIDENT_UPRIGHT else "NOT safe"
    print(
        f"  CONFIDENT_UPRIGHT {CONFIDENT_UPRIGHT}: {int((upright >= CONFIDENT_UPRIGHT).sum())}/{len(upright)} "
        f"upright files skip the other readings; {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="val")
    parser.add_argument("--phantoms", type=int, default=32, help="phantoms to score as well (0: none)")
    parser.add_argument("--model", help="a segmenter .safetensors (default: the bundled model)")
    args = parser.parse_args()

    from osteo_engine.segmentation.predict import load_segmenter

    segmenter = load_segmenter(args.model)
    _report(f"atlas {args.split} and mirror images", _atlas_views(args.split), segmenter)
    if args.phantoms:
        _report("phantoms (seed 0)", _phantom_views(args.phantoms), segmenter)


if __name__ == "__main__":
    main()
