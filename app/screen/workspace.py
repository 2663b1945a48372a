"""The Screen workspace: one radiograph, or a folder as a worklist, screened in the background and shown with
its overlays and the reasons for its answer. The science is `osteo_engine.screening.screen_image`, the same
call as `osteo screen`, so the numbers on screen are the command's."""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from pathlib import Path

# pydicom, torchvision (through osteo_engine.ssl.probe) and the engine are imported here, as the window is made,
# not by the first screening's worker: an import holds the interpreter, and torchvision's (through
# torch._dynamo) held the UI thread for 280 ms, pydicom's for 66 ms (bench/screen_ui_stalls.py). The app takes
# about 1.5 s longer to start.
import numpy as np
import pydicom  # noqa: F401
from PySide6 import QtCore, QtWidgets

from osteo_engine import OsteoError
from osteo_engine.anatomy import BONES
from osteo_engine.io import load_radiograph, radiograph_files
from osteo_engine.population import Demographics
from osteo_engine.radiogrammetry import profile_along
from osteo_engine.screening import screen_image
from osteo_engine.screening_model import load_screening_model
from osteo_engine.ssl import probe as _probe  # noqa: F401

from ..annotate.canvas import label_lut
from ..jobs import BackgroundJob, start_job
from .canvas import ScreenCanvas
from .facts import header_facts
from .panel import UNCERTAINTY_KINDS, ResultPanel
from .report import report_lines, write_json, write_pdf
from .worklist import Worklist

CACHED_IMAGES = 3  # screened images kept for display; a worklist row screened earlier is screened again


