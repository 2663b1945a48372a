"""Training data for the segmenter: radiographs with several raters' label maps, letterboxed to one size.

A source is an annotation project folder or a manifest CSV whose folder holds the annotation project
(as the phantom cohort and `osteo annotate-auto` write them). Splits come from the manifest; a bare
project is split 80/10/10 by image with the given seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..annotations import AnnotationProject
from ..cohort import read_manifest, subject_splits
from ..errors import AnnotationError
from ..io import load_radiograph


@dataclass
class Letterbox:
    """Scale to fit (width, height) keeping the aspect ratio, pad at the right and bottom."""

    scale: float
    content: tuple[int, int]  # (h, w) of the scaled image
    size: tuple[int, int]  # (width, height) of the network input
    original: tuple[int, int]  # (h, w)

    @staticmethod
    def fit(shape: tuple[int, int], size: tuple[int, int]) -> Letterbox:
        h, w = shape
        scale = min(size[0] / w, size[1] / h)
        return Letterbox(scale, (max(1, round(h * scale)), max(1, round(w * scale))), size, (h, w))

    def image(self, pixels: np.ndarray) -> np.ndarray:
        small = cv2.resize(pixels, self.content[::-1], interpolation=cv2.INTER_AREA)
        return self._pad(small.astype(np.float32))

    def labels(self, labels: np.ndarray) -> np.ndarray:
        return self._pad(cv2.resize(labels, self.content[::-1], interpolation=cv2.INTER_NEAREST))

    def _pad(self, arr: np.ndarray) -> np.ndarray:
        out = np.zeros((self.size[1], self.size[0]), arr.dtype)
        out[: self.content[0], : self.content[1]] = arr
        return out

    def restore(self, maps: np.ndarray) -> np.ndarray:
        """(..., H_in, W_in) float maps back to the original image size (bilinear)."""
        cropped = maps[..., : self.content[0], : self.content[1]]
        flat = cropped.reshape(-1, *cropped.shape[-2:])
        out = np.empty((len(flat), *self.original), np.float32)  # filled a map at a time: no second copy
        for k, m in enumerate(flat):
            out[k] = cv2.resize(m, self.original[::-1], interpolation=cv2.INTER_LINEAR)
        return out.reshape(*maps.shape[:-2], *self.original)


@dataclass
class SegmentationSample:
    image: np.ndarray  # (H, W) float32 in [0, 1], letterboxed
    annotations: np.ndarray  # (M, H, W) uint8
    weights: np.ndarray  # (M,) β, summing to one
    name: str
    content: tuple[int, int]  # (h, w) of the image inside the letterbox


def load_samples(source: str | Path, size: tuple[int, int], seed: int = 0) -> dict[str, list[SegmentationSample]]:
    """Letterboxed samples per split ("train", "val", "test") from a project folder or a manifest CSV."""
    project, entries = split_entries(source, seed)
    out: dict[str, list[SegmentationSample]] = {"train": [], "val": [], "test": []}
    for image_id, split in entries:
        sample = _sample(project, image_id, size)
        if sample is not None:
            out[split].append(sample)
    if not any(out.values()):
        raise AnnotationError(f"{source} holds no annotated images to train on.")
    return out


def split_entries(source: str | Path, seed: int = 0) -> tuple[AnnotationProject, list[tuple[str, str]]]:
    """(the source's annotation project, (image id, split) of each of its images): the manifest's splits, or for
    a bare project folder 80/10/10 by image with `seed`. Manifest rows the project does not hold are left out."""
    source = Path(source)
    if source.suffix.lower() == ".csv":
        cohort = read_manifest(source, seed=seed)
        project = AnnotationProject.open(source.parent)
        found = [(project.find_image_path(r.image), r.split) for r in cohort.rows]
        return project, [(image_id, split) for image_id, split in found if image_id is not None]
    project = AnnotationProject.open(source)
    split_of = subject_splits({e.image_id: None for e in project.images}, seed)
    return project, [(e.image_id, split_of[e.image_id]) for e in project.images]


def _sample(project: AnnotationProject, image_id: str, size: tuple[int, int]) -> SegmentationSample | None:
    annotations, _problems = project.load(image_id)
    if not annotations.raters:
        return None
    image = load_radiograph(project.image_path(image_id))
    box = Letterbox.fit(image.pixels.shape, size)
    maps = []
    for rater in annotations.raters:
        if rater.labels.shape != image.pixels.shape:
            raise AnnotationError(f"{rater.rater}'s label map of {image_id} does not match its image's size.")
        maps.append(box.labels(rater.labels))
    return SegmentationSample(
        box.image(image.pixels), np.stack(maps), annotations.weights.astype(np.float32), image_id, box.content
    )
