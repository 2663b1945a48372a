"""The Screen workspace's image: the radiograph with its overlays, a colour bar, and the pixel under the cursor.

Overlays, each shown or hidden with its own opacity: the predicted bones (the weighted mean), one module's
own label map, one uncertainty map as a heat map (with the colour bar), and an annotation project's masks.
Radiogrammetry draws each measured bone's mid-shaft region and its measured edges (outer red, inner green).
Wheel zooms, left drag pans.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui

OVERLAYS = ("bones", "module", "uncertainty", "annotation")
DEFAULT_OPACITY = {"bones": 0.35, "module": 0.45, "uncertainty": 0.6, "annotation": 0.4}
HEAT_MAP = "inferno"


class ScreenCanvas(pg.GraphicsLayoutWidget):
    hovered = QtCore.Signal(int, int)  # image pixel (x, y) under the cursor, inside the image
    clicked = QtCore.Signal(int, int)  # image pixel (x, y) clicked, inside the image

    def __init__(self, parent=None):
        super().__init__(parent)
        self.view = self.addViewBox(row=0, col=0, lockAspect=True, invertY=True, enableMenu=False)
        self.image_item = pg.ImageItem(axisOrder="row-major", autoDownsample=True)
        self.view.addItem(self.image_item)
        self.overlays = {name: pg.ImageItem(axisOrder="row-major") for name in OVERLAYS}
        for name, item in self.overlays.items():
            self.view.addItem(item)
            item.setOpacity(DEFAULT_OPACITY[name])
        # added, not blended: where the uncertainty is zero the heat map is black and leaves the image as it is
        self.overlays["uncertainty"].setCompositionMode(QtGui.QPainter.CompositionMode.CompositionMode_Plus)
        self.colour_bar = pg.ColorBarItem(values=(0, 1), colorMap=HEAT_MAP, interactive=False, colorMapMenu=False)
        self.colour_bar.setImageItem(self.overlays["uncertainty"])
        self.addItem(self.colour_bar, row=0, col=1)
        # radiogrammetry: outer edges red, inner green; one brush per item, since a brush per point costs
        # pyqtgraph about 0.1 ms each (800 points stalled the UI thread 110 ms)
        self.edges = {
            "outer": pg.ScatterPlotItem(size=4, pen=None, brush="#e53935"),
            "inner": pg.ScatterPlotItem(size=4, pen=None, brush="#43a047"),
        }
        self.regions = pg.PlotCurveItem(pen=pg.mkPen("#00b8d4", width=2), connect="pairs")
        self.view.addItem(self.regions)
        for item in self.edges.values():
            self.view.addItem(item)
        self._shape: tuple[int, int] | None = None
        self.scene().sigMouseMoved.connect(self._moved)
        self.scene().sigMouseClicked.connect(self._clicked)

    def set_image(self, pixels: np.ndarray, levels: tuple[float, float] = (0.0, 1.0)) -> None:
        self.image_item.setImage(pixels, autoLevels=False, levels=levels)
        for item in self.overlays.values():
            item.clear()
        if self._shape != pixels.shape:
            self._shape = pixels.shape
            self.view.autoRange(padding=0.02)

    def set_labels(self, name: str, labels: np.ndarray | None, lut: np.ndarray) -> None:
        """A label map (uint8) drawn through `lut` (256×4 RGBA) as overlay `name`; None clears it."""
        item = self.overlays[name]
        if labels is None:
            item.clear()
        else:
            item.setImage(labels, lut=lut, levels=(0, 255), autoLevels=False)

    def set_heat(self, values: np.ndarray | None, label: str) -> None:
        """A float map as the heat map, the colour bar spanning 0 to its 99.9th percentile."""
        item = self.overlays["uncertainty"]
        if values is None:
            item.clear()
            return
        top = float(np.nanpercentile(values, 99.9)) if values.size else 1.0
        top = top if np.isfinite(top) and top > 0 else 1.0
        item.setImage(values, autoLevels=False)
        self.colour_bar.setLevels((0.0, top))
        self.colour_bar.axis.enableAutoSIPrefix(False)
        self.colour_bar.axis.setLabel(label)

    def set_measurements(self, measurements: dict) -> None:
        """Each measured bone's mid-shaft region and, on every 4th profile, its four edges."""
        profiles, segments = [np.zeros((0, 4, 2))], []
        for m in measurements.values():
            if m.edges is None:
                continue
            profiles.append(np.asarray(m.edges[::4], dtype=float).reshape(-1, 4, 2))  # outer, inner, inner, outer
            corners = m.region + m.region[:1]
            for a, b in zip(corners, corners[1:]):
                segments += [a, b]
        edges = np.concatenate(profiles)
        for name, columns in (("outer", [0, 3]), ("inner", [1, 2])):
            xy = edges[:, columns].reshape(-1, 2)
            self.edges[name].setData(x=xy[:, 0], y=xy[:, 1])
        lines = np.array(segments) if segments else np.zeros((0, 2))
        self.regions.setData(x=lines[:, 0], y=lines[:, 1])

    def set_shown(self, name: str, shown: bool) -> None:
        if name == "radiogrammetry":
            for item in self.edges.values():
                item.setVisible(shown)
            self.regions.setVisible(shown)
            return
        self.overlays[name].setVisible(shown)

    def set_opacity(self, name: str, value: float) -> None:
        self.overlays[name].setOpacity(value)

    def is_shown(self, name: str) -> bool:
        return self.overlays[name].isVisible() and self.overlays[name].image is not None

    def _clicked(self, event) -> None:
        if self._shape is None or event.button() != QtCore.Qt.LeftButton:
            return
        point = self.view.mapSceneToView(event.scenePos())
        x, y = int(point.x()), int(point.y())
        if 0 <= y < self._shape[0] and 0 <= x < self._shape[1]:
            self.clicked.emit(x, y)

    def _moved(self, scene_pos) -> None:
        if self._shape is None or not self.view.sceneBoundingRect().contains(scene_pos):
            return
        point = self.view.mapSceneToView(scene_pos)
        x, y = int(point.x()), int(point.y())
        if 0 <= y < self._shape[0] and 0 <= x < self._shape[1]:
            self.hovered.emit(x, y)
