"""The annotation canvas: a radiograph with its masks and prompts, and explicit mouse modes (after ISAT).

Mouse, in every mode: wheel zooms, middle drag pans, Shift + left drag sets window (horizontal) and level
(vertical). Prompt mode: left click adds a positive point, right click a negative one, left drag draws a box.
Brush and eraser modes: left drag paints. The canvas only reports gestures in image pixels (x, y); the
workspace turns them into edits.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from osteo_engine.anatomy import BONES

MODES = ("prompt", "brush", "erase")
MIN_BOX_PIXELS = 4  # a drag shorter than this (in screen pixels) counts as a click


def label_lut(colours: dict[str, tuple[int, int, int]], only: int | None = None) -> np.ndarray:
    """RGBA lookup table for a label map (or for a 0/1 mask drawn in bone `only`'s colour)."""
    lut = np.zeros((256, 4), np.uint8)
    for value, name in BONES.items():
        if only is None:
            lut[value] = (*colours[name], 255)
        elif value == only:
            lut[1] = (*colours[name], 255)
    return lut


class _ModeViewBox(pg.ViewBox):
    def __init__(self, canvas: AnnotationCanvas):
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self.canvas = canvas
        self._levels_at_press: tuple[float, float] | None = None

    def mouseClickEvent(self, ev):
        c = self.canvas
        x, y = self._image_xy(ev.scenePos())
        if c.mode == "prompt" and ev.button() in (QtCore.Qt.LeftButton, QtCore.Qt.RightButton):
            ev.accept()
            c.point_added.emit(x, y, ev.button() == QtCore.Qt.LeftButton)
        elif c.mode in ("brush", "erase") and ev.button() == QtCore.Qt.LeftButton:
            ev.accept()
            c.stroke_started.emit(c.mode == "erase")
            c.stroke_painted.emit(x, y)
            c.stroke_ended.emit()
        else:
            super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis=None):
        c = self.canvas
        if ev.button() == QtCore.Qt.MiddleButton:
            self.translateBy(-(self.mapToView(ev.pos()) - self.mapToView(ev.lastPos())))
            ev.accept()
            return
        if ev.button() != QtCore.Qt.LeftButton:
            ev.ignore()
            return
        ev.accept()
        if ev.modifiers() & QtCore.Qt.ShiftModifier:
            self._window_level(ev)
        elif c.mode == "prompt":
            self._box(ev)
        else:
            if ev.isStart():
                c.stroke_started.emit(c.mode == "erase")
            c.stroke_painted.emit(*self._image_xy(ev.scenePos()))
            if ev.isFinish():
                c.stroke_ended.emit()

    def _box(self, ev) -> None:
        c = self.canvas
        x0, y0 = self._image_xy(ev.buttonDownScenePos())
        x1, y1 = self._image_xy(ev.scenePos())
        rect = QtCore.QRectF(QtCore.QPointF(min(x0, x1), min(y0, y1)), QtCore.QPointF(max(x0, x1), max(y0, y1)))
        c.rubber_band.setRect(rect)
        c.rubber_band.setVisible(not ev.isFinish())
        if ev.isFinish():
            moved = (ev.scenePos() - ev.buttonDownScenePos()).manhattanLength()
            if moved < MIN_BOX_PIXELS:
                c.point_added.emit(x1, y1, True)
            else:
                c.box_drawn.emit(rect.left(), rect.top(), rect.right(), rect.bottom())

    def _window_level(self, ev) -> None:
        c = self.canvas
        if ev.isStart() or self._levels_at_press is None:
            self._levels_at_press = c.levels()
        lo, hi = self._levels_at_press
        delta = ev.screenPos() - ev.buttonDownScreenPos()
        width = max((hi - lo) * float(np.exp(delta.x() / 200.0)), 1e-4)
        centre = (lo + hi) / 2 - delta.y() / 400.0
        c.set_levels(centre - width / 2, centre + width / 2)
        c.levels_changed.emit(*c.levels())
        if ev.isFinish():
            self._levels_at_press = None

    def _image_xy(self, scene_pos) -> tuple[float, float]:
        p = self.mapSceneToView(scene_pos)
        return float(p.x()), float(p.y())


