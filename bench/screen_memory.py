"""Peak memory and time of `osteo screen` on very large files, against an ordinary one in the same run.

Each file is screened in its own process (`osteo screen FILE --json`), and the child's peak resident memory
is read from the operating system. The target: at most 4 GB for any file the loader accepts (100 megapixels).

    python bench/screen_memory.py [--megapixels 100] [--formats png dcm]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "resources" / "samples" / "phantom_hand.dcm"
LIMIT_GB = 4.0


def make_file(folder: Path, megapixels: float, fmt: str) -> Path:
    """The bundled sample enlarged to `megapixels`, as an 8-bit PNG or a 16-bit uncompressed DICOM."""
    import pydicom

    source = pydicom.dcmread(SAMPLE)
    h, w = source.Rows, source.Columns
    scale = (megapixels * 1e6 / (h * w)) ** 0.5
    size = (int(w * scale), int(h * scale))
    big = cv2.resize(source.pixel_array, size, interpolation=cv2.INTER_LINEAR)
    path = folder / f"hand_{megapixels:g}mp.{fmt}"
    if fmt == "png":
        cv2.imwrite(str(path), (big >> 4).astype(np.uint8))
    else:
        source.decompress()
        source.Rows, source.Columns = big.shape
        source.PixelData = big.astype(np.uint16).tobytes()
        spacing = float(source.PixelSpacing[0]) / scale
        source.PixelSpacing = source.ImagerPixelSpacing = [round(spacing, 6)] * 2
        source.save_as(path)
    return path


# A fresh parent per measurement: RUSAGE_CHILDREN keeps the largest child a process ever waited for.
_MEASURE = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=False); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)"
)


def screen_in_child(path: Path) -> tuple[float, float, dict]:
    """(peak resident GB of `osteo screen`, seconds, its JSON answer)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, sys.executable, "-m", "training_cli", "screen", str(path), "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    seconds = time.perf_counter() - started
    if not done.stdout.strip():
        raise SystemExit(f"osteo screen failed on {path.name}: {done.stderr[-2000:]}")
    peak_kb = int(done.stderr.strip().splitlines()[-1])
    return peak_kb / 2**20, seconds, json.loads(done.stdout.splitlines()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=100)
    parser.add_argument("--formats", nargs="+", default=["png", "dcm"], choices=["png", "dcm"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        runs = [("reference 2000x2400 png", make_file(folder, 4.8, "png"))]
        runs += [(f"{args.megapixels:g} MP {fmt}", make_file(folder, args.megapixels, fmt)) for fmt in args.formats]
        reference_s = None
        for name, path in runs:
            peak, seconds, answer = screen_in_child(path)
            reference_s = reference_s or seconds
            verdict = "ok" if peak <= LIMIT_GB else f"OVER the {LIMIT_GB:g} GB target"
            print(
                f"{name:28s} {path.stat().st_size / 1e6:7.1f} MB file  peak {peak:5.2f} GB ({verdict})  "
                f"{seconds:5.1f} s ({seconds / reference_s:4.1f}x the reference)  "
                f"decision {answer.get('decision', answer.get('error'))}"
            )


if __name__ == "__main__":
    main()
