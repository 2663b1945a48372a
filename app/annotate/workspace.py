"""The Annotate workspace: file list, canvas and tool panel around one `ImageDocument` per open image.

Gestures on the canvas become document edits; prompts go to the SAM worker and its answers come back as
edits; every change to the accepted label map is saved through the annotation store at once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from osteo_engine import OsteoError, load_radiograph
from osteo_engine.anatomy import BONE_NAMES, BONES
from osteo_engine.annotations import AnnotationProject, RaterAnnotation
from osteo_engine.click_prompts import prior_crops
from osteo_engine.sam.checkpoints import load_sam
from osteo_engine.sam.predictor import BonePrompter
from osteo_engine.segmentation.predict import load_segmenter, segment

from ..document import ImageDocument, Prompts
from ..jobs import BackgroundJob, start_job
from ..settings import AppSettings
from .canvas import AnnotationCanvas, label_lut
from .file_list import FileList
from .library import bones_done, project_for_folder, scan_row
from .panel import ToolPanel
from .ranking import rank_images
from .sam_worker import PromptRequest, SamWorker


def default_prompter_loader(settings: AppSettings) -> Callable[[], BonePrompter]:
    kind, checkpoint = settings.sam_kind, settings.sam_checkpoint or None
    # every bone's crop of the image on screen, and the next image, stay embedded
    return lambda: BonePrompter(load_sam(kind, checkpoint), cache_size=2 * len(BONE_NAMES) + 2)


def projects_home() -> Path:
    base = QtCore.QStandardPaths.writableLocation(QtCore.QStandardPaths.AppDataLocation) or str(Path.home())
    return Path(base) / "projects"


class AnnotateWorkspace(QtWidgets.QWidget):
    message = QtCore.Signal(str)  # for the status bar

    def __init__(self, settings: AppSettings, parent=None, prompter_loader: Callable[[], BonePrompter] | None = None):
        super().__init__(parent)
        self.settings = settings
        self.project: AnnotationProject | None = None
        self.image_id: str | None = None
        self.radiograph = None
        self.doc: ImageDocument | None = None
        self.brush_radius = 12
        self.prior: np.ndarray | None = None  # the segmenter's label map of the image on screen, for clicks
        self._segmenter = None
        self.jobs: list[BackgroundJob] = []
        self.canvas = AnnotationCanvas(self)
        self.files = FileList(self)
        self.panel = ToolPanel(settings.colours, self)
        splitter = QtWidgets.QSplitter(self)
        for widget, stretch in ((self.files, 0), (self.canvas, 1), (self.panel, 0)):
            splitter.addWidget(widget)
            splitter.setStretchFactor(splitter.indexOf(widget), stretch)
        splitter.setSizes([260, 900, 220])
        QtWidgets.QVBoxLayout(self).addWidget(splitter)
        self._prompter_loader = prompter_loader or default_prompter_loader(settings)
        self.sam = SamWorker(self._prompter_loader)
        self.ranking_score: str | None = None  # the image score the last ranking used
        self._redraw_timer = QtCore.QTimer(self, singleShot=True, interval=15, timeout=self._redraw_working)
        self.actions: dict[str, QtGui.QAction] = {}
        self._connect()
        self._make_actions()

    # ------------------------------------------------------------ wiring
    def _connect(self) -> None:
        c, p = self.canvas, self.panel
        c.point_added.connect(self._on_point)
        c.box_drawn.connect(self._on_box)
        c.stroke_started.connect(lambda erase: self.doc and self.doc.begin_stroke(erase))
        c.stroke_painted.connect(self._on_paint)
        c.stroke_ended.connect(self._on_stroke_end)
        self.files.image_selected.connect(self.open_image)
        p.bone_chosen.connect(self.select_bone)
        p.mode_chosen.connect(self.canvas.set_mode)
        p.brush_size_changed.connect(lambda v: setattr(self, "brush_radius", v))
        p.opacity_changed.connect(self.canvas.set_opacity)
        p.window_preset_chosen.connect(self.apply_window_preset)
        p.buttons["accept"].clicked.connect(self.accept)
        p.buttons["clear"].clicked.connect(self.clear_prompts)
        p.buttons["propose"].clicked.connect(self.propose)
        p.buttons["rank"].clicked.connect(self.rank_by_uncertainty)
        p.buttons["next"].clicked.connect(lambda: self.step_image(1))
        p.buttons["previous"].clicked.connect(lambda: self.step_image(-1))
        self.sam.answered.connect(self._on_answer)
        self.sam.busy_changed.connect(p.show_sam_busy)
        self.sam.failed.connect(lambda text: self.message.emit(f"SAM: {text}"))
        self.canvas.set_opacity(self.settings.opacity)

    def _make_actions(self) -> None:
        def add(key, text, shortcuts, slot):
            action = QtGui.QAction(text, self)
            action.setShortcuts([QtGui.QKeySequence(s) for s in shortcuts])
            action.setShortcutContext(QtCore.Qt.WindowShortcut)
            action.triggered.connect(slot)
            self.addAction(action)
            self.actions[key] = action

        add("undo", "Undo", ["Ctrl+Z"], self.undo)
        add("redo", "Redo", ["Ctrl+Shift+Z", "Ctrl+Y"], self.redo)
        add("accept", "Accept bone", ["Return", "Enter"], self.accept)
        add("clear", "Clear prompts", ["Esc"], self.clear_prompts)
        add("next", "Next image", ["PgDown"], lambda: self.step_image(1))
        add("previous", "Previous image", ["PgUp"], lambda: self.step_image(-1))
        add("propose", "Propose from segmenter", ["Ctrl+P"], self.propose)
        add("rank", "Order by uncertainty", [], self.rank_by_uncertainty)
        for mode, key in (("prompt", "P"), ("brush", "B"), ("erase", "E")):
            add(mode, f"{mode.title()} tool", [key], lambda _=False, m=mode: self.set_mode(m))
        add("smaller", "Smaller brush", ["["], lambda: self.panel.brush_size.setValue(self.brush_radius - 2))
        add("larger", "Larger brush", ["]"], lambda: self.panel.brush_size.setValue(self.brush_radius + 2))
        for value in range(1, 8):
            add(f"bone{value}", f"Bone {value}", [str(value)], lambda _=False, v=value: self.select_bone(v))

    # ------------------------------------------------------------ projects and images
    def open_folder(self, folder: str | Path) -> bool:
        try:
            project = project_for_folder(folder, projects_home())
        except (OsteoError, OSError) as exc:
            self.message.emit(f"Cannot open {folder}: {exc}")
            return False
        return self.open_project(project)

    def open_project(self, project: AnnotationProject | str | Path) -> bool:
        try:
            project = project if isinstance(project, AnnotationProject) else AnnotationProject.open(project)
        except OsteoError as exc:
            self.message.emit(str(exc))
            return False
        self.project = project
        ids = [e.image_id for e in project.images]
        self.files.set_rows([scan_row(project, i, check_image=False) for i in ids], self.settings.rater)
        self._start_job(
            "check images",
            lambda report, cancelled: self._check_images(ids, report, cancelled),
            progress=self.files.update_row,
        )
        self.message.emit(f"{len(ids)} images in {project.root}")
        self.image_id = self.doc = self.radiograph = None
        for image_id in self.files.order():  # the first image that loads; bad ones show their error
            if self.open_image(image_id):
                break
        return True

    def _check_images(self, ids, report, cancelled) -> None:
        for image_id in ids:
            if cancelled():
                return
            report(scan_row(self.project, image_id))

    def open_image(self, image_id: str) -> bool:
        if self.project is None or image_id == self.image_id:
            return image_id == self.image_id
        path = self.project.image_path(image_id)
        try:
            radiograph = load_radiograph(path)
        except OsteoError as exc:
            row = self.files.row(image_id)
            row.error = str(exc)
            self.files.update_row(row)
            self.message.emit(str(exc))
            return False
        annotations, problems = self.project.load(image_id)
        mine = next((r for r in annotations.raters if r.rater == self.settings.rater), None)
        for problem in problems:
            self.message.emit(f"{Path(problem.path).name}: {problem.message}")
        self.image_id, self.radiograph, self.prior = image_id, radiograph, None
        self.doc = ImageDocument(
            radiograph.pixels.shape,
            None if mine is None else mine.labels,
            None if mine is None else mine.prompts,
            on_labels_changed=self._save,
        )
        self.canvas.set_image(radiograph.pixels, self._window("File default"))
        self.panel.window.setCurrentIndex(0)
        self.select_bone(self.doc.bone)
        self.redraw()
        self.files.select(image_id)
        self._find_prior(image_id, radiograph.pixels)
        self.message.emit(f"{path.name}: {radiograph.width}×{radiograph.height}, {radiograph.bits_stored} bit")
        return True

    def _find_prior(self, image_id: str, pixels: np.ndarray) -> None:
        """The segmenter's bones of the image, once, off the UI thread; then every bone's crop is embedded."""

        def ready(labels: np.ndarray) -> None:
            if image_id == self.image_id:
                self.prior = labels
                self.sam.prepare(image_id, pixels, crops=prior_crops(labels))

        self._start_job("bones for clicks", lambda report, cancelled: self._segment_labels(pixels), done=ready)

    def _segment_labels(self, pixels: np.ndarray) -> np.ndarray:
        return segment(pixels, self._loaded_segmenter(), modules=False).labels

    def step_image(self, step: int) -> None:
        target = self._neighbour(step)
        if target is not None:
            self.open_image(target)

    def _neighbour(self, step: int) -> str | None:
        order = self.files.order()
        if self.image_id not in order:
            return order[0] if order else None
        index = order.index(self.image_id) + step
        return order[index] if 0 <= index < len(order) else None

    # ------------------------------------------------------------ editing
    def select_bone(self, value: int) -> None:
        if self.doc is not None:
            self.doc.select_bone(value)
            self.redraw()
        self.panel.show_bone(value)

    def set_mode(self, mode: str) -> None:
        self.canvas.set_mode(mode)
        self.panel.show_mode(mode)

    def _on_point(self, x: float, y: float, positive: bool) -> None:
        if self.doc is None or not self._inside(x, y):
            return
        self.prompt(Prompts(self.doc.prompts.points + ((x, y, positive),), self.doc.prompts.box))

    def _on_box(self, x0: float, y0: float, x1: float, y1: float) -> None:
        if self.doc is None:
            return
        h, w = self.doc.shape
        box = (max(0.0, x0), max(0.0, y0), min(float(w - 1), x1), min(float(h - 1), y1))
        if box[2] > box[0] and box[3] > box[1]:
            self.prompt(Prompts(self.doc.prompts.points, box))

    def prompt(self, prompts: Prompts) -> None:
        self.doc.set_prompts(prompts)
        self._draw_prompts()
        xy, labels, box = prompts.arrays()
        if box is None and not labels.any():
            return  # only negative clicks so far: nothing for SAM to find yet
        bone = BONES[self.doc.bone]
        self.sam.ask(PromptRequest(self.image_id, self.radiograph.pixels, prompts, bone, xy, labels, box, self.prior))

    def _on_answer(self, prompts: Prompts, answer) -> None:
        if self.doc is not None and self.doc.apply_prompt_mask(prompts, answer.mask):
            self.panel.show_prompt_note(answer.note, warn=answer.fallback)
            self._redraw_working()

    def _on_paint(self, x: float, y: float) -> None:
        if self.doc is not None and self.doc.stroking:
            self.doc.paint(x, y, self.brush_radius)
            self._redraw_timer.start()

    def _on_stroke_end(self) -> None:
        if self.doc is not None:
            self.doc.end_stroke()
            self._redraw_working()

    def accept(self) -> None:
        if self.doc is not None and self.doc.accept():
            self.redraw()

    def clear_prompts(self) -> None:
        if self.doc is not None:
            self.doc.clear_prompts()
            self.redraw()

    def undo(self) -> None:
        if self.doc is not None and self.doc.undo():
            self.redraw()

    def redo(self) -> None:
        if self.doc is not None and self.doc.redo():
            self.redraw()

    def _inside(self, x: float, y: float) -> bool:
        h, w = self.doc.shape
        return 0 <= x < w and 0 <= y < h

    # ------------------------------------------------------------ segmenter
    def propose(self) -> None:
        if self.doc is None:
            return
        pixels, image_id = self.radiograph.pixels, self.image_id
        self._start_job(
            "propose",
            lambda report, cancelled: self._segment_labels(pixels),
            done=lambda labels: self._apply_proposal(image_id, labels),
        )

    def _apply_proposal(self, image_id: str, labels: np.ndarray) -> None:
        if image_id != self.image_id or self.doc is None:
            return
        filled = self.doc.propose(labels)
        self.redraw()
        self.message.emit(
            f"Proposed {len(filled)} bone(s) from the segmenter; correct them and accept."
            if filled
            else "Nothing to propose: every bone the segmenter found is annotated."
        )

    def rank_by_uncertainty(self) -> None:
        if self.project is None:
            return
        ids = [e.image_id for e in self.project.images]
        self._start_job(
            "uncertainty",
            lambda report, cancelled: self._rank(ids, report, cancelled),
            progress=self._show_uncertainty,
            done=lambda _: self.files.sort_by_uncertainty(),
        )

    def _rank(self, ids, report, cancelled) -> None:
        self.ranking_score = rank_images(
            self.project, ids, self._loaded_segmenter(), self._prompter_loader, report, cancelled, self.message.emit
        )

    def _show_uncertainty(self, item) -> None:
        image_id, value = item
        row = self.files.row(image_id)
        row.uncertainty = value
        self.files.update_row(row)

    def _loaded_segmenter(self):
        if self._segmenter is None:
            self._segmenter = load_segmenter(self.settings.segmenter or None)
        return self._segmenter

    # ------------------------------------------------------------ saving
    def _save(self, doc: ImageDocument) -> None:
        if doc is not self.doc or self.project is None:
            return
        annotation = RaterAnnotation(self.settings.rater, doc.labels.copy(), prompts=dict(doc.bone_prompts))
        try:
            self.project.save(self.image_id, annotation)
        except OsteoError as exc:
            QtWidgets.QMessageBox.warning(
                self,
                "Not saved",
                f"{exc}\n\nYour edits stay open: put this right (free "
                "space, or a distinct rater name in Settings) and accept again.",
            )
            return
        row = self.files.row(self.image_id)
        row.done[self.settings.rater] = bones_done(doc.labels)
        self.files.update_row(row)

    # ------------------------------------------------------------ drawing
    def redraw(self) -> None:
        if self.doc is None:
            return
        self.canvas.set_labels(self.doc.labels, label_lut(self.settings.colours))
        self._redraw_working()

    def _redraw_working(self) -> None:
        if self.doc is None:
            return
        self.canvas.set_working(self.doc.working, label_lut(self.settings.colours, only=self.doc.bone))
        self._draw_prompts()

    def _draw_prompts(self) -> None:
        self.canvas.set_prompts(self.doc.prompts.points, self.doc.prompts.box)

    def apply_window_preset(self, name: str) -> None:
        if self.radiograph is not None:
            self.canvas.set_levels(*self._window(name))

    def _window(self, name: str) -> tuple[float, float]:
        if name == "File default":
            centre, width = self.radiograph.window
            return centre - width / 2, centre + width / 2
        if name == "Full range":
            return 0.0, 1.0
        sample = self.radiograph.pixels[::4, ::4]
        return tuple(float(v) for v in np.percentile(sample, (1, 99) if name.startswith("Auto") else (40, 99.8)))

    def apply_settings(self, settings: AppSettings) -> None:
        changed_model = (settings.sam_kind, settings.sam_checkpoint) != (
            self.settings.sam_kind,
            self.settings.sam_checkpoint,
        )
        rater_changed = settings.rater != self.settings.rater
        self.settings = settings
        self.panel.set_colours(settings.colours)
        if changed_model:
            self._prompter_loader = default_prompter_loader(settings)
            self.sam.set_loader(self._prompter_loader)
        self._segmenter = None
        if rater_changed and self.project is not None:
            current, self.image_id = self.image_id, None
            self.open_project(self.project)
            if current:
                self.open_image(current)
        self.redraw()

    # ------------------------------------------------------------ jobs
    def _start_job(self, name, work, progress=None, done=None) -> BackgroundJob:
        return start_job(self.jobs, name, work, progress, done, lambda text: self.message.emit(f"{name}: {text}"))

    def shutdown(self) -> None:
        for job in self.jobs:
            job.cancel()
        self.sam.stop()
