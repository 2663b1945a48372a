"""The tool panel beside the canvas: bone palette, tools, sizes, window presets and the SAM indicator."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from osteo_engine.anatomy import BONES

WINDOW_PRESETS = ("File default", "Auto 1–99%", "Bone", "Full range")


class ToolPanel(QtWidgets.QWidget):
    bone_chosen = QtCore.Signal(int)
    mode_chosen = QtCore.Signal(str)
    brush_size_changed = QtCore.Signal(int)
    opacity_changed = QtCore.Signal(float)
    window_preset_chosen = QtCore.Signal(str)

    def __init__(self, colours: dict[str, tuple[int, int, int]], parent=None):
        super().__init__(parent)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(QtWidgets.QLabel("<b>Bone</b> (keys 1–7)"))
        self.bones = QtWidgets.QButtonGroup(self)
        self.bone_buttons: dict[int, QtWidgets.QPushButton] = {}
        for value, name in BONES.items():
            button = QtWidgets.QPushButton(f"{value}  {name}")
            button.setCheckable(True)
            self.bones.addButton(button, value)
            self.bone_buttons[value] = button
            layout.addWidget(button)
        self.set_colours(colours)
        self.bones.idClicked.connect(self.bone_chosen)
        self.bone_buttons[1].setChecked(True)

        layout.addWidget(QtWidgets.QLabel("<b>Tool</b>"))
        self.modes = QtWidgets.QButtonGroup(self)
        self.mode_buttons: dict[str, QtWidgets.QRadioButton] = {}
        for mode, text in (("prompt", "SAM prompts (P)"), ("brush", "Brush (B)"), ("erase", "Eraser (E)")):
            button = QtWidgets.QRadioButton(text)
            self.modes.addButton(button)
            self.mode_buttons[mode] = button
            button.toggled.connect(lambda on, m=mode: on and self.mode_chosen.emit(m))
            layout.addWidget(button)
        self.mode_buttons["prompt"].setChecked(True)

        self.brush_size = self._slider(layout, "Brush radius (px, [ ])", 1, 200, 12)
        self.brush_size.valueChanged.connect(self.brush_size_changed)
        self.opacity = self._slider(layout, "Mask opacity", 0, 100, 40)
        self.opacity.valueChanged.connect(lambda v: self.opacity_changed.emit(v / 100.0))
        layout.addWidget(QtWidgets.QLabel("Window (Shift + drag to adjust)"))
        self.window = QtWidgets.QComboBox()
        self.window.addItems(WINDOW_PRESETS)
        self.window.textActivated.connect(self.window_preset_chosen)
        layout.addWidget(self.window)

        self.buttons: dict[str, QtWidgets.QPushButton] = {}
        for key, text in (
            ("accept", "Accept bone (Enter)"),
            ("clear", "Clear prompts (Esc)"),
            ("propose", "Propose from segmenter"),
            ("rank", "Order by uncertainty"),
            ("previous", "◀ Previous (PgUp)"),
            ("next", "Next (PgDn) ▶"),
        ):
            self.buttons[key] = QtWidgets.QPushButton(text)
            layout.addWidget(self.buttons[key])
        self.buttons["rank"].setToolTip(
            "Segment every image in the background and list first those whose proposal an annotator will likely "
            "correct most: the geometric mean of the segmenter's instability (its map against its readings of the "
            "image turned ±12°) and SAM's disagreement with its map (about 7 s an image)."
        )
        self.sam_state = QtWidgets.QLabel("SAM: idle")
        self.sam_state.setObjectName("samState")
        layout.addWidget(self.sam_state)
        self.prompt_note = QtWidgets.QLabel("", wordWrap=True)  # how the last click was answered
        self.prompt_note.setObjectName("promptNote")
        layout.addWidget(self.prompt_note)
        layout.addStretch(1)

    def set_colours(self, colours: dict[str, tuple[int, int, int]]) -> None:
        for value, name in BONES.items():
            r, g, b = colours[name]
            text = "black" if 0.3 * r + 0.6 * g + 0.1 * b > 140 else "white"
            self.bone_buttons[value].setStyleSheet(
                f"QPushButton {{ background-color: rgb({r},{g},{b}); color: {text}; padding: 4px; }}"
                "QPushButton:checked { border: 3px solid white; font-weight: bold; }"
            )

    def show_bone(self, value: int) -> None:
        self.bone_buttons[value].setChecked(True)

    def show_mode(self, mode: str) -> None:
        self.mode_buttons[mode].setChecked(True)

    def show_sam_busy(self, busy: bool) -> None:
        self.sam_state.setText("SAM: working…" if busy else "SAM: ready")
        self.sam_state.setStyleSheet("color: #e65100;" if busy else "color: #2e7d32;")

    def show_prompt_note(self, note: str, warn: bool = False) -> None:
        """How the last prompt was answered; a fallback (no segmenter bone there) in the warning colour."""
        self.prompt_note.setText(note)
        self.prompt_note.setStyleSheet("color: #e65100;" if warn else "")

    @staticmethod
    def _slider(layout, label: str, lo: int, hi: int, value: int) -> QtWidgets.QSlider:
        layout.addWidget(QtWidgets.QLabel(label))
        slider = QtWidgets.QSlider(QtCore.Qt.Horizontal)
        slider.setRange(lo, hi)
        slider.setValue(value)
        layout.addWidget(slider)
        return slider
