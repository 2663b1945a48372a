"""Images per second of making bone patches, batched label maps against one `segment` per image (goal ≥ 3/s).

The ways run in one process on the same 1024×1280 phantoms with the bundled segmenter, interleaved:
- `one_by_one`: `segment(..., modules=False)` per image, full-size maps (how patch banks were first made);
- `whole_heads`: `segmentation.batch.label_maps`, 4 images a pass, labels restored per bone, with the K·S heads
  run over every pixel in one product (`CHUNK_VALUES` lifted: how banks were made until 2026-12-04);
- `batched`: today's `label_maps` (heads a chunk of pixels at a time, only the weighted mean kept).
Each is followed by what a patch bank does with a label map: `bone_patches` at 96 pixels and the metacarpals'
radiogrammetry (`measure_bones`). It also prints the share of pixels on which the label maps of
`one_by_one` and `batched` differ.

Run: .venv/bin/python bench/patch_bank_speed.py [--images 16] [--repeats 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import torch

    from osteo_engine.patches import bone_patches
    from osteo_engine.phantom import generate_subject
    from osteo_engine.radiogrammetry import bone_bright, measure_bones
    from osteo_engine.segmentation import model as model_module
    from osteo_engine.segmentation.batch import label_maps
    from osteo_engine.segmentation.predict import load_segmenter, segment

    segmenter = load_segmenter()
    images = [generate_subject(0, i, raters=0).image.astype(np.float32) / 65535.0 for i in range(args.images)]

    def one_by_one():
        return [segment(p, segmenter, modules=False).labels for p in images]

    def batched():
        return list(label_maps(images, segmenter))

    def whole_heads():
        chunk, model_module.CHUNK_VALUES = model_module.CHUNK_VALUES, 10**9
        try:
            return batched()
        finally:
            model_module.CHUNK_VALUES = chunk

    ways = {"one_by_one": one_by_one, "whole_heads": whole_heads, "batched": batched}
    timings: dict[str, list[float]] = {name: [] for name in ways}
    maps = {}
    batched()  # warm-up
    for _ in range(args.repeats):
        for name, fn in ways.items():
            torch.manual_seed(0)
            started = time.perf_counter()
            maps[name] = fn()
            for pixels, labels in zip(images, maps[name]):
                bone_patches(pixels, labels, 96)
                measure_bones(bone_bright(pixels, labels), labels, None)
            timings[name].append(time.perf_counter() - started)
    rates = {name: args.images / statistics.median(t) for name, t in timings.items()}
    differ = np.mean([(a != b).mean() for a, b in zip(maps["one_by_one"], maps["batched"])])
    print(
        f"{args.images} phantoms 1024x1280, {torch.get_num_threads()} threads: one by one {rates['one_by_one']:.2f} "
        f"images/s, batched with whole heads {rates['whole_heads']:.2f}, batched {rates['batched']:.2f} images/s "
        f"({rates['batched'] / rates['one_by_one']:.2f}x one by one, {rates['batched'] / rates['whole_heads']:.2f}x "
        f"whole heads); label maps differ on {differ:.4%} of pixels"
    )


if __name__ == "__main__":
    main()
