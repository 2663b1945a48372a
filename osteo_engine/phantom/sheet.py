"""Contact sheets of phantom radiographs, optionally beside real ones for a visual comparison."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..cohort import read_manifest
from ..io import load_radiograph
from ..storage import atomic_write_bytes

CELL = (256, 320)  # width, height


def _cell(pixels: np.ndarray, window: tuple[float, float], caption: str) -> np.ndarray:
    centre, width = window
    shown = np.clip((pixels - (centre - width / 2)) / max(width, 1e-6), 0, 1)
    h, w = shown.shape
    scale = min(CELL[0] / w, (CELL[1] - 18) / h)
    small = cv2.resize(shown, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    cell = np.zeros((CELL[1], CELL[0]), np.uint8)
    y0, x0 = (CELL[1] - 18 - small.shape[0]) // 2, (CELL[0] - small.shape[1]) // 2
    cell[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = np.round(small * 255).astype(np.uint8)
    cv2.putText(cell, caption, (4, CELL[1] - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 200, 1, cv2.LINE_AA)
    return cell


def _grid(cells: list[np.ndarray], columns: int) -> np.ndarray:
    rows = []
    for i in range(0, len(cells), columns):
        row = cells[i:i + columns]
        row += [np.zeros_like(cells[0])] * (columns - len(row))
        rows.append(np.hstack(row))
    return np.vstack(rows)


def write_contact_sheet(cohort_dir: str | Path, out: str | Path, count: int = 16, real: list[str] = ()) -> Path:
    cohort = read_manifest(Path(cohort_dir) / "manifest.csv", check_files=True)
    cells = []
    for row in cohort.rows[:count]:
        image = load_radiograph(row.image)
        cells.append(_cell(image.pixels, image.window, f"phantom {row.image.stem}  T={row.t_score:+.1f}"))
    sheet = _grid(cells, 4)
    if real:
        real_cells = []
        for path in real:
            image = load_radiograph(path)
            real_cells.append(_cell(image.pixels, image.window, f"real {Path(path).name}"))
        sheet = np.vstack([sheet, np.full((8, sheet.shape[1]), 255, np.uint8), _grid(real_cells, 4)])
    ok, buf = cv2.imencode(".png", sheet)
    out = Path(out)
    atomic_write_bytes(out, buf.tobytes())
    return out
