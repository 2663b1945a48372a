"""Which module stands for which rater: per image of a split with several raters, the module whose samples match
each rater best (the mean of its samples' 1 − soft IoU, the training loss's cost), and that cost per module and
rater averaged over the images. A mixture whose modules model the raters' styles finds a module of its own for
each rater (phantom raters: tight, loose, faithful) on most images; one module nearest to every rater means
that the modules differ in quality, not in style (docs/segmenter-modules.md).

Run at the model's input size, S samples per module, seeded: about 10 s for h0's 19 val images on 2 cores.

Run: .venv/bin/python bench/segmenter_rater_modules.py MODEL.safetensors [--data build/h0/manifest.csv]
     [--split val] [--samples 4]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from osteo_engine.segmentation.data import load_samples  # noqa: E402
from osteo_engine.segmentation.losses import soft_iou_cost  # noqa: E402
from osteo_engine.segmentation.predict import load_segmenter  # noqa: E402
from osteo_engine.segmentation.reading import repeatable  # noqa: E402


@torch.inference_mode()
def module_costs(model_path: str, data: str, split: str, samples: int) -> list[np.ndarray]:
    """Per image with two or more raters, the (K, M) mean cost of each module's samples against each rater."""
    segmenter = load_segmenter(model_path, device="cpu")
    model, k = segmenter.model, segmenter.model.heads.k
    generator = repeatable(segmenter)
    costs = []
    for sample in load_samples(data, segmenter.input_size)[split]:
        raters = sample.weights > 0
        if raters.sum() < 2:
            continue
        out = model(torch.from_numpy(sample.image)[None, None], samples=samples, generator=generator)
        annotations = torch.from_numpy(sample.annotations[raters].astype(np.int64))
        cost = soft_iou_cost(out.flat_logits()[0].softmax(1), annotations)
        costs.append(cost.reshape(k, samples, -1).mean(1).numpy())
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--data", default="build/h0/manifest.csv")
    parser.add_argument("--split", default="val")
    parser.add_argument("--samples", type=int, default=4)
    args = parser.parse_args()
    costs = module_costs(args.model, args.data, args.split, args.samples)
    if not costs:
        sys.exit(f"no image of the {args.split} split has two or more raters")
    nearest = Counter(tuple(int(m) + 1 for m in c.argmin(0)) for c in costs)
    print(f"{len(costs)} images; nearest module (from 1) per rater, in the raters' order: images")
    for key, count in nearest.most_common():
        print(f"  {key}: {count}")
    print("mean cost, a row per module, a column per rater:")
    print(np.array2string(np.mean(costs, 0), precision=3))


if __name__ == "__main__":
    main()
