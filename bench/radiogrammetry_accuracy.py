"""Radiogrammetry against the phantom's truth: each bone's true T and W (the manifest's `M2_T_px`,
`M2_W_px`, ...) beside what `osteo_engine.radiogrammetry` measures on the radiograph (goal: median relative
error of T and of W ≤ 5%, measured MCI against the true one r ≥ 0.95), for the metacarpals and, apart, for the
radius and ulna.

The label map is the phantom's true one (`--labels truth`, the measurement alone) or the bundled segmenter's
(`--labels segmenter`, as `osteo measure` and `osteo screen` run it). Also prints the time per image of
measuring M2–M4 (goal: ≤ 0.3 s on 2 cores), and of all seven bones (what a screening measures).

Run: .venv/bin/python bench/radiogrammetry_accuracy.py build/h0/manifest.csv [--split test] [--labels truth]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from osteo_engine.io import load_radiograph  # noqa: E402
from osteo_engine.phantom.cohort import read_truth  # noqa: E402
from osteo_engine.radiogrammetry import FOREARM, MEASURED, METACARPALS, measure_bones  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest")
    parser.add_argument("--split", default="test")
    parser.add_argument("--labels", choices=("truth", "segmenter"), default="truth")
    parser.add_argument("--limit", type=int, default=0)
    args = parser.parse_args()
    folder = Path(args.manifest).parent
    with open(args.manifest, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == args.split]
    rows = rows[: args.limit] if args.limit else rows
    segmenter = None
    if args.labels == "segmenter":
        from osteo_engine.segmentation.predict import load_segmenter, segment

        segmenter = load_segmenter()
    groups = {"metacarpals": METACARPALS, "radius and ulna": FOREARM}
    errors = {group: {"T": [], "W": [], "MCI": []} for group in groups}
    seconds, all_seven, flagged = [], [], 0
    for row in rows:
        pixels = load_radiograph(folder / row["image"]).pixels
        if segmenter is None:
            labels = read_truth(args.manifest, row["subject_id"])
        else:
            labels = segment(pixels, segmenter, modules=False).labels
        seconds.append(_timed(pixels, labels, ("M2", "M3", "M4"))[0])
        took, measured = _timed(pixels, labels, MEASURED)
        all_seven.append(took)
        for bone, m in measured.items():
            true_w, true_t = float(row[f"{bone}_W_px"]), float(row[f"{bone}_T_px"])
            if m.quality != "ok":
                flagged += 1
                continue
            group = errors["radius and ulna" if bone in FOREARM else "metacarpals"]
            group["W"].append(m.W / true_w - 1)
            group["T"].append(m.T / true_t - 1)
            group["MCI"].append((m.MCI, 2 * true_t / true_w))
    print(f"{len(rows)} {args.split} images of {Path(args.manifest).parent.name}, {args.labels} label maps;")
    print(f"{flagged} bones flagged (not counted)")
    for group, found in errors.items():
        print(f" {group}: {len(found['MCI'])} measured")
        for name in ("T", "W"):
            e = np.array(found[name])
            print(
                f"  {name}: median relative error {np.median(np.abs(e)):.1%} (bias {np.median(e):+.1%}, "
                f"90th percentile {np.percentile(np.abs(e), 90):.1%})"
            )
        mci = np.array(found["MCI"])
        print(f"  MCI measured vs true: r = {np.corrcoef(mci[:, 0], mci[:, 1])[0, 1]:.3f}")
    print(f"  measuring M2–M4: median {np.median(seconds) * 1000:.0f} ms an image", end="")
    print(f" (all seven bones: {np.median(all_seven) * 1000:.0f} ms)")


def _timed(pixels: np.ndarray, labels: np.ndarray, bones: tuple[str, ...]) -> tuple[float, dict]:
    """(seconds, measurements) of measuring `bones`."""
    start = time.perf_counter()
    measured = measure_bones(pixels, labels, bones=bones)
    return time.perf_counter() - start, measured


if __name__ == "__main__":
    main()