class AnnotationCanvas(pg.GraphicsView):
    point_added = QtCore.Signal(float, float, bool)  # x, y, positive
    box_drawn = QtCore.Signal(float, float, float, float)
    stroke_started = QtCore.Signal(bool)  # erase
    stroke_painted = QtCore.Signal(float, float)
    stroke_ended = QtCore.Signal()
    levels_changed = QtCore.Signal(float, float)

    def __init__(self, parent=None):
        super().__init__(parent, background="k")
        self.mode = "prompt"
        self.view = _ModeViewBox(self)
        self.setCentralItem(self.view)
        self.image_item = pg.ImageItem(axisOrder="row-major", autoDownsample=True)
        self.labels_item = pg.ImageItem(axisOrder="row-major")
        self.working_item = pg.ImageItem(axisOrder="row-major")
        self.points_item = pg.ScatterPlotItem(size=11, pen=pg.mkPen("k", width=1.5))
        self.rubber_band = QtWidgets.QGraphicsRectItem()
        self.rubber_band.setPen(pg.mkPen((255, 255, 0), width=2, cosmetic=True))
        self.rubber_band.setVisible(False)
        self.box_item = QtWidgets.QGraphicsRectItem()
        self.box_item.setPen(pg.mkPen((0, 255, 0), width=2, cosmetic=True, style=QtCore.Qt.DashLine))
        self.box_item.setVisible(False)
        for item in (
            self.image_item,
            self.labels_item,
            self.working_item,
            self.box_item,
            self.rubber_band,
            self.points_item,
        ):
            self.view.addItem(item)
        self.labels_item.setOpacity(0.4)
        self.working_item.setOpacity(0.6)
        self._shape: tuple[int, int] | None = None

    # ------------------------------------------------------------ content
    def set_image(self, pixels: np.ndarray, levels: tuple[float, float]) -> None:
        self.image_item.setImage(pixels, autoLevels=False, levels=levels)
        if self._shape != pixels.shape:
            self._shape = pixels.shape
            self.view.autoRange(padding=0.02)

    def set_levels(self, lo: float, hi: float) -> None:
        self.image_item.setLevels((lo, hi))

    def levels(self) -> tuple[float, float]:
        lo, hi = self.image_item.levels
        return float(lo), float(hi)

    def set_labels(self, labels: np.ndarray, lut: np.ndarray) -> None:
        self.labels_item.setImage(labels, lut=lut, levels=(0, 255), autoLevels=False)

    def set_working(self, mask: np.ndarray, lut: np.ndarray) -> None:
        self.working_item.setImage(mask.view(np.uint8), lut=lut, levels=(0, 255), autoLevels=False)

    def set_prompts(self, points, box) -> None:
        spots = [
            {
                "pos": (x, y),
                "brush": pg.mkBrush((40, 220, 40) if positive else (230, 40, 40)),
                "symbol": "o" if positive else "x",
            }
            for x, y, positive in points
        ]
        self.points_item.setData(spots)
        self.box_item.setVisible(box is not None)
        if box is not None:
            self.box_item.setRect(QtCore.QRectF(QtCore.QPointF(box[0], box[1]), QtCore.QPointF(box[2], box[3])))

    def set_opacity(self, value: float) -> None:
        self.labels_item.setOpacity(value)
        self.working_item.setOpacity(min(1.0, value + 0.2))

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown canvas mode {mode!r}")
        self.mode = mode
        cursor = QtCore.Qt.CrossCursor if mode == "prompt" else QtCore.Qt.PointingHandCursor
        self.viewport().setCursor(QtGui.QCursor(cursor))

    # ------------------------------------------------------------ geometry (for tests and tools)
    def widget_point(self, x: float, y: float) -> QtCore.QPoint:
        """Where image pixel (x, y) lies in the viewport's coordinates."""
        scene = self.view.mapViewToScene(QtCore.QPointF(x, y))
        return self.mapFromScene(scene)

    def pixels_per_screen_pixel(self) -> float:
        return float(self.view.viewPixelSize()[0])
