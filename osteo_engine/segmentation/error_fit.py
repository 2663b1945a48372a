"""`osteo segment fit-errors`: fit a segmenter's error map (error_map.py) to the train split of annotated
manifests, and score it on their val split beside the entropy and the mutual information."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..annotations import AnnotationProject
from ..cards import ErrorMapCard, Provenance
from ..cohort import read_manifest
from ..errors import ConfigError
from ..events import Cancelled, CancelToken
from ..io import load_radiograph
from .error_map import (
    CONTINUOUS,
    ErrorMap,
    companion_path,
    on_grid,
    pixel_features,
    save_error_map,
    train_error_classifier,
)
from .evaluate import _rater_maps
from .metrics import bones_box
from .predict import DEFAULT_MODEL, load_segmenter, segment

VAL_PIXELS_PER_IMAGE = 20_000  # drawn at random inside the bones' box, as the evaluation draws them


@dataclass(frozen=True, kw_only=True)
class ErrorMapRequest:
    data: tuple[Path, ...]  # manifest CSVs whose folders hold annotation projects (the first rater is the reference)
    model: Path | None = None  # the segmenter; None: the bundled one
    out: Path | None = None  # None: beside the segmenter (`error_map.companion_path`)
    # train pixels drawn from each manifest, shared equally by its train images, so that every source weighs the
    # same (on atlas val: AUROC 0.935 so, 0.932 with 20,000 pixels an image, where the phantoms outnumber the atlas)
    pixels_per_manifest: int = 2_000_000
    epochs: int = 4
    seed: int = 0
    command: str = ""


@dataclass
class ErrorMapResult:
    path: Path
    train_images: int
    train_pixels: int
    evaluations: dict[str, dict] = field(default_factory=dict)  # manifest -> val images and each map's AUROC


@dataclass
class _Pixels:
    features: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    wrong: list[np.ndarray] = field(default_factory=list)

    def joined(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.concatenate(self.features), np.concatenate(self.labels), np.concatenate(self.wrong)


def fit_error_map_job(
    request: ErrorMapRequest,
    progress: Callable[[int, int], None] | None = None,
    cancel: CancelToken | None = None,
) -> ErrorMapResult:
    """Segment every train and val image of the manifests with the segmenter (its own error map left out), draw
    pixels inside each image's bones' box, fit the error map on the train pixels and write it with its card.
    `progress(done, total)` counts the images, then the epochs. Raises ConfigError when the manifests have no
    annotated train image, or their pixels are all right; Cancelled at the next image or epoch once `cancel` is
    set, having written nothing (an earlier map stays as it was)."""
    cancel = cancel or CancelToken()
    model = Path(request.model or DEFAULT_MODEL)
    segmenter = dataclasses.replace(load_segmenter(model), error_map=None)
    rows = [(m, r) for m in request.data for r in read_manifest(m).rows if r.split in ("train", "val")]
    projects = {m: AnnotationProject.open(Path(m).parent) for m in request.data}
    train, val = _Pixels(), {str(m): _Pixels() for m in request.data}
    per_image = {
        m: request.pixels_per_manifest // max(1, sum(r.split == "train" for n, r in rows if n == m))
        for m in request.data
    }
    rng = np.random.default_rng(request.seed)
    for k, (manifest, row) in enumerate(rows):
        references = _rater_maps(projects[manifest], row.image)
        if references:
            pixels = load_radiograph(row.image).pixels
            seg = segment(pixels, segmenter, modules=False)
            if row.split == "train":
                _draw(seg, pixels, references[0], rng, per_image[manifest], train)
            else:
                _draw(seg, pixels, references[0], rng, VAL_PIXELS_PER_IMAGE, val[str(manifest)])
        _stop_if_cancelled(cancel)
        if progress:
            progress(k + 1, len(rows) + request.epochs)
    features, labels, wrong = train.joined() if train.wrong else (None, None, np.zeros(0, bool))
    if not 0 < wrong.sum() < len(wrong):
        raise ConfigError("no annotated train image with both right and wrong pixels to fit an error map to.")
    state = train_error_classifier(
        features,
        labels,
        wrong,
        epochs=request.epochs,
        seed=request.seed,
        progress=lambda e, _: _epoch_done(len(rows) + e, len(rows) + request.epochs, progress, cancel),
    )
    card = ErrorMapCard(
        provenance=Provenance.capture(request.command, request.data),
        features=list(CONTINUOUS),
        segmenter=str(model),
        data=[str(m) for m in request.data],
        train_images=len(train.wrong),
        train_pixels=len(wrong),
    )
    error_map = ErrorMap(state, card)
    evaluations = {m: _scores(error_map, p) for m, p in val.items() if p.wrong}
    error_map.card = card.with_changes(evaluations=evaluations)
    path = save_error_map(request.out or companion_path(model), error_map)
    return ErrorMapResult(path, len(train.wrong), len(wrong), evaluations)


def _stop_if_cancelled(cancel: CancelToken) -> None:
    if cancel.cancelled:
        raise Cancelled("fitting the error map was cancelled; nothing was written (an earlier map is unchanged).")


def _epoch_done(done: int, total: int, progress, cancel: CancelToken) -> None:
    _stop_if_cancelled(cancel)
    if progress:
        progress(done, total)


def _draw(seg, pixels, reference, rng, count: int, into: _Pixels) -> None:
    """Up to `count` pixels of one image's bones' box, on the error map's grid (`on_grid`): their features,
    labels and whether the label differs from the reference's."""
    pixels, labels, entropy, mi, reference = on_grid(pixels, seg.labels, seg.entropy, seg.mutual_information, reference)
    box = bones_box(labels, reference)
    if box is None:
        return
    features = pixel_features(pixels, labels, entropy, mi)[box].reshape(-1, len(CONTINUOUS))
    labels, reference = labels[box].ravel(), reference[box].ravel()
    chosen = rng.choice(len(labels), min(len(labels), count), replace=False)
    into.features.append(features[chosen])
    into.labels.append(labels[chosen])
    into.wrong.append(labels[chosen] != reference[chosen])


def _scores(error_map: ErrorMap, pixels: _Pixels) -> dict:
    """Val images and the pixel AUROC for wrong pixels of the total entropy, the mutual information and the map."""
    from sklearn.metrics import roc_auc_score

    features, labels, wrong = pixels.joined()
    if not 0 < wrong.sum() < len(wrong):
        return {"images": len(pixels.wrong), "pixel_auroc": {}}
    maps = {
        "total": features[:, 0],
        "mutual_information": features[:, 1],
        "error": error_map.probability(features, labels),
    }
    return {
        "images": len(pixels.wrong),
        "pixels": len(wrong),
        "pixel_auroc": {k: round(float(roc_auc_score(wrong, v)), 4) for k, v in maps.items()},
    }
