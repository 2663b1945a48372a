"""Bone patches (paper §3.2): one square patch per bone present, the radiograph masked to that bone.

The same function serves training, screening and the GUI. With a known pixel spacing, a patch covers a
square of at least `size × mm_per_pixel` millimetres around the bone, so a bone looks the same size from
every scanner; bones too large for that field of view are shrunk to fit, and their scale is recorded.

`context` > 0 keeps, besides the bone, the pixels within `context` times the patch's side of it (the soft
tissue beside a bone, the reference against which its density shows), an ablation of the paper's masking
(docs/results/phantom/diagnosis.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .anatomy import BONES, bone_extents

MIN_BONE_PIXELS = 50  # fewer labelled pixels than this is not a bone


@dataclass
class BonePatch:
    bone: str
    pixels: np.ndarray  # (size, size) float32, zero outside the bone
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 of the square in the source image (may leave it)
    mm_per_pixel: float | None  # of the patch, when the source spacing is known


@dataclass
class PatchSet:
    patches: list[BonePatch] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def stack(self) -> np.ndarray:
        """(bones, size, size) float32."""
        return np.stack([p.pixels for p in self.patches]) if self.patches else np.zeros((0, 0, 0), np.float32)

    @property
    def names(self) -> list[str]:
        return [p.bone for p in self.patches]


def bone_patches(
    pixels: np.ndarray,
    labels: np.ndarray,
    size: int = 96,
    margin: float = 0.1,
    pixel_spacing_mm: float | None = None,
    mm_per_pixel: float = 0.5,
    context: float = 0.0,
) -> PatchSet:
    """pixels (H, W) in [0, 1] and a label map of the same size -> a patch per bone present; `context` (a
    fraction of the patch's side, ≥ 0) widens what the mask keeps around each bone (0: the bone alone)."""
    if context < 0:
        raise ValueError(f"context must be ≥ 0, not {context}")
    if pixels.shape != labels.shape:
        raise ValueError(f"image {pixels.shape} and label map {labels.shape} differ in size")
    out = PatchSet()
    extents = bone_extents(labels)
    for value, name in BONES.items():
        extent = extents[value - 1]
        if extent is None or np.count_nonzero(labels[extent] == value) < MIN_BONE_PIXELS:
            out.missing.append(name)
            continue
        rows, cols = extent
        bounds = (cols.start, cols.stop, rows.start, rows.stop)
        out.patches.append(
            _patch(pixels, labels, value, bounds, name, size, margin, pixel_spacing_mm, mm_per_pixel, context)
        )
    return out


def _patch(pixels, labels, value, bounds, name, size, margin, spacing, mm_per_pixel, context) -> BonePatch:
    x0, x1, y0, y1 = bounds
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    if spacing:
        side = max(side, size * mm_per_pixel / spacing)
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, side / 2
    box = (int(round(cx - half)), int(round(cy - half)), int(round(cx + half)), int(round(cy + half)))
    window = _window(pixels.astype(np.float32, copy=False), box)
    kept = (_window(labels, box) == value).astype(np.uint8)
    if context > 0:
        kept = cv2.distanceTransform(1 - kept, cv2.DIST_L2, 3) <= context * (box[2] - box[0])
    window = np.where(kept > 0, window, 0).astype(np.float32)
    patch = cv2.resize(
        window, (size, size), interpolation=cv2.INTER_AREA if window.shape[0] > size else cv2.INTER_LINEAR
    )
    scale = (box[2] - box[0]) / size
    return BonePatch(name, patch.astype(np.float32), box, scale * spacing if spacing else None)


def _window(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """image[y0:y1, x0:x1] with zeros where the box leaves the image."""
    x0, y0, x1, y1 = box
    h, w = image.shape
    out = np.zeros((y1 - y0, x1 - x0), image.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out
