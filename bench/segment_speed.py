"""Time per image of `segment` against a reference checkout of the engine, in one process (goal: ≤ 1.2×).

The reference (e.g. a `git worktree` of an earlier commit) is imported under another package name, so both
run on the same machine state, interleaved: a 2000×2400 and a 1024×1280 phantom, read upright, with the
bundled segmenter. This checkout is timed as the app, `osteo screen` and the Annotate workspace's ranking call
it (every module's map) and as patch banks call it (`modules=False`); without --reference, only these two.

Run: .venv/bin/python bench/segment_speed.py [--reference /tmp/old] [--repeats 5]
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
    parser.add_argument("--reference", help="a checkout of the engine to compare with")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from osteo_engine.phantom import generate_subject
    from osteo_engine.segmentation import predict

    reference = _reference_engine(Path(args.reference)) if args.reference else None
    ours = predict.load_segmenter()
    theirs = reference.load_segmenter() if reference else None
    for size in ((2000, 2400), (1024, 1280)):
        pixels = generate_subject(0, 11, size, raters=0).image.astype(np.float32) / 65535.0
        base = _median_time(lambda p=pixels: reference.segment(p, theirs), args.repeats) if reference else None
        full = _median_time(lambda p=pixels: predict.segment(p, ours), args.repeats)
        labels = _median_time(lambda p=pixels: predict.segment(p, ours, modules=False), args.repeats)
        against = f"reference {base:.2f} s, " if base else ""
        print(
            f"{size[0]}x{size[1]}: {against}this checkout {full:.2f} s{_ratio(full, base)} with every module's map, "
            f"{labels:.2f} s{_ratio(labels, base)} with modules=False ({full / labels:.2f}x for the modules' maps)"
        )


def _ratio(seconds: float, base: float | None) -> str:
    return f" ({seconds / base:.2f}x)" if base else ""


if __name__ == "__main__":
    main()
