"""Where a segmenter's wrong pixels lie, and how well any map can flag them (issue 14's pixel AUROC).

For the images of a manifest's split (default: atlas val, against the annotate-auto masks), inside the bones'
box with its margin as `uncertainty_eval` takes it, this prints:
- the mean Dice of the label map, and of the reference sent to the network's input size and back (what the
  input size alone costs);
- the pixel AUROC for wrong pixels, among all and among those more than 10 pixels from the label map's edges, of
  total entropy, mutual information, total entropy blurred (σ 8 and 16 pixels), the share of the K·S samples
  that disagree with the label map, and of the distance to the label map's nearest edge (negated): a map that
  only knows where the edges are; the model's learned error map when it has one (error_map.py); with
  --flipped, also the mean entropy of the image's reading and its mirror image's, and where the two label maps
  differ; with --offset X, the model's background logit offset is X instead of its card's (`load_segmenter`);
- the wrong pixels by their distance to that edge, and those more than 10 pixels from it by (label, reference).
When the distance to the edge flags the errors as well as the entropy, the entropy is finding edges, and
what it misses are confident errors away from them: no map computed from this model's edges can flag those.

Run: .venv/bin/python bench/segmenter_errors.py [--data build/atlas-auto/manifest.csv] [--split val]
     [--model FILE] [--limit N] [--flipped] [--offset X]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

DISTANCE_BANDS = (0, 3, 10, 20, 50, np.inf)  # pixels from the label map's nearest edge


def _round_trip(reference: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """The reference letterboxed to the network's input (area-averaged per label) and enlarged back (bilinear)."""
    from osteo_engine.segmentation.data import Letterbox

    box = Letterbox.fit(reference.shape, input_size)
    small = np.stack([box.image((reference == c).astype(np.float32)) for c in range(int(reference.max()) + 1)])
    return box.restore(small).argmax(0).astype(np.uint8)


def _image(seg, reference: np.ndarray, input_size, mirrored=None) -> dict:
    """One image's pixel scores, errors and figures, inside the bones' box; `mirrored`, the segmentation of the
    image mirrored left to right, when asked for."""
    from scipy import ndimage

    from osteo_engine.segmentation.error_map import label_edges
    from osteo_engine.segmentation.metrics import bones_box, mean_dice

    box = bones_box(seg.labels, reference)
    labels, ref = seg.labels[box], reference[box]
    total = seg.entropy[box]
    alpha = np.array([s.weight for s in seg.samples])
    disagree = sum(a * (s.labels[box] != labels) for a, s in zip(alpha / alpha.sum(), seg.samples))
    distance = ndimage.distance_transform_edt(~label_edges(labels))
    scores = {
        "total entropy": total,
        "mutual information": seg.mutual_information[box],
        "total entropy, blurred σ 8": cv2.GaussianBlur(total, (0, 0), 8),
        "total entropy, blurred σ 16": cv2.GaussianBlur(total, (0, 0), 16),
        "samples disagreeing": disagree,
        "distance to the edge (negated)": -distance,
    }
    if seg.error is not None:
        scores["learned error map"] = seg.error[box]
    if mirrored is not None:
        entropy, other = (a[:, ::-1][box] for a in (mirrored.entropy, mirrored.labels))
        scores["mean entropy with the mirror image"] = (total + entropy) / 2
        scores["mirror image's label differs"] = (other != labels).astype(np.float32)
    wrong = labels != ref
    far = wrong & (distance > 10)
    return {
        "dice": mean_dice(seg.labels, reference),
        "round_trip_dice": mean_dice(_round_trip(reference, input_size), reference),
        "wrong": wrong,
        "distance": distance,
        "scores": scores,
        "bands": np.histogram(distance[wrong], DISTANCE_BANDS)[0],
        "far": Counter(zip(labels[far].tolist(), ref[far].tolist())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("build/atlas-auto/manifest.csv"))
    parser.add_argument("--split", default="val")
    parser.add_argument("--model", help="segmenter .safetensors (default: the bundled one)")
    parser.add_argument("--limit", type=int, help="at most this many images")
    parser.add_argument("--offset", type=float, help="the background logit offset, instead of the card's")
    parser.add_argument("--flipped", action="store_true", help="also segment each image mirrored (twice the time)")
    args = parser.parse_args()

    from sklearn.metrics import roc_auc_score

    from osteo_engine.anatomy import BONES
    from osteo_engine.annotations import AnnotationProject
    from osteo_engine.cohort import read_manifest
    from osteo_engine.io import load_radiograph
    from osteo_engine.segmentation.evaluate import _rater_maps
    from osteo_engine.segmentation.predict import load_segmenter, offset_background, segment

    segmenter = load_segmenter(args.model)
    if args.offset is not None:
        offset_background(segmenter.model, args.offset - segmenter.card.background_logit_offset)
    project = AnnotationProject.open(args.data.parent)
    rows = [r for r in read_manifest(args.data).rows if r.split == args.split][: args.limit]
    rng = np.random.default_rng(0)
    images, wrong, distant, scores = [], [], [], {}
    for row in rows:
        references = _rater_maps(project, row.image)
        if not references:
            continue
        pixels = load_radiograph(row.image).pixels
        seg = segment(pixels, segmenter, keep_samples=True)
        mirrored = segment(np.ascontiguousarray(pixels[:, ::-1]), segmenter, modules=False) if args.flipped else None
        image = _image(seg, references[0], segmenter.input_size, mirrored)
        chosen = rng.choice(image["wrong"].size, min(image["wrong"].size, 200_000), replace=False)
        wrong.append(image["wrong"].ravel()[chosen])
        distant.append(image["distance"].ravel()[chosen] > 10)
        for name, values in image["scores"].items():
            scores.setdefault(name, []).append(values.ravel()[chosen].astype(np.float32))
        images.append(image)
    y = np.concatenate(wrong)
    print(f"{len(images)} images of {args.data} ({args.split}); {y.mean():.2%} of the box's pixels wrong")
    print(
        f"mean Dice {np.mean([i['dice'] for i in images]):.4f}; the reference through the input size and back "
        f"{np.mean([i['round_trip_dice'] for i in images]):.4f}"
    )
    distant = np.concatenate(distant)
    print("pixel AUROC for wrong pixels, all / more than 10 px from the label map's edges:")
    for name, values in scores.items():
        values = np.concatenate(values)
        print(f"  {name:36s} {roc_auc_score(y, values):.4f} / {roc_auc_score(y[distant], values[distant]):.4f}")
    bands = sum(i["bands"] for i in images)
    edges = [f"{a:g}–{b:g}" for a, b in zip(DISTANCE_BANDS[:-1], DISTANCE_BANDS[1:])]
    print(
        "wrong pixels by distance to the edge (px): "
        + ", ".join(f"{e} {s:.1%}" for e, s in zip(edges, bands / bands.sum()))
    )
    far = sum((i["far"] for i in images), Counter())
    name = {0: "background", **BONES}
    print(
        "more than 10 px from it, as (label map, reference): "
        + ", ".join(f"({name[a]}, {name[b]}) {n / sum(far.values()):.1%}" for (a, b), n in far.most_common(6))
    )


if __name__ == "__main__":
    main()
