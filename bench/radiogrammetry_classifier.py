"""How much of a phantom's label radiogrammetry alone recovers: a logistic regression on each metacarpal's
measured MCI, T, W (mm), then with its relative marrow density (RMD), then with its relative base density
(RBD) too, then on every index of all seven bones, and last on the hand's two summaries (mean MCI, median RBD:
what the product's probes read, fusion.READ), trained on one cohort's train+val subjects and scored (AUC) on its
test split and on an external cohort (compare with `osteo oracle`'s limit).

Label maps are the phantom's true ones (`--labels truth`: the measurement alone) or the bundled segmenter's
(`--labels segmenter`, batched as patch banks are made: the product's path). A bone flagged by its quality
check counts as missing; missing values take the training median.

Run: .venv/bin/python bench/radiogrammetry_classifier.py build/c0/manifest.csv build/ext500/manifest.csv
     [--labels truth|segmenter]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from osteo_engine.fusion import READ  # noqa: E402
from osteo_engine.io import load_radiograph  # noqa: E402
from osteo_engine.phantom.cohort import read_truth  # noqa: E402
from osteo_engine.radiogrammetry import (  # noqa: E402
    FEATURES,
    KINDS,
    MEASURED,
    METACARPALS,
    SUMMARY,
    bone_bright,
    feature_vector,
    measure_bones,
)


def features(manifest: Path, labels: str) -> tuple[np.ndarray, list[dict]]:
    """(features per image: radiogrammetry.FEATURES, NaN where flagged), the manifest's rows."""
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    folder = manifest.parent
    images = [load_radiograph(folder / r["image"]).pixels for r in rows]
    if labels == "segmenter":
        from osteo_engine.segmentation.batch import label_maps
        from osteo_engine.segmentation.predict import load_segmenter

        maps = list(label_maps(images, load_segmenter()))
    else:
        maps = [read_truth(manifest, r["subject_id"]) for r in rows]
    out = []
    for row, pixels, label_map in zip(rows, images, maps):
        measured = measure_bones(bone_bright(pixels, label_map), label_map, float(row["pixel_spacing_mm"]))
        out.append(feature_vector(measured))
    return np.array(out, float), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train", type=Path)
    parser.add_argument("external", type=Path)
    parser.add_argument("--labels", choices=("truth", "segmenter"), default="truth")
    args = parser.parse_args()
    x, rows = features(args.train, args.labels)
    xe, rows_e = features(args.external, args.labels)
    y, ye = (np.array([int(r["label"]) for r in part]) for part in (rows, rows_e))
    splits = [r["split"] for r in rows]
    metacarpal = [f"{bone}_{kind}" for bone in METACARPALS for kind in KINDS]
    sets = {
        "metacarpals' MCI, T, W": [n for n in metacarpal if n.endswith(("MCI", "_T", "_W"))],
        "metacarpals' MCI, T, W and RMD": [n for n in metacarpal if not n.endswith("RBD")],
        "metacarpals' five indices": metacarpal,
        "all seven bones' five indices": [n for n in FEATURES if n not in SUMMARY],
        "the hand's summary (what the probes read)": list(READ),
    }
    for name, names in sets.items():
        columns = [FEATURES.index(n) for n in names]
        print(f"{name}:")
        score(x[:, columns], y, splits, xe[:, columns], ye, args)
    density_correlations(args.train.parent.name, rows, x)


def density_correlations(cohort: str, rows: list[dict], x: np.ndarray) -> None:
    """Pearson r of each bone's RMD and RBD with its true trabecular density (the manifest's *_density)."""
    truth = np.array([[float(r[f"{b}_density"]) for b in MEASURED] for r in rows])
    for kind in ("RMD", "RBD"):
        r = []
        for j, bone in enumerate(MEASURED):
            v = x[:, FEATURES.index(f"{bone}_{kind}")]
            ok = np.isfinite(v)
            r.append(f"{bone} {np.corrcoef(v[ok], truth[ok, j])[0, 1]:.2f}")
        print(f"{kind} against the true density ({cohort}): r " + ", ".join(r))


def score(x, y, splits, xe, ye, args) -> None:
    fit = np.array([s in ("train", "val") for s in splits])
    median = np.nanmedian(x[fit], axis=0)
    mean, std = np.nanmean(x[fit], 0), np.nanstd(x[fit], 0) + 1e-9

    def prepared(v):
        return (np.where(np.isnan(v), median, v) - mean) / std

    model = LogisticRegression(C=1.0, max_iter=5000).fit(prepared(x[fit]), y[fit])
    print(f"radiogrammetry alone ({args.labels} label maps), logistic regression on {fit.sum()} subjects:")
    internal = roc_auc_score(y[~fit], model.predict_proba(prepared(x[~fit]))[:, 1])
    external = roc_auc_score(ye, model.predict_proba(prepared(xe))[:, 1])
    print(f"  {args.train.parent.name} test AUC {internal:.3f}; {args.external.parent.name} AUC {external:.3f}")
    print(f"  bone values flagged: {np.isnan(x).mean():.1%} ({args.train.parent.name}), {np.isnan(xe).mean():.1%}")


if __name__ == "__main__":
    main()
