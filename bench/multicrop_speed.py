"""Multi-crop throughput, constrained against conventional (goal: constrained ≥ 0.9× conventional).

Bone patches are made from the phantom sample's true label map (7 patches at 128 px), repeated to a
batch, and cut into 2 global + 4 local views (96/48 px, the CPU preset's sizes) again and again.

Run: .venv/bin/python bench/multicrop_speed.py [--batch 128] [--rounds 20]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from osteo_engine.patches import bone_patches
from osteo_engine.phantom import generate_subject
from osteo_engine.ssl.multicrop import MultiCropConfig, multicrop


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    subject = generate_subject(0, 0, raters=0)
    patches = bone_patches(subject.image.astype(np.float32) / 65535, subject.truth, size=128).stack()
    images = torch.from_numpy(np.resize(patches, (args.batch, 128, 128)))[:, None]
    print(f"{args.batch} bone patches, {100 * (images != 0).float().mean():.0f}% non-zero pixels")
    rates = {}
    for mode in ("conventional", "constrained"):
        config = MultiCropConfig(global_size=96, local_size=48, mode=mode)
        g = torch.Generator().manual_seed(0)
        multicrop(images, config, g)  # warm-up
        started, fallbacks, crops = time.perf_counter(), 0, 0
        for _ in range(args.rounds):
            _, _, stats = multicrop(images, config, g)
            fallbacks, crops = fallbacks + stats.fallbacks, crops + stats.crops
        seconds = time.perf_counter() - started
        rates[mode] = args.batch * args.rounds / seconds
        print(f"{mode:>12}: {rates[mode]:.0f} patches/s (6 views each); fallbacks {fallbacks}/{crops} crops")
    print(f"constrained / conventional throughput: {rates['constrained'] / rates['conventional']:.2f} (goal ≥ 0.9)")


if __name__ == "__main__":
    main()
