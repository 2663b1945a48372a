"""The main window: the Annotate and Screen workspaces, menus, status bar and the research notice."""

from __future__ import annotations

import gc
from functools import partial
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from osteo_engine import OsteoError
from osteo_engine.exports.coco import export_coco
from osteo_engine.exports.dicom_seg import export_dicom_seg
from osteo_engine.exports.png import export_png

from .annotate.library import project_for_image
from .annotate.workspace import AnnotateWorkspace, projects_home
from .jobs_panel.panel import JobsPanel
from .screen.workspace import ScreenWorkspace
from .settings import AppSettings, RecentFiles, SettingsDialog, settings_store

RESEARCH_NOTICE = "Research tool — not for clinical diagnosis."
WORKSPACES = ("annotate", "screen", "jobs")


class MainWindow(QtWidgets.QMainWindow):
    def __init__(
        self,
        settings: AppSettings | None = None,
        store: QtCore.QSettings | None = None,
        runs: Path | None = None,
        **workspace_kw,
    ):
        super().__init__()
        self.store = store or settings_store()
        self.settings = settings or AppSettings.load(self.store)
        self.recent = RecentFiles(self.store)
        self.setWindowTitle("Osteo workstation")
        self.resize(1400, 880)
        self.tabs = QtWidgets.QTabWidget(self)
        self.annotate = AnnotateWorkspace(self.settings, self, **workspace_kw)
        self.screen = ScreenWorkspace(self.settings.colours, self)
        self.screen.annotation_source = self._project_masks
        self.jobs = JobsPanel(runs or projects_home().parent / "runs", self)
        self.tabs.addTab(self.annotate, "Annotate")
        self.tabs.addTab(self.screen, "Screen")
        self.tabs.addTab(self.jobs, "Jobs")
        self.setCentralWidget(self.tabs)
        for part in (self.annotate, self.screen, self.jobs):
            part.message.connect(self.show_message)
        self.jobs.segmenter_chosen.connect(self.use_segmenter)
        self.jobs.screening_chosen.connect(self.use_screening_model)
        self._build_menus()
        self.show_message("")
        # The hundreds of thousands of objects made by the imports live as long as the app: without this, every
        # full garbage collection walks them, holding the interpreter (and so the UI thread) for about 0.4 s
        # (bench/screen_ui_stalls.py: 600 ms stalls while a worker measured bones, 110 ms with it).
        gc.freeze()

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction("Open &folder…", self._ask_folder).setShortcut("Ctrl+O")
        file_menu.addAction("Open &project…", self._ask_project)
        file_menu.addAction("Open &radiograph…", self._ask_image)
        self.recent_menu = file_menu.addMenu("Open r&ecent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        export = file_menu.addMenu("&Export")
        export.addAction("PNG label maps…", lambda: self._export("PNG", export_png))
        export.addAction("COCO JSON…", lambda: self._export("COCO", self._coco))
        export.addAction("DICOM SEG…", self._export_seg)
        report = file_menu.addMenu("Screening &report")
        report.addAction("PDF…", self._export_pdf)
        report.addAction("JSON…", self._export_json)
        file_menu.addAction("&Settings…", self._edit_settings)
        file_menu.addSeparator()
        file_menu.addAction("&Quit", self.close).setShortcut("Ctrl+Q")
        edit = bar.addMenu("&Edit")
        for key in ("undo", "redo"):
            edit.addAction(self.annotate.actions[key])
        annotate = bar.addMenu("&Annotate")
        for key in (
            "accept",
            "clear",
            "propose",
            "rank",
            "prompt",
            "brush",
            "erase",
            "smaller",
            "larger",
            "previous",
            "next",
        ):
            annotate.addAction(self.annotate.actions[key])
        annotate.addAction("&Train a segmenter on this project", self.train_on_project)
        models = bar.addMenu("&Models")
        models.addAction("Use the &bundled models", self.use_bundled_models)
        models.addAction("Use a screening &model folder…", self._ask_screening_model)
        models.addAction("Use a &segmenter checkpoint…", self._ask_segmenter)
        bones = annotate.addMenu("&Bone")
        for value in range(1, 8):
            bones.addAction(self.annotate.actions[f"bone{value}"])

    def train_on_project(self) -> Path | None:
        """A cpu-small segmenter training job on the open project's raters, watched in the Jobs panel."""
        if self.annotate.project is None:
            self.show_message("Open a project first.")
            return None
        run = self.jobs.start_job("segment train", [str(self.annotate.project.root)], "cpu-small")
        self.jobs.select(run)
        self.show_workspace("jobs")
        return run

    def use_segmenter(self, checkpoint: Path) -> None:
        """Screen with this segmenter from now on (the screening model in use stays)."""
        self.screen.use_models(self.screen.model_sources[0], checkpoint)
        self.show_message(f"The Screen workspace now segments with {checkpoint.parent.parent.name}.")

    def use_screening_model(self, folder: Path) -> None:
        """Screen with this exported screening model from now on (the segmenter in use stays)."""
        self.screen.use_models(folder, self.screen.model_sources[1])
        self.show_message(f"The Screen workspace now screens with the model in {Path(folder).name}.")

    def use_bundled_models(self) -> None:
        self.screen.use_models()
        self.show_message("The Screen workspace now uses the bundled segmenter and demo classifier.")

    def show_workspace(self, name: str) -> None:
        self.tabs.setCurrentIndex(WORKSPACES.index(name))

    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(f"{text}  ·  {RESEARCH_NOTICE}" if text else RESEARCH_NOTICE)

    # ------------------------------------------------------------ opening
    def open_path(self, path: str | Path, workspace: str = "annotate") -> bool:
        """A folder, an annotation project or one radiograph, in the Annotate workspace or screened in the
        Screen workspace."""
        path = Path(path)
        opened = self._open(path, workspace)
        if opened:
            self.recent.add(path, workspace)
        return opened

    def _open(self, path: Path, workspace: str) -> bool:
        if workspace == "screen":
            return self.screen.open_path(path)
        if path.is_dir():
            return self.annotate.open_folder(path)
        try:
            project, image_id = project_for_image(path, projects_home())
        except (OsteoError, OSError) as exc:
            self.show_message(f"Cannot open {path.name}: {exc}")
            return False
        self.annotate.open_project(project)
        return self.annotate.open_image(image_id)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        entries = self.recent.entries()
        for path, workspace in entries:
            action = self.recent_menu.addAction(
                f"{path.name}  ({workspace})", lambda p=path, w=workspace: self._reopen(p, w)
            )
            action.setToolTip(str(path))
        if not entries:
            self.recent_menu.addAction("Nothing opened yet").setEnabled(False)

    def _reopen(self, path: Path, workspace: str) -> None:
        self.show_workspace(workspace)
        self.open_path(path, workspace)

    def _ask_folder(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Open a folder of radiographs or a project")
        if folder:
            self.open_path(folder, "annotate")

    def _ask_project(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open annotation project", "", "Project (project.json)")
        if path and self.annotate.open_project(Path(path).parent):
            self.recent.add(Path(path).parent, "annotate")

    def _ask_image(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open radiograph", "", "Radiographs (*.dcm *.dicom *.png *.jpg *.jpeg *.tif *.tiff);;All files (*)"
        )
        if path:
            self.open_path(path, WORKSPACES[self.tabs.currentIndex()])

    def _ask_screening_model(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Screening model folder (an export-screening run)")
        if not folder:
            return
        if not (Path(folder) / "probe.safetensors").exists() or not (Path(folder) / "encoder.safetensors").exists():
            self.show_message(f"{Path(folder).name} holds no screening model (encoder and probe .safetensors).")
            return
        self.use_screening_model(Path(folder))

    def _ask_segmenter(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Segmenter checkpoint", str(self.jobs.runs_home), "Segmenters (*.safetensors)"
        )
        if path:
            self.use_segmenter(Path(path))

    def _project_masks(self, path: Path):
        """The Annotate workspace's masks of this radiograph (the first rater's), when its project lists it."""
        project = self.annotate.project
        image_id = project.find_image_path(path) if project is not None else None
        if image_id is None:
            return None
        try:
            annotations, _ = project.load(image_id)
        except (OsteoError, OSError):
            return None
        return annotations.raters[0].labels if annotations.raters else None

    # ------------------------------------------------------------ export and settings
    def _export_pdf(self) -> None:
        if self.screen.current is None:
            self.show_message("Screen a radiograph first.")
            return
        leaves_out = "The report leaves out the patient's name and ID."
        box = checkbox_dialog(self, "Screening report", leaves_out, "Include the patient's name and ID")
        if box.exec() != QtWidgets.QMessageBox.Ok:
            return
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save the report", "screening.pdf", "PDF (*.pdf)")
        if path:
            written = self.screen.export_pdf(path, box.checkBox().isChecked())
            self.show_message(f"Report written to {written}")

    def _export_json(self) -> None:
        if self.screen.current is None:
            self.show_message("Screen a radiograph first.")
            return
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save the answer", "screening.json", "JSON (*.json)")
        if path:
            self.show_message(f"Answer written to {self.screen.export_json(path)}")

    @staticmethod
    def _coco(project, out_dir):
        return [export_coco(project, Path(out_dir) / "annotations_coco.json")]

    def _export(self, label: str, exporter) -> None:
        if self.annotate.project is None:
            self.show_message("Open a project first.")
            return
        out = QtWidgets.QFileDialog.getExistingDirectory(self, f"Export {label} to…")
        if out:
            self.export_to(label, exporter, out)

    def _export_seg(self) -> None:
        if self.annotate.project is None:
            self.show_message("Open a project first.")
            return
        dialog = seg_export_dialog(self)
        if dialog.exec() != QtWidgets.QMessageBox.Ok:
            return
        out = QtWidgets.QFileDialog.getExistingDirectory(self, "Export DICOM SEG to…")
        if out:
            self.export_seg_to(out, dialog.checkBox().isChecked())

    def export_seg_to(self, out: str | Path, keep_patient: bool) -> list[Path]:
        return self.export_to("DICOM SEG", partial(export_dicom_seg, keep_patient=keep_patient), out)

    def export_to(self, label: str, exporter, out: str | Path) -> list[Path]:
        try:
            written = exporter(self.annotate.project, out)
        except (OsteoError, OSError) as exc:
            QtWidgets.QMessageBox.warning(self, f"{label} export failed", str(exc))
            return []
        self.show_message(f"Exported {len(written)} {label} file(s) to {out}")
        return written

    def _edit_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self)
        if dialog.exec() != QtWidgets.QDialog.Accepted:
            return
        try:
            settings = dialog.result_settings()
        except OsteoError as exc:
            QtWidgets.QMessageBox.warning(self, "Settings not changed", str(exc))
            return
        self.apply_settings(settings)

    def apply_settings(self, settings: AppSettings) -> None:
        settings.save(self.store)
        self.settings = settings
        self.annotate.apply_settings(settings)

    def closeEvent(self, event) -> None:
        self.annotate.shutdown()
        self.screen.shutdown()
        super().closeEvent(event)


def seg_export_dialog(parent: QtWidgets.QWidget | None = None) -> QtWidgets.QMessageBox:
    """Asks before a DICOM SEG export; the box to keep the patient's identity starts unticked."""
    box = checkbox_dialog(
        parent,
        "Export DICOM SEG",
        "The SEG files will be de-identified: a pseudonym replaces the patient's name and ID, birth "
        "date, sex and study dates are left out, and every UID is replaced.",
        "Copy the patient's name, ID and study (for this hospital's PACS)",
    )
    box.setInformativeText(
        "Keep the patient's identity only for SEG files that go back to this hospital's own PACS beside their images."
    )
    return box


def checkbox_dialog(parent: QtWidgets.QWidget | None, title: str, text: str, choice: str) -> QtWidgets.QMessageBox:
    """An OK/Cancel question with one box, unticked, that widens what leaves the app (a patient's identity)."""
    box = QtWidgets.QMessageBox(parent)
    box.setWindowTitle(title)
    box.setText(text)
    # parented to the box: a checkbox Python alone held would be deleted with its wrapper
    box.setCheckBox(QtWidgets.QCheckBox(choice, box))
    box.setStandardButtons(QtWidgets.QMessageBox.Ok | QtWidgets.QMessageBox.Cancel)
    return box


def grab(window: QtWidgets.QWidget, out: str | Path) -> bool:
    window.show()
    QtWidgets.QApplication.processEvents()
    return window.grab().save(str(out))
