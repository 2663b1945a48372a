"""Does the tissue beside a bone help the SSL encoder? (issue 18's diagnosis, docs/results/phantom/diagnosis.md)

The paper masks each bone patch to the bone alone. The phantom's label lies partly in bone density, which shows
against the soft tissue around the bone, and the measured indices (which read that contrast) beat the encoder.
This trains table 1's run (one method, one seed, the cpu-small preset) on patches cut from the phantoms' true
label maps, once per `--context` (0: the paper's masking; c > 0 keeps the pixels within c times the patch's side
of the bone, `patches.bone_patches`), with everything else equal, and prints each run's internal and external
AUC. True label maps keep the segmenter's errors out of the comparison.

`--tissue-reference` instead keeps the paper's masking but subtracts, from each bone's pixels, the median of the
soft tissue beside it (the image's background pixels within `RING` of the bone's short side): the patch then
shows the bone's brightness over its tissue, the reference a density reading needs, without the tissue itself.

Run: .venv/bin/python bench/patch_context.py build/c0/manifest.csv build/ext500/manifest.csv --context 0 0.08
     [--tissue-reference] [--method simclr] [--seed 0] [--out build/diag/context]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from osteo_engine.anatomy import BONES  # noqa: E402
from osteo_engine.cohort import read_manifest  # noqa: E402
from osteo_engine.experiments import ExperimentRequest, RunSpec, run_one  # noqa: E402
from osteo_engine.io import load_radiograph  # noqa: E402
from osteo_engine.patches import bone_patches  # noqa: E402
from osteo_engine.phantom.cohort import read_truth  # noqa: E402
from osteo_engine.ssl.data import PatchBank  # noqa: E402
from osteo_engine.ssl.pretrain import pretrain_preset  # noqa: E402

RING = 0.5  # of the bone's short side: how far from it the tissue reference is taken


def above_tissue(pixels: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """pixels with each bone's pixels minus the median of the background within RING of its short side."""
    out = pixels.astype(np.float32).copy()
    for value in BONES:
        mask = (labels == value).astype(np.uint8)
        if not mask.any():
            continue
        ys, xs = np.nonzero(mask)
        reach = max(3, int(RING * min(np.ptp(xs), np.ptp(ys))))
        ring = (cv2.dilate(mask, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)) > 0) & (labels == 0)
        if ring.any():
            out[mask > 0] -= np.median(pixels[ring])
    return out


def truth_bank(manifest: Path, size: int, context: float, tissue_reference: bool = False) -> PatchBank:
    """Bone patches of every image of a phantom manifest, cut from its true label map (`truth/<subject>.png`)."""
    rows = {k: [] for k in ("patches", "bones", "subjects", "labels", "splits", "images")}
    for row in read_manifest(manifest).rows:
        image = load_radiograph(row.image)
        labels = read_truth(manifest, row.subject_id)
        spacing = image.pixel_spacing_mm[0] if image.pixel_spacing_mm else None
        pixels = above_tissue(image.pixels, labels) if tissue_reference else image.pixels
        found = bone_patches(pixels, labels, size, pixel_spacing_mm=spacing, context=context)
        rows["patches"].append(found.stack())
        rows["bones"] += found.names
        for key, value in (("subjects", row.subject_id), ("labels", row.label), ("splits", row.split)):
            rows[key] += [value] * len(found.names)
        rows["images"] += [row.image.name] * len(found.names)
    return PatchBank(np.concatenate(rows["patches"]), *(np.array(rows[k]) for k in list(rows)[1:]), [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train", type=Path)
    parser.add_argument("external", type=Path)
    parser.add_argument("--context", type=float, nargs="+", default=[0.0, 0.08])
    parser.add_argument("--tissue-reference", action="store_true", help="bone minus the tissue beside it")
    parser.add_argument("--method", default="simclr")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "diag" / "context")
    args = parser.parse_args()
    size = pretrain_preset("cpu-small").patch_size
    for context in args.context:
        name = f"context-{context:g}" + ("-tissue" if args.tissue_reference else "")
        request = ExperimentRequest(data=args.train, out=args.out / name, test_data=args.external)
        bank, external = (truth_bank(m, size, context, args.tissue_reference) for m in (args.train, args.external))
        record = run_one(RunSpec("1", args.method, args.seed), bank, request, external)
        auc = {"internal_auc": record["metrics"]["auc"], "external_auc": record["external"]["auc"]}
        print(json.dumps({"context": context, "tissue_reference": args.tissue_reference} | auc), flush=True)


if __name__ == "__main__":
    main()
