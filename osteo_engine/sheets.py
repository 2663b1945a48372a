"""Contact sheets: grids of small views of radiographs, optionally with bone overlays."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .anatomy import BONE_COLOURS, BONES
from .storage import atomic_write_bytes

CELL = (256, 320)  # width, height
CAPTION = 18


def windowed(pixels: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    centre, width = window
    return np.clip((pixels - (centre - width / 2)) / max(width, 1e-6), 0, 1)


def overlay(grey: np.ndarray, labels: np.ndarray | None, opacity: float = 0.45) -> np.ndarray:
    """RGB uint8 view of a [0, 1] image with each bone in its colour."""
    rgb = np.repeat(np.round(grey * 255).astype(np.uint8)[..., None], 3, axis=2)
    if labels is not None:
        for value, name in BONES.items():
            inside = labels == value
            rgb[inside] = ((1 - opacity) * rgb[inside] + opacity * np.array(BONE_COLOURS[name])).astype(np.uint8)
    return rgb


def cell(image: np.ndarray, caption: str) -> np.ndarray:
    """Fit an RGB or grey image into one captioned cell (RGB uint8)."""
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.dtype != np.uint8:
        image = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    h, w = image.shape[:2]
    scale = min(CELL[0] / w, (CELL[1] - CAPTION) / h)
    small = cv2.resize(image, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    out = np.zeros((CELL[1], CELL[0], 3), np.uint8)
    y0, x0 = (CELL[1] - CAPTION - small.shape[0]) // 2, (CELL[0] - small.shape[1]) // 2
    out[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    cv2.putText(out, caption[:40], (4, CELL[1] - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (220, 220, 220), 1, cv2.LINE_AA)
    return out


def grid(cells: list[np.ndarray], columns: int) -> np.ndarray:
    rows = []
    for i in range(0, len(cells), columns):
        row = cells[i : i + columns]
        row += [np.zeros_like(cells[0])] * (columns - len(row))
        rows.append(np.hstack(row))
    return np.vstack(rows)


def write_png(image: np.ndarray, out: str | Path) -> Path:
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ok, buf = cv2.imencode(".png", bgr)
    if not ok:
        raise OSError("PNG encoding failed")
    out = Path(out)
    atomic_write_bytes(out, buf.tobytes())
    return out


def project_overlay_sheet(project, out: str | Path, rater: str | None = None, columns: int = 8) -> Path:
    """One overlay cell per image of an annotation project (the first rater's map unless `rater` is given)."""
    from .io import load_radiograph

    annotations, _ = project.load_all()
    cells = []
    for entry in project.images:
        raters = annotations[entry.image_id].raters
        chosen = next((r for r in raters if rater is None or r.rater == rater), None)
        image = load_radiograph(project.image_path(entry.image_id))
        cells.append(
            cell(
                overlay(windowed(image.pixels, image.window), chosen.labels if chosen else None),
                entry.image_id + ("" if chosen else " (none)"),
            )
        )
    if not cells:
        raise ValueError("the project has no images")
    return write_png(grid(cells, columns), out)
