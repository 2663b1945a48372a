"""A radiograph viewer: the window the annotation and screening workspaces will grow from."""
from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
from PySide6 import QtWidgets

from osteo_engine import RadiographError, load_radiograph

RESEARCH_NOTICE = "Research tool — not for clinical diagnosis."


class RadiographViewer(QtWidgets.QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("Osteo workstation")
        self.resize(1280, 800)
        pg.setConfigOptions(imageAxisOrder="row-major")
        self.view = pg.ImageView()
        self.view.ui.roiBtn.hide()
        self.view.ui.menuBtn.hide()
        self.setCentralWidget(self.view)
        self.statusBar().showMessage(RESEARCH_NOTICE)
        self.radiograph = None
        open_action = self.menuBar().addMenu("&File").addAction("&Open radiograph…")
        open_action.setShortcut("Ctrl+O")
        open_action.triggered.connect(self._ask_and_open)

    def open_image(self, path: str | Path) -> bool:
        """Show the radiograph; an unusable file shows its error and keeps the previous image."""
        try:
            radiograph = load_radiograph(path)
        except RadiographError as exc:
            self.statusBar().showMessage(f"{exc}  ·  {RESEARCH_NOTICE}")
            return False
        self.radiograph = radiograph
        centre, width = radiograph.window
        self.view.setImage(radiograph.pixels, autoRange=True, autoLevels=False,
                           levels=(centre - width / 2, centre + width / 2))
        spacing = radiograph.pixel_spacing_mm
        detail = f"{spacing[0]:g} mm/pixel" if spacing else "pixel spacing unknown"
        self.setWindowTitle(f"Osteo workstation — {Path(path).name}")
        self.statusBar().showMessage(
            f"{radiograph.width}×{radiograph.height}, {radiograph.bits_stored} bit, {detail}  ·  {RESEARCH_NOTICE}")
        return True

    def display_levels(self) -> tuple[float, float]:
        return tuple(float(v) for v in self.view.getImageItem().levels)

    def _ask_and_open(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open radiograph", "", "Radiographs (*.dcm *.dicom *.png *.jpg *.jpeg *.tif *.tiff);;All files (*)")
        if path:
            self.open_image(path)


def grab(window: QtWidgets.QWidget, out: str | Path) -> bool:
    window.show()
    QtWidgets.QApplication.processEvents()
    return window.grab().save(str(out))


__all__ = ["RadiographViewer", "grab"]