class ScreenWorkspace(QtWidgets.QWidget):
    message = QtCore.Signal(str)
    shown = QtCore.Signal(str)  # the file name whose answer is now on screen

    def __init__(self, colours: dict, parent=None, model_folder=None, segmenter=None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        self._colours, self._model_args = colours, (model_folder, segmenter)
        self._model, self._model_lock = None, threading.Lock()
        self.canvas = ScreenCanvas(self)
        self.panel = ResultPanel(self)
        self.worklist = Worklist(self)
        self.worklist.setVisible(False)
        splitter = QtWidgets.QSplitter(QtCore.Qt.Horizontal)
        splitter.addWidget(self.canvas)
        splitter.addWidget(self.panel)
        splitter.setSizes([820, 520])
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(splitter, 4)
        layout.addWidget(self.worklist, 1)
        self.path: Path | None = None
        self.current = None  # Screened on screen
        self.facts: dict[str, str] = {}  # of the file on screen
        self.person = Demographics()
        self.jobs: list[BackgroundJob] = []
        self._cache: OrderedDict[Path, tuple] = OrderedDict()
        self._kind, self._module = "total", 0
        self.annotation_source = None  # callable(path) -> label map or None (the Annotate workspace's project)
        self._connect()

    def _connect(self) -> None:
        p = self.panel
        p.overlay_shown.connect(self.canvas.set_shown)
        p.overlay_opacity.connect(self.canvas.set_opacity)
        p.module_chosen.connect(self.show_module)
        p.uncertainty_chosen.connect(self.show_uncertainty)
        p.person_given.connect(self._rescreen_with)
        self.canvas.hovered.connect(self._hover)
        self.canvas.clicked.connect(self.show_profile_at)
        self.worklist.chosen.connect(self.open_image)
        for name in ("module", "uncertainty", "annotation"):
            self.canvas.set_shown(name, False)

    # ------------------------------------------------------------ opening
    def open_path(self, path: str | Path) -> bool:
        path = Path(path)
        return self.open_folder(path) if path.is_dir() else self.open_image(path)

    def open_image(self, path: str | Path) -> bool:
        path = Path(path)
        if not path.is_file():
            self.message.emit(f"Cannot open {path.name}: no such file.")
            return False
        self.path = path
        if path in self._cache:
            self._display(path, *self._cache[path])
            return True
        self.panel.show_waiting(f"Screening {path.name}…")
        person = self.person

        def work(report, cancelled):
            return path, *self._screen(path, person)

        self._start(f"screening {path.name}", work, done=self._finished)
        return True

    def open_folder(self, folder: str | Path) -> bool:
        files = radiograph_files(Path(folder))
        if not files:
            self.message.emit(f"{Path(folder).name} holds no radiographs.")
            return False
        self.worklist.fill(files)
        self.worklist.setVisible(True)

        def work(report, cancelled):
            for path in files:
                if cancelled():
                    return None
                try:
                    report((path, self._screen(path, Demographics())[0].result.to_json()))
                except OsteoError as exc:
                    report((path, {"error": str(exc)}))
            return len(files)

        self._start("worklist", work, lambda item: self.worklist.set_answer(*item), self._worklist_done)
        self.message.emit(f"Screening {len(files)} radiographs in the background…")
        return True

    def _screen(self, path: Path, person: Demographics):
        """(Screened, the file's facts); runs on a worker thread."""
        image = load_radiograph(path)
        spacing = image.pixel_spacing_mm[0] if image.pixel_spacing_mm else None
        given = image.demographics.with_given(person.age_years, person.sex)
        return screen_image(image.pixels, self.model(), spacing, given), header_facts(path, image)

    @property
    def model_sources(self) -> tuple:
        """(screening model folder, segmenter checkpoint) in use; None stands for the bundled one."""
        return self._model_args

    def use_models(self, model_folder=None, segmenter=None) -> None:
        """Screen with these (None: the bundled ones); the image on screen is screened again with them."""
        with self._model_lock:
            self._model_args, self._model = (model_folder, segmenter), None
        self._cache.clear()
        if self.path is not None:
            self.open_image(self.path)

    def model(self):
        """The screening model, loaded once (on a worker thread)."""
        with self._model_lock:
            if self._model is None:
                self._model = load_screening_model(*self._model_args)
                gc.freeze()  # the models live as long as the app; see window.py
            return self._model

    def _finished(self, outcome) -> None:
        """Keep an answer under the file it is for, and show it if that file is still the one asked for (the user
        may have opened another meanwhile)."""
        path, screened, facts = outcome
        self._cache[path] = (screened, facts)
        while len(self._cache) > CACHED_IMAGES:
            self._cache.popitem(last=False)
        if path == self.path:
            self._display(path, screened, facts)

    def _worklist_done(self, count) -> None:
        if count is not None:
            self.message.emit(f"Screened {count} radiographs; referrals are listed first.")

    def _rescreen_with(self, age, sex) -> None:
        try:
            self.person = Demographics().with_given(age, sex)
        except OsteoError as exc:
            self.message.emit(str(exc))
            return
        self._cache.clear()
        if self.path is not None:
            self.open_image(self.path)

    # ------------------------------------------------------------ display
    def _display(self, path: Path, screened, facts: dict) -> None:
        self.current, self.facts = screened, facts
        seg = screened.segmentation
        self.canvas.set_image(screened.pixels)
        self.canvas.set_labels("bones", seg.labels, label_lut(self._colours))
        annotation = self.annotation_source(path) if self.annotation_source else None
        self.canvas.set_labels("annotation", annotation, label_lut(self._colours))
        self.panel.show_result(screened.result.to_json(), [m.weight for m in seg.modules])
        self.panel.enable_kinds({*seg.uncertainty_maps(), "variance"})
        self.panel.show_facts(facts)
        self.canvas.set_measurements(screened.measurements)
        self.show_module(min(self._module, max(0, len(seg.modules) - 1)))
        self.show_uncertainty(self._kind)
        self.shown.emit(path.name)

    def export_pdf(self, path: str | Path, include_patient: bool = False) -> Path | None:
        """The report of the image on screen, with the overlays as shown; None when nothing is screened."""
        if self.current is None:
            return None
        lines = report_lines(self.current.result.to_json(), self.facts, include_patient)
        return write_pdf(path, lines, self.canvas.grab(), self.panel.chart.grab())

    def export_json(self, path: str | Path) -> Path | None:
        """The answer on screen as `osteo screen --json` prints it; None when nothing is screened."""
        if self.current is None or self.path is None:
            return None
        return write_json(path, self.current.result.to_json(), self.path.name)

    def show_module(self, k: int) -> None:
        self._module = k
        modules = self.current.segmentation.modules if self.current else []
        labels = modules[k].labels if 0 <= k < len(modules) else None
        self.canvas.set_labels("module", labels, label_lut(self._colours))

    def show_uncertainty(self, kind: str) -> None:
        self._kind = kind
        if self.current is None:
            return
        maps = {**self.current.segmentation.uncertainty_maps(), "variance": self.current.segmentation.sample_variance}
        self.canvas.set_heat(maps.get(kind), UNCERTAINTY_KINDS[kind])

    def show_profile_at(self, x: int, y: int) -> bool:
        """Plot the measured profile of the metacarpal at (x, y) nearest the point; False when there is none."""
        if self.current is None:
            return False
        seg = self.current.segmentation
        measured = self.current.measurements.get(BONES.get(int(seg.labels[y, x]), ""))
        if measured is None or not measured.edges:
            return False
        middles = np.array([np.mean(profile, axis=0) for profile in measured.edges])
        nearest = measured.edges[int(np.argmin(np.hypot(*(middles - (x, y)).T)))]
        pixels = 1.0 - self.current.pixels if seg.inverted else self.current.pixels
        self.panel.show_profile(BONES[int(seg.labels[y, x])], *profile_along(pixels, nearest))
        return True

    def _hover(self, x: int, y: int) -> None:
        if self.current is None:
            return
        seg, bones = self.current.segmentation, self.current.result.bones
        value = int(seg.labels[y, x])
        name = BONES.get(value)
        parts = [f"({x}, {y})", name or "background"]
        if name and bones[name]["probability"] is not None:
            parts.append(f"probability {bones[name]['probability']:.2f}")
        parts.append(f"entropy {seg.entropy[y, x]:.2f}, MI {seg.mutual_information[y, x]:.2f} nats")
        if seg.error is not None:
            parts.append(f"P(wrong) {seg.error[y, x]:.2f}")
        self.panel.hover.setText("  ·  ".join(parts))

    # ------------------------------------------------------------ jobs and drops
    def _start(self, name, work, progress=None, done=None) -> BackgroundJob:
        return start_job(self.jobs, name, work, progress, done, lambda text: self._failed(name, text))

    def _failed(self, name: str, text: str) -> None:
        self.panel.show_waiting("No answer")
        self.panel.reasons.setText(text)
        self.message.emit(f"{name}: {text}")

    def busy(self) -> bool:
        return any(job.running() for job in self.jobs)

    def wait_idle(self, timeout_s: float = 120.0) -> bool:
        """Process events until every job has finished (for screenshots and tests)."""
        deadline = QtCore.QDeadlineTimer(int(timeout_s * 1000))
        while (self.busy() or self.jobs) and not deadline.hasExpired():
            QtWidgets.QApplication.processEvents(QtCore.QEventLoop.AllEvents, 50)
        return not self.busy()

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        urls = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            self.open_path(urls[0])

    def shutdown(self) -> None:
        for job in self.jobs:
            job.cancel()
