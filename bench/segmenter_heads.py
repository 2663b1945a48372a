"""Speed-up of running the U-Net once and only the stochastic heads per sample, against rerunning the whole
network for every sample, at K=4 modules and S=4 samples (goal: at least 4x).

Run: .venv/bin/python bench/segmenter_heads.py [--size 256x320] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch

from osteo_engine.segmentation.model import MixtureSegmenter, SegmenterConfig


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="256x320")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--base-channels", type=int, default=16)
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    x = torch.rand(1, 1, h, w)
    for heads in ("shared", "per-module"):
        model = MixtureSegmenter(SegmenterConfig(base_channels=args.base_channels, modules=4, heads=heads)).eval()
        with torch.inference_mode():
            shared = _time(lambda m=model: m(x, samples=4), args.repeats)
            full = _time(lambda m=model: m.forward_full_per_sample(x, samples=4), args.repeats)
        print(
            f"segmenter K=4 S=4, {heads} heads, at {w}x{h}, {torch.get_num_threads()} threads: trunk once "
            f"{shared * 1000:.0f} ms, full network per sample {full * 1000:.0f} ms, speed-up {full / shared:.1f}x"
        )


if __name__ == "__main__":
    main()
