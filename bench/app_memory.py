"""Peak memory (RSS) of the app with a 2515×3588 16-bit radiograph screened, SAM and both models loaded
(goal ≤ 3 GB), offscreen.

A phantom of the paper's size is written as DICOM, opened in the Annotate workspace (which loads the SAM
model and embeds the image) and screened in the Screen workspace (the segmenter and the demo classifier),
with the module and uncertainty overlays shown. The figure is the process's peak resident set size.

Run: QT_QPA_PLATFORM=offscreen .venv/bin/python bench/app_memory.py
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux


def main() -> None:
    from PySide6 import QtCore, QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    from app.settings import AppSettings
    from app.window import MainWindow
    from osteo_engine.phantom.dicom import write_phantom_dicom

    scratch = Path(tempfile.mkdtemp())
    image = write_phantom_dicom(scratch / "paper_size.dcm", size=(2515, 3588))
    print(f"before the window: {_peak_gb():.2f} GB")
    window = MainWindow(AppSettings(), QtCore.QSettings(str(scratch / "s.ini"), QtCore.QSettings.IniFormat))
    window.show()
    embedded = []
    window.annotate.sam.embedded.connect(embedded.append)
    window.open_path(image)  # Annotate: the image, and SAM loaded and embedding it in its worker
    deadline = time.time() + 600
    while not embedded and time.time() < deadline:
        app.processEvents()
        time.sleep(0.05)
    print(f"annotating, SAM loaded: {_peak_gb():.2f} GB")
    window.show_workspace("screen")
    window.screen.open_path(image)
    window.screen.wait_idle(600)
    for name in ("module", "uncertainty"):
        window.screen.panel.shown[name].setChecked(True)
    app.processEvents()
    answer = window.screen.current.result.decision if window.screen.current else "none"
    print(f"screened ({answer}), overlays on: peak {_peak_gb():.2f} GB RSS (goal ≤ 3 GB)")
    window.close()


if __name__ == "__main__":
    main()
