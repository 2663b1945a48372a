"""User settings (rater, SAM model, colours, overlay opacity), kept in QSettings, and their dialog."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from osteo_engine.anatomy import BONE_COLOURS, BONE_NAMES
from osteo_engine.annotations import safe_rater_name
from osteo_engine.errors import AnnotationError
from osteo_engine.registry import SAM_KINDS


@dataclass
class AppSettings:
    rater: str = "rater1"
    sam_kind: str = "litemedsam"
    sam_checkpoint: str = ""  # empty: the bundled LiteMedSAM
    opacity: float = 0.4
    segmenter: str = ""  # empty: the bundled segmentation model
    colours: dict[str, tuple[int, int, int]] = field(default_factory=lambda: dict(BONE_COLOURS))

    @staticmethod
    def load(store: QtCore.QSettings) -> AppSettings:
        raw = store.value("settings", "")
        try:
            obj = json.loads(raw) if raw else {}
            colours = {**BONE_COLOURS, **{k: tuple(v) for k, v in obj.pop("colours", {}).items() if k in BONE_COLOURS}}
            return AppSettings(
                **{k: v for k, v in obj.items() if k in AppSettings.__dataclass_fields__}, colours=colours
            )
        except (ValueError, TypeError):
            return AppSettings()  # unreadable settings fall back to the defaults

    def save(self, store: QtCore.QSettings) -> None:
        store.setValue("settings", json.dumps(asdict(self)))
        store.sync()


def settings_store() -> QtCore.QSettings:
    return QtCore.QSettings("osteo", "workstation")


class SettingsDialog(QtWidgets.QDialog):
    def __init__(self, settings: AppSettings, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.rater = QtWidgets.QLineEdit(settings.rater)
        self.kind = QtWidgets.QComboBox()
        self.kind.addItems(SAM_KINDS)
        self.kind.setCurrentText(settings.sam_kind)
        self.checkpoint = QtWidgets.QLineEdit(settings.sam_checkpoint)
        self.checkpoint.setPlaceholderText("bundled LiteMedSAM")
        browse = QtWidgets.QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.checkpoint)
        row.addWidget(browse)
        self.colours = dict(settings.colours)
        self._colour_buttons: dict[str, QtWidgets.QPushButton] = {}
        palette = QtWidgets.QGridLayout()
        for i, name in enumerate(BONE_NAMES):
            button = QtWidgets.QPushButton(name)
            button.clicked.connect(lambda _=False, n=name: self._pick_colour(n))
            self._colour_buttons[name] = button
            palette.addWidget(button, i // 4, i % 4)
            self._paint(name)
        form = QtWidgets.QFormLayout(self)
        form.addRow("Rater name", self.rater)
        form.addRow("SAM model", self.kind)
        form.addRow("Checkpoint file", row)
        form.addRow("Bone colours", palette)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Ok | QtWidgets.QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self._opacity = settings.opacity
        self._segmenter = settings.segmenter

    def result_settings(self) -> AppSettings:
        """The edited settings; raises AnnotationError for a rater name that cannot be stored."""
        kind = self.kind.currentText()
        checkpoint = self.checkpoint.text().strip()
        if kind != "litemedsam" and not checkpoint:
            raise AnnotationError(f"a {kind} model needs its checkpoint file.")
        if checkpoint and not Path(checkpoint).is_file():
            raise AnnotationError(f"no checkpoint file at {checkpoint}.")
        rater = self.rater.text().strip()
        safe_rater_name(rater)  # refuses a name with nothing a file name can hold; the name itself is kept as typed
        return AppSettings(rater, kind, checkpoint, self._opacity, self._segmenter, self.colours)

    def _browse(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "SAM checkpoint", "", "Checkpoints (*.pth *.pt);;All (*)")
        if path:
            self.checkpoint.setText(path)

    def _pick_colour(self, name: str) -> None:
        colour = QtWidgets.QColorDialog.getColor(QtGui.QColor(*self.colours[name]), self, f"Colour of {name}")
        if colour.isValid():
            self.colours[name] = (colour.red(), colour.green(), colour.blue())
            self._paint(name)

    def _paint(self, name: str) -> None:
        r, g, b = self.colours[name]
        self._colour_buttons[name].setStyleSheet(f"background-color: rgb({r},{g},{b});")


class RecentFiles:
    """The radiographs, folders and projects opened last, newest first, kept in QSettings under "recent" as
    (path, workspace) pairs. Paths stay on this machine's settings; they are never logged."""

    LIMIT = 8

    def __init__(self, store: QtCore.QSettings):
        self.store = store

    def entries(self) -> list[tuple[Path, str]]:
        """The remembered entries that still exist (a file moved or deleted since drops out)."""
        try:
            raw = json.loads(self.store.value("recent", "") or "[]")
            entries = [(Path(path), str(workspace)) for path, workspace in raw]
        except (ValueError, TypeError):
            return []  # unreadable: start a new list
        return [(path, workspace) for path, workspace in entries if path.exists()]

    def add(self, path: str | Path, workspace: str) -> None:
        path = Path(path).resolve()
        kept = [(p, w) for p, w in self.entries() if p != path]
        entries = [(path, workspace), *kept][: self.LIMIT]
        self.store.setValue("recent", json.dumps([[str(p), w] for p, w in entries]))
