"""Multi-crop throughput, constrained against conventional (goal: constrained ≥ 0.9× conventional), and the
share of views that keep at least 10% non-zero pixels, measured on the views as sampled (goal: ≥ 99% of the
constrained ones). The acquisition ablation (each view's gamma and noise, `--gamma-jitter 0.25 --noise 0.02`) is
timed beside the constrained views.

Bone patches are made from the phantom sample's true label map (7 patches at 128 px), repeated to a
batch, and cut into 2 global + 4 local views (96/48 px) again and again. The coverage maps of the patches
are made once, as pretraining does (a patch does not change between epochs).

Run: .venv/bin/python bench/multicrop_speed.py [--batch 128] [--rounds 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from osteo_engine.patches import bone_patches
from osteo_engine.phantom import generate_subject
from osteo_engine.ssl.multicrop import CropStats, MultiCropConfig, ViewAugmentConfig, coverage, multicrop


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    subject = generate_subject(0, 0, raters=0)
    patches = bone_patches(subject.image.astype(np.float32) / 65535, subject.truth, size=128).stack()
    images = torch.from_numpy(np.resize(patches, (args.batch, 128, 128)))[:, None]
    print(f"{args.batch} bone patches, {100 * (images != 0).float().mean():.0f}% non-zero pixels")
    cover = coverage(images)  # once per patch, as pretraining keeps it
    configs = {
        mode: MultiCropConfig(global_size=96, local_size=48, mode=mode) for mode in ("conventional", "constrained")
    }
    acquisition = ViewAugmentConfig(gamma=(0.8, 1.25), noise=(0.0, 0.02))
    configs["acquisition"] = MultiCropConfig(global_size=96, local_size=48, augment=acquisition)
    seconds = dict.fromkeys(configs, 0.0)
    stats = {mode: CropStats() for mode in configs}
    g = torch.Generator().manual_seed(0)
    for config in configs.values():
        multicrop(images, config, g)  # warm-up
    for _ in range(args.rounds):  # interleaved, so that a busy machine slows both modes alike
        for mode, config in configs.items():
            started = time.perf_counter()
            _, _, found = multicrop(images, config, g, cover if config.mode == "constrained" else None)
            seconds[mode] += time.perf_counter() - started
            stats[mode].add(found)
    rates = {mode: args.batch * args.rounds / s for mode, s in seconds.items()}
    for mode, rate in rates.items():
        print(f"{mode:>12}: {rate:.0f} patches/s (6 views each)")
    for mode, found in stats.items():
        print(
            f"{mode:>12}: {1 - found.below_min / found.crops:.2%} of {found.crops} views keep ≥ 10% non-zero pixels"
            + (f"; {found.fallbacks} fell back to the best try" if mode != "conventional" else "")
        )
    print(f"constrained / conventional throughput: {rates['constrained'] / rates['conventional']:.2f} (goal ≥ 0.9)")
    print(f"with gamma and noise / constrained throughput: {rates['acquisition'] / rates['constrained']:.2f}")


if __name__ == "__main__":
    main()
