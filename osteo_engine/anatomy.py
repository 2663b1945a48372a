"""Bone identities shared by every stage: label values, names and display colours."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

BACKGROUND = 0
BONES: dict[int, str] = {1: "ulna", 2: "radius", 3: "M1", 4: "M2", 5: "M3", 6: "M4", 7: "M5"}
BONE_IDS: dict[str, int] = {name: value for value, name in BONES.items()}
BONE_NAMES: tuple[str, ...] = tuple(BONES.values())
NUM_CLASSES = 8  # background + 7 bones

# Fixed RGB colours so that a bone looks the same in every view, export and report.
BONE_COLOURS: dict[str, tuple[int, int, int]] = {
    "ulna": (230, 159, 0),
    "radius": (86, 180, 233),
    "M1": (0, 158, 115),
    "M2": (240, 228, 66),
    "M3": (0, 114, 178),
    "M4": (213, 94, 0),
    "M5": (204, 121, 167),
}


def bone_id(name: str) -> int:
    try:
        return BONE_IDS[name]
    except KeyError:
        raise ValueError(f"unknown bone {name!r}; expected one of {', '.join(BONE_NAMES)}") from None


def bone_extents(labels: np.ndarray) -> list[tuple[slice, slice] | None]:
    """(rows, columns) slices of each bone's bounding box in a label map (H, W) of integers (BONES' values 1–7,
    in order), None for a bone it lacks: one pass over the image, after which each bone's work can look at its
    box alone rather than at the whole radiograph."""
    return ndimage.find_objects(labels, max_label=len(BONES))
