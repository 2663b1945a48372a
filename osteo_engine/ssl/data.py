"""The patch bank: every image of a manifest turned into bone patches once, cached beside the run.

Patches always come from the segmenter's predicted masks (paper §3.2), for training and test alike, phantoms
included. `raw` input (the paper's table 2, no segmentation) takes 7 random squares of the radiograph instead.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..cohort import read_manifest
from ..errors import OsteoError
from ..io import load_radiograph
from ..patches import bone_patches
from ..storage import atomic_write_bytes

RAW_PATCHES = 7


@dataclass
class PatchBank:
    patches: np.ndarray  # (N, S, S) float32
    bones: np.ndarray  # (N,) bone name, or "raw"
    subjects: np.ndarray  # (N,)
    labels: np.ndarray  # (N,) 1 osteoporosis, 0 normal, -1 unlabelled
    splits: np.ndarray  # (N,)
    images: np.ndarray  # (N,) image file name
    skipped: list[str]  # sentences: images that could not be used, and why

    def select(self, mask: np.ndarray) -> "PatchBank":
        return PatchBank(self.patches[mask], self.bones[mask], self.subjects[mask], self.labels[mask],
                         self.splits[mask], self.images[mask], self.skipped)

    def save(self, path: Path) -> None:
        import io

        buffer = io.BytesIO()
        np.savez_compressed(buffer, patches=self.patches.astype(np.float16), bones=self.bones,
                            subjects=self.subjects, labels=self.labels, splits=self.splits, images=self.images,
                            skipped=np.array(self.skipped, dtype=str))
        atomic_write_bytes(path, buffer.getvalue())

    @staticmethod
    def load(path: Path) -> "PatchBank":
        with np.load(path, allow_pickle=False) as z:
            return PatchBank(z["patches"].astype(np.float32), z["bones"], z["subjects"], z["labels"], z["splits"],
                             z["images"], list(z["skipped"]))


def raw_patches(pixels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """7 random squares (a quarter of the shorter side) of a radiograph, resized to `size`."""
    h, w = pixels.shape
    side = max(8, min(h, w) // 4)
    out = []
    for _ in range(RAW_PATCHES):
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        out.append(cv2.resize(pixels[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA))
    return np.stack(out).astype(np.float32)


def build_patch_bank(manifest: str | Path, size: int, source: str = "patches", segmenter=None, seed: int = 0,
                     progress: Callable[[int, int], None] | None = None) -> PatchBank:
    """Patches of every usable image in a manifest; `segmenter` (a LoadedSegmenter) is needed for patches."""
    from ..segmentation.predict import segment

    if source not in ("patches", "raw"):
        raise ValueError(f"unknown input {source!r}; choose patches or raw")
    cohort = read_manifest(manifest, seed=seed)
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {k: [] for k in ("patches", "bones", "subjects", "labels", "splits", "images")}
    skipped = []
    for k, row in enumerate(cohort.rows):
        try:
            image = load_radiograph(row.image)
        except OsteoError as exc:
            skipped.append(f"line {row.line}: {exc}")
            continue
        if source == "raw":
            stack, names = raw_patches(image.pixels, size, rng), ["raw"] * RAW_PATCHES
        else:
            labels = segment(image.pixels, segmenter).labels
            spacing = image.pixel_spacing_mm[0] if image.pixel_spacing_mm else None
            found = bone_patches(image.pixels, labels, size, pixel_spacing_mm=spacing)
            if not found.patches:
                skipped.append(f"line {row.line}: the segmenter found no bone in {row.image.name}")
                continue
            stack, names = found.stack(), found.names
        rows["patches"].append(stack)
        rows["bones"] += names
        rows["subjects"] += [row.subject_id] * len(names)
        rows["labels"] += [-1 if row.label is None else row.label] * len(names)
        rows["splits"] += [row.split] * len(names)
        rows["images"] += [row.image.name] * len(names)
        if progress:
            progress(k + 1, len(cohort.rows))
    if not rows["patches"]:
        raise OsteoError(f"no usable image in {manifest}: " + "; ".join(skipped[:3]))
    return PatchBank(np.concatenate(rows["patches"]), *(np.array(rows[k]) for k in
                                                          ("bones", "subjects", "labels", "splits", "images")),
                     skipped)


def bank_cache_name(manifest: str | Path, size: int, source: str, segmenter_card: dict | None) -> str:
    """A file name that changes with the manifest's content, the patch size, the input and the segmenter."""
    digest = hashlib.sha256(Path(manifest).read_bytes())
    digest.update(f"{size}|{source}|{(segmenter_card or {}).get('command', '')}|"
                  f"{(segmenter_card or {}).get('epoch', '')}".encode())
    return f"patches-{source}-{size}-{digest.hexdigest()[:12]}.npz"
