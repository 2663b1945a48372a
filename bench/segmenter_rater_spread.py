"""How much of two raters' disagreement a small mixture segmenter learns to draw, on the toy set of
tests/segmentation/test_modules.py (two blobs an image; a tight and a loose rater; a share of the images has
one rater alone, as the atlas images have beside the phantoms' several raters).

For each setting it trains MoSE's shared-head design for `--steps` steps (γ annealed as in training) and prints,
on 32 held-out images, the samples' diversity (the GED's sample–sample term, Σ α_i α_j d) against the raters'
own, the mean exp(H(π)), and how well the mixture's mean map finds the truth (Dice), with the GED's d
(`segmentation.metrics`).
Each setting takes about 20 s on one core.

Run: .venv/bin/python bench/segmenter_rater_spread.py [--shares 0 0.5 0.75] [--samples 2] [--latent 1]
     [--ce 1] [--steps 300] [--one-rater-weight 1] [--module-cap 1] [--module-share 1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from osteo_engine.segmentation.metrics import ged_terms, iou_distance  # noqa: E402
from osteo_engine.segmentation.model import MixtureSegmenter  # noqa: E402
from osteo_engine.segmentation.uncertainty import effective_modules  # noqa: E402
from tests.segmentation.test_modules import _train, _two_raters  # noqa: E402

MODULES = 4


@torch.inference_mode()
def spread(model: MixtureSegmenter, samples: int) -> tuple[float, float, float, float]:
    """(samples' diversity, raters' diversity, mean exp(H(π)), the mean map's Dice against the truth) on 32
    held-out images, with the GED's distance d (segmentation.metrics) between bone-or-not maps."""
    images, maps = _two_raters(32, seed=100)
    maps = (maps > 0).numpy()  # the two blobs look alike, so which is "class 1" is arbitrary: bone or not
    out = model(images, samples=samples)
    labels = (out.flat_logits().argmax(2) > 0).numpy()
    alpha = out.sample_weights.numpy()
    terms = [ged_terms(labels[b], maps[b, :2], alpha[b], num_classes=2) for b in range(len(images))]
    centre = (out.mean_probabilities().argmax(1) > 0).numpy()
    dice = [2 * (1 - d) / (2 - d) for d in (iou_distance(centre[b], maps[b, 2], 2) for b in range(len(images)))]
    effective = float(np.mean([effective_modules(r) for r in out.routing]))
    return float(np.mean([t[1] for t in terms])), float(np.mean([t[2] for t in terms])), effective, float(np.mean(dice))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.5, 0.75])
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--latent", type=int, default=1)
    parser.add_argument("--ce", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--one-rater-weight", type=float, default=1.0, help="the one-rater images' share of the loss")
    parser.add_argument("--module-cap", type=float, default=1.0, help="the most of a rater one module may take")
    parser.add_argument("--module-share", type=float, default=1.0, help="the most of all raters one module may take")
    args = parser.parse_args()
    print(
        f"K={MODULES}, S={args.samples}, latent {args.latent}, CE weight {args.ce}, {args.steps} steps, "
        f"one-rater images weighted {args.one_rater_weight}, "
        f"module cap {args.module_cap}, module share {args.module_share}"
    )
    for share in args.shares:
        model = _train(
            share,
            args.steps,
            MODULES,
            args.samples,
            heads="shared",
            latent=args.latent,
            ce_weight=args.ce,
            one_rater_weight=args.one_rater_weight,
            module_cap=args.module_cap,
            module_share=args.module_share,
        )
        ours, raters, effective, dice = spread(model, args.samples)
        print(
            f"  one-rater share {share:.2f}: samples' diversity {ours:.3f}, raters' {raters:.3f} "
            f"({ours / raters:.2f}×), exp(H(π)) {effective:.2f}, the mean map's Dice against the truth {dice:.3f}"
        )


if __name__ == "__main__":
    main()
