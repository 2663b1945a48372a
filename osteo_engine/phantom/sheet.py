"""Contact sheets of phantom radiographs, optionally beside real ones for a visual comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..cohort import read_manifest
from ..io import load_radiograph
from ..sheets import cell, grid, windowed, write_png


def write_contact_sheet(cohort_dir: str | Path, out: str | Path, count: int = 16, real: list[str] = ()) -> Path:
    cohort = read_manifest(Path(cohort_dir) / "manifest.csv", check_files=True)
    cells = []
    for row in cohort.rows[:count]:
        image = load_radiograph(row.image)
        cells.append(cell(windowed(image.pixels, image.window), f"phantom {row.image.stem}  T={row.t_score:+.1f}"))
    sheet = grid(cells, 4)
    if real:
        real_cells = []
        for path in real:
            image = load_radiograph(path)
            real_cells.append(cell(windowed(image.pixels, image.window), f"real {Path(path).name}"))
        sheet = np.vstack([sheet, np.full((8, sheet.shape[1], 3), 255, np.uint8), grid(real_cells, 4)])
    return write_png(sheet, out)
