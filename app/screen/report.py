"""The screening report: a PDF made with Qt's own writer (the image with the overlays on screen, the per-bone
chart, the answer and its reasons, the radiogrammetry, the models and the research notice), and the answer as
JSON, the same object `osteo screen --json` prints. The patient's name and ID go in only when the user asks."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtGui

from osteo_engine.radiogrammetry import measurement_line
from osteo_engine.screening import DISCLAIMER, segmentation_uncertainty
from osteo_engine.screening import shown as _shown
from osteo_engine.storage import atomic_write_bytes, strict_json

PATIENT_FACTS = ("Patient", "Patient ID")


def report_lines(result: dict, facts: dict[str, str], include_patient: bool = False) -> list[str]:
    """The report's text, line by line: answer, reasons, population, file facts (without the patient's name
    and ID unless `include_patient`), per-bone probabilities, models and the notice."""
    bones = result["bones"]
    lines = [
        f"Decision: {result['decision'].upper()}",
        f"Probability {_shown(result['probability'])} (threshold {_shown(result['threshold'])}); segmentation "
        f"{segmentation_uncertainty(result)}",
        *result["reasons"],
        result.get("population", {}).get("note", ""),
        "",
        *(f"{k}: {v}" for k, v in facts.items() if include_patient or k not in PATIENT_FACTS),
        "",
        "Per bone: "
        + ", ".join(
            f"{b} {_shown(v['probability'])} ± {_shown(v.get('spread'))}" if v["present"] else f"{b} not found"
            for b, v in bones.items()
        ),
        measurement_line(result["radiogrammetry"]) if result.get("radiogrammetry") else None,
        f"Models: segmenter {result['model'].get('segmenter')}; classifier {result['model'].get('encoder')} + "
        f"{result['model'].get('probe')}, meant for {result['model'].get('population', 'adults')}",
        f"Trained on: {result['model'].get('trained_on')}",
        "",
        DISCLAIMER,
    ]
    return [line for line in lines if line is not None]


def write_json(path: str | Path, result: dict, image_name: str) -> Path:
    """The answer as `osteo screen --json` gives it for that file."""
    path = Path(path)
    atomic_write_bytes(path, (strict_json({"image": image_name, **result}) + "\n").encode())
    return path


def write_pdf(path: str | Path, lines: list[str], image: QtGui.QPixmap, chart: QtGui.QPixmap) -> Path:
    """One A4 page: the title, the image with its overlays, the chart beside it, then `lines`."""
    path = Path(path)
    writer = QtGui.QPdfWriter(str(path))
    writer.setPageSize(QtGui.QPageSize(QtGui.QPageSize.A4))
    writer.setResolution(150)
    writer.setTitle("Osteoporosis screening report (research tool)")
    painter = QtGui.QPainter(writer)
    try:
        page = painter.viewport()
        margin = 60
        width = page.width() - 2 * margin
        painter.setFont(QtGui.QFont("Sans", 14, QtGui.QFont.Bold))
        painter.drawText(margin, margin + 20, "Osteoporosis screening report — research tool, not a diagnosis")
        top = margin + 50
        picture = QtCore.QRect(margin, top, int(width * 0.55), int(page.height() * 0.45))
        _draw_fitted(painter, image, picture)
        _draw_fitted(painter, chart, QtCore.QRect(picture.right() + 20, top, width - picture.width() - 20, 400))
        painter.setFont(QtGui.QFont("Sans", 9))
        text = QtCore.QRect(margin, picture.bottom() + 30, width, page.height() - picture.bottom() - 30 - margin)
        painter.drawText(text, QtCore.Qt.TextWordWrap, "\n".join(lines))
    finally:
        painter.end()
    return path


def _draw_fitted(painter: QtGui.QPainter, pixmap: QtGui.QPixmap, box: QtCore.QRect) -> None:
    scaled = pixmap.scaled(box.size(), QtCore.Qt.KeepAspectRatio, QtCore.Qt.SmoothTransformation)
    painter.drawPixmap(box.topLeft(), scaled)
