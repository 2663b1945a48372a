"""The Screen workspace's side panel: the answer and why, the person, the file's facts, the overlays' controls,
the per-bone chart, and the models with the research notice."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from osteo_engine.anatomy import BONE_NAMES
from osteo_engine.radiogrammetry import hand_summary_text
from osteo_engine.screening import DISCLAIMER, how_read, segmentation_uncertainty
from osteo_engine.screening import shown as _shown

from .canvas import DEFAULT_OPACITY, OVERLAYS

DECISION_COLOURS = {"normal": "#2e7d32", "osteoporosis": "#c62828", "refer": "#ef6c00"}
UNCERTAINTY_KINDS = {
    "total": "total entropy (nats)",
    "mutual_information": "mutual information: disagreement (nats)",
    "error": "likely wrong: learned error map (probability)",
    "variance": "variance across samples",
}
OVERLAY_NAMES = {
    "bones": "Predicted bones",
    "module": "One module's bones",
    "uncertainty": "Uncertainty",
    "annotation": "Project's masks",
}


class ResultPanel(QtWidgets.QScrollArea):
    overlay_shown = QtCore.Signal(str, bool)
    overlay_opacity = QtCore.Signal(str, float)
    module_chosen = QtCore.Signal(int)
    uncertainty_chosen = QtCore.Signal(str)
    person_given = QtCore.Signal(object, object)  # age in years or None, sex "F"/"M" or None

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWidgetResizable(True)
        body = QtWidgets.QWidget()
        self.setWidget(body)
        layout = QtWidgets.QVBoxLayout(body)
        self.decision = QtWidgets.QLabel("Open a radiograph to screen it.")
        self.decision.setStyleSheet("font-size: 20px; font-weight: bold")
        self.summary = _wrapping()
        self.reasons = _wrapping()
        self.population = _wrapping()
        self.indices = _wrapping()  # radiogrammetry
        for widget in (self.decision, self.summary, self.reasons, self.population, self.indices):
            layout.addWidget(widget)
        layout.addWidget(self._person_box())
        self.facts = QtWidgets.QFormLayout()
        facts = QtWidgets.QGroupBox("File")
        facts.setLayout(self.facts)
        layout.addWidget(facts)
        layout.addWidget(self._overlay_box())
        self.chart = pg.PlotWidget(background="w")
        self.chart.setMinimumHeight(180)
        self.chart.setYRange(0, 1)
        self.chart.getAxis("bottom").setTicks([list(enumerate(BONE_NAMES))])
        self.chart.setLabel("left", "probability")
        layout.addWidget(self.chart)
        self.hover = QtWidgets.QLabel("")
        layout.addWidget(self.hover)
        self.profile = pg.PlotWidget(background="w")  # a clicked bone's profile with its edges
        self.profile.setMinimumHeight(160)
        self.profile.setLabel("bottom", "across the shaft (pixels)")
        self.profile.setLabel("left", "intensity")
        self.profile.setVisible(False)
        layout.addWidget(self.profile)
        self.models = _wrapping()
        layout.addWidget(self.models)
        notice = _wrapping(DISCLAIMER)
        notice.setStyleSheet("color: #b71c1c")
        layout.addWidget(notice)
        layout.addStretch(1)

    def _person_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Person (when the file does not say)")
        row = QtWidgets.QHBoxLayout(box)
        self.age = QtWidgets.QDoubleSpinBox(minimum=-1, maximum=150, decimals=1, value=-1, suffix=" y")
        self.age.setSpecialValueText("age from file")
        self.sex = QtWidgets.QComboBox()
        self.sex.addItems(["sex from file", "F", "M"])
        apply = QtWidgets.QPushButton("Screen again")
        apply.clicked.connect(self._emit_person)
        for widget in (self.age, self.sex, apply):
            row.addWidget(widget)
        return box

    def _emit_person(self) -> None:
        age = self.age.value() if self.age.value() >= 0 else None
        sex = self.sex.currentText() if self.sex.currentIndex() > 0 else None
        self.person_given.emit(age, sex)

    def _overlay_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Overlays")
        grid = QtWidgets.QGridLayout(box)
        self.shown: dict[str, QtWidgets.QCheckBox] = {}
        self.opacity: dict[str, QtWidgets.QSlider] = {}
        for row, name in enumerate(OVERLAYS):
            check = QtWidgets.QCheckBox(OVERLAY_NAMES[name])
            check.setChecked(name == "bones")
            check.toggled.connect(lambda on, n=name: self.overlay_shown.emit(n, on))
            slider = QtWidgets.QSlider(QtCore.Qt.Horizontal, minimum=0, maximum=100)
            slider.setValue(int(DEFAULT_OPACITY[name] * 100))
            slider.valueChanged.connect(lambda v, n=name: self.overlay_opacity.emit(n, v / 100))
            self.shown[name], self.opacity[name] = check, slider
            grid.addWidget(check, row, 0)
            grid.addWidget(slider, row, 1)
        self.edges_shown = QtWidgets.QCheckBox("Radiogrammetry edges (click a bone: its profile)")
        self.edges_shown.setChecked(True)
        self.edges_shown.toggled.connect(lambda on: self.overlay_shown.emit("radiogrammetry", on))
        grid.addWidget(self.edges_shown, len(OVERLAYS) + 2, 0, 1, 2)
        self.modules = QtWidgets.QComboBox()
        self.modules.currentIndexChanged.connect(lambda i: i >= 0 and self.module_chosen.emit(i))
        grid.addWidget(QtWidgets.QLabel("Module"), len(OVERLAYS), 0)
        grid.addWidget(self.modules, len(OVERLAYS), 1)
        self.kinds = QtWidgets.QComboBox()
        for kind, text in UNCERTAINTY_KINDS.items():
            self.kinds.addItem(text, kind)
        self.kinds.currentIndexChanged.connect(lambda i: self.uncertainty_chosen.emit(self.kinds.itemData(i)))
        grid.addWidget(QtWidgets.QLabel("Map"), len(OVERLAYS) + 1, 0)
        grid.addWidget(self.kinds, len(OVERLAYS) + 1, 1)
        return box

    # ------------------------------------------------------------ content
    def enable_kinds(self, available: set[str]) -> None:
        """Only the maps the segmentation has can be chosen (a segmenter without an error map has no "error")."""
        for i in range(self.kinds.count()):
            self.kinds.model().item(i).setEnabled(self.kinds.itemData(i) in available)

    def show_waiting(self, text: str) -> None:
        self.decision.setText(text)
        self.decision.setStyleSheet("font-size: 20px; font-weight: bold; color: #555")

    def show_result(self, result: dict, module_weights: list[float]) -> None:
        decision = result["decision"]
        self.decision.setText(decision.upper())
        self.decision.setStyleSheet(f"font-size: 20px; font-weight: bold; color: {DECISION_COLOURS[decision]}")
        read = how_read(result["orientation"]) or "as stored (upright)"
        self.summary.setText(
            f"probability {_shown(result['probability'])} (threshold {_shown(result['threshold'])}); segmentation "
            f"{segmentation_uncertainty(result)}; read {read}."
        )
        missing = [b for b, v in result["bones"].items() if not v["present"]]
        self.reasons.setText(
            ("Referred because: " if decision == "refer" else "")
            + " ".join(result["reasons"])
            + (f"\nNot found: {', '.join(missing)}." if missing else "")
        )
        self.population.setText(result.get("population", {}).get("note", ""))
        self.indices.setText(_indices(result.get("radiogrammetry", {})))
        self.profile.setVisible(False)
        names = result["model"]
        self.models.setText(
            f"Segmenter: {names.get('segmenter')}. Classifier: {names.get('encoder')} + {names.get('probe')}, "
            f"meant for {names.get('population', 'adults')}. Trained on: {names.get('trained_on')}"
        )
        self.modules.blockSignals(True)
        self.modules.clear()
        self.modules.addItems([f"module {k + 1}  (π = {w:.2f})" for k, w in enumerate(module_weights)])
        self.modules.blockSignals(False)
        self._chart(result)

    def _chart(self, result: dict) -> None:
        self.chart.clear()
        bones = result["bones"]
        x = np.arange(len(BONE_NAMES), dtype=float)
        probs = np.array([bones[b]["probability"] if bones[b]["present"] else np.nan for b in BONE_NAMES], float)
        spread = np.array([bones[b].get("spread") or 0.0 for b in BONE_NAMES], float)
        found = np.isfinite(probs)
        self.chart.addItem(pg.BarGraphItem(x=x[found], height=probs[found], width=0.6, brush="#5c6bc0"))
        self.chart.addItem(pg.ErrorBarItem(x=x[found], y=probs[found], height=2 * spread[found], beam=0.2, pen="k"))
        self.chart.addItem(
            pg.InfiniteLine(result["threshold"], angle=0, pen=pg.mkPen("#c62828", style=QtCore.Qt.DashLine))
        )

    def show_profile(self, bone: str, distance: np.ndarray, values: np.ndarray, edges: list[float]) -> None:
        """A measured profile across `bone` with its outer (red) and inner (green) edges."""
        self.profile.clear()
        self.profile.setTitle(f"{bone}: one profile of the mid-shaft")
        self.profile.plot(distance, values, pen=pg.mkPen("#37474f", width=2))
        for at, colour in zip(edges, ("#e53935", "#43a047", "#43a047", "#e53935")):
            self.profile.addItem(pg.InfiniteLine(at, angle=90, pen=pg.mkPen(colour, width=2)))
        self.profile.setVisible(True)

    def show_facts(self, facts: dict[str, str]) -> None:
        while self.facts.rowCount():
            self.facts.removeRow(0)
        for key, value in facts.items():
            self.facts.addRow(key, QtWidgets.QLabel(value))


def _indices(radiogrammetry: dict) -> str:
    """The radiogrammetry in a few lines: M2–M4's mean MCI and BHI, the hand's mean MCI and median base density,
    then each bone's T, W, MCI and relative base density."""
    bones = radiogrammetry.get("bones", {})
    if not bones:
        return ""
    unit = next(iter(bones.values()))["unit"]
    head = (
        f"Radiogrammetry: MCI {radiogrammetry['MCI_M2_M4']:.2f}, BHI {radiogrammetry['BHI_M2_M4']:.2f} (M2–M4)"
        if radiogrammetry.get("MCI_M2_M4") is not None
        else "Radiogrammetry: M2–M4 not all measured"
    )
    rows = [
        f"{b}: T {m['T']:.2f} {unit}, W {m['W']:.2f} {unit}, MCI {m['MCI']:.2f}"
        + (f", base density {m['RBD']:.2f}" if m.get("RBD") is not None else "")
        + ("" if m["quality"] == "ok" else f" — unsure: {m['quality']}")
        if m["MCI"] is not None
        else f"{b}: {m['quality']}"
        for b, m in bones.items()
    ]
    note = radiogrammetry.get("fusion_note")
    hand = [f"Hand: {summary}"] if (summary := hand_summary_text(radiogrammetry)) else []
    return "\n".join([head, *hand, *rows] + ([f"Classifier: {note}"] if note else []))


def _wrapping(text: str = "") -> QtWidgets.QLabel:
    label = QtWidgets.QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
    return label
