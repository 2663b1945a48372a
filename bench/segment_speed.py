"""Time per image of `segment` against a reference checkout of the engine, in one process (goal: ≤ 1.2×).

The reference (e.g. a `git worktree` of an earlier commit) is imported under another package name, so both
run on the same machine state, interleaved: a 2000×2400 and a 1024×1280 phantom, read upright, with the
bundled segmenter. This checkout is timed as the app and `osteo screen` call it (every module's map) and
as patch banks call it (`modules=False`).

Run: .venv/bin/python bench/segment_speed.py --reference /tmp/old [--repeats 5]
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _reference_engine(checkout: Path):
    """The reference checkout's osteo_engine, importable beside this one as `reference_engine`."""
    folder = Path(tempfile.mkdtemp())
    (folder / "reference_engine").symlink_to(checkout.resolve() / "osteo_engine")
    sys.path.insert(0, str(folder))
    return importlib.import_module("reference_engine.segmentation.predict")


def _median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, help="a checkout of the engine to compare with")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from osteo_engine.phantom import generate_subject
    from osteo_engine.segmentation import predict

    reference = _reference_engine(Path(args.reference))
    ours, theirs = predict.load_segmenter(), reference.load_segmenter()
    for size in ((2000, 2400), (1024, 1280)):
        pixels = generate_subject(0, 11, size, raters=0).image.astype(np.float32) / 65535.0
        base = _median_time(lambda p=pixels: reference.segment(p, theirs), args.repeats)
        full = _median_time(lambda p=pixels: predict.segment(p, ours), args.repeats)
        labels = _median_time(lambda p=pixels: predict.segment(p, ours, modules=False), args.repeats)
        print(
            f"{size[0]}x{size[1]}: reference {base:.2f} s; this checkout {full:.2f} s ({full / base:.2f}x) with "
            f"every module's map, {labels:.2f} s ({labels / base:.2f}x) with modules=False"
        )


if __name__ == "__main__":
    main()
