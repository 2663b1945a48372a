"""Square crops around a region, so that SAM's small encoder input sees bones at a useful resolution."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Crop:
    """A square window around one bone, so that the 256-pixel encoder sees it at a useful resolution."""

    x0: int
    y0: int
    x1: int
    y1: int

    @staticmethod
    def around(box: np.ndarray, shape: tuple[int, int], factor: float = 1.5, minimum: int = 256) -> Crop:
        h, w = shape
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = int(min(max((box[2] - box[0]) * factor, (box[3] - box[1]) * factor, minimum), h, w))
        x0 = int(np.clip(round(cx - side / 2), 0, w - side))
        y0 = int(np.clip(round(cy - side / 2), 0, h - side))
        return Crop(x0, y0, x0 + side, y0 + side)

    def pixels(self, image: np.ndarray) -> np.ndarray:
        window = image[self.y0 : self.y1, self.x0 : self.x1]
        lo, hi = np.percentile(window, [0.5, 99.5])
        return np.clip((window - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)

    def shift(self, xy: np.ndarray) -> np.ndarray:
        return np.asarray(xy, float).reshape(-1, 2) - np.array([self.x0, self.y0])
