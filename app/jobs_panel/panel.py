"""The Jobs panel: start training jobs as background processes, watch them (state, progress with ETA, the log,
live curves of loss and validation metrics), cancel, resume, and make a finished segmenter the active one.

Jobs are processes in sessions of their own, writing into their run folders (records.py), so they outlive the
app, and the panel reads every run's state from its files each second: a reopened window sees them all.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from osteo_engine.registry import PRESETS

from .records import (
    COMMANDS,
    JobStatus,
    job_kind,
    launch_command,
    option_values,
    read_status,
    resume_command,
    scan,
    write_record,
)

COLUMNS = ("run", "job", "state", "progress", "ETA")
CURVES = ("loss", "val_mean_dice", "val_ged", "val_auc", "val_macro_f1")  # the metrics drawn, when a job has them
CURVE_COLOURS = ("#1565c0", "#c62828", "#2e7d32", "#6a1b9a", "#ef6c00")
POLL_MS = 1000
JOB_NICENESS = 10  # jobs yield the CPU to the app: a training run must not make the Screen workspace stall
REPO = Path(__file__).resolve().parents[2]


class JobsPanel(QtWidgets.QWidget):
    message = QtCore.Signal(str)
    segmenter_chosen = QtCore.Signal(object)  # Path of a finished run's best segmenter checkpoint
    screening_chosen = QtCore.Signal(object)  # Path of a finished export-screening run (its model folder)

    def __init__(self, runs_home: Path, parent=None):
        super().__init__(parent)
        self.runs_home = Path(runs_home)
        self.statuses: dict[Path, JobStatus] = {}
        self._children: list[subprocess.Popen] = []
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self._form())
        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([c.capitalize() for c in COLUMNS])
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._show_selected)
        layout.addWidget(self.table, 2)
        buttons = QtWidgets.QHBoxLayout()
        self.buttons = {}
        for key, text, slot in (
            ("cancel", "Cancel", self.cancel_selected),
            ("resume", "Resume", self.resume_selected),
            ("activate", "Use this model", self._activate_selected),
            ("errors", "Fit its error map", self.fit_error_map_selected),
        ):
            self.buttons[key] = QtWidgets.QPushButton(text)
            self.buttons[key].clicked.connect(slot)
            buttons.addWidget(self.buttons[key])
        buttons.addStretch(1)
        layout.addLayout(buttons)
        detail = QtWidgets.QSplitter(QtCore.Qt.Horizontal)
        self.log = QtWidgets.QPlainTextEdit(readOnly=True)
        self.curves = pg.PlotWidget(background="w")
        self.curves.addLegend()
        self.curves.setLabel("bottom", "epoch")
        detail.addWidget(self.log)
        detail.addWidget(self.curves)
        layout.addWidget(detail, 3)
        self.timer = QtCore.QTimer(self, interval=POLL_MS, timeout=self.refresh)
        self.timer.start()
        self.refresh()

    def _form(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("New job")
        form = QtWidgets.QFormLayout(box)
        self.command = QtWidgets.QComboBox()
        self.command.addItems(list(COMMANDS))
        self.preset = QtWidgets.QComboBox()
        self.preset.addItems(list(PRESETS))
        self.data = QtWidgets.QLineEdit(placeholderText="annotation project folder(s) or manifest CSV(s)")
        self.extra = QtWidgets.QLineEdit(placeholderText="more options, e.g. --epochs 5 --method simclr")
        start = QtWidgets.QPushButton("Start")
        start.clicked.connect(self._start_from_form)
        for label, widget in (("Job", self.command), ("Preset", self.preset), ("Data", self.data)):
            form.addRow(label, widget)
        form.addRow("Options", self.extra)
        form.addRow(start)
        return box

    # ------------------------------------------------------------ starting and stopping
    def _start_from_form(self) -> None:
        try:
            self.start_job(
                self.command.currentText(),
                shlex.split(self.data.text()),
                self.preset.currentText(),
                shlex.split(self.extra.text()),
            )
        except ValueError as exc:
            self.message.emit(str(exc))

    def start_job(self, name: str, data: list[str], preset: str | None = None, extra: list[str] = ()) -> Path:
        """Start a job in a new run folder under `runs_home`; returns the folder. Raises ValueError for a form
        that names no data or an unknown job."""
        if not data:
            raise ValueError("Give the data to train on (a project folder or a manifest CSV).")
        run = self.runs_home / f"{name.replace(' ', '-')}-{time.strftime('%Y%m%d-%H%M%S')}"
        while run.exists():
            run = run.with_name(run.name + "-1")
        self._launch(run, launch_command(name, data, run, preset, list(extra)))
        return run

    def _launch(self, run: Path, command: list[str]) -> None:
        """Start `command` in its own session, its output appended to the run's files: it outlives the app. (Not
        QProcess: of its detached starts, only the static one gives the process id that cancelling needs, and it
        cannot send the output to the run's files.)"""
        run.mkdir(parents=True, exist_ok=True)
        try:
            with open(run / "job.out", "ab") as out, open(run / "job.err", "ab") as err:
                process = subprocess.Popen(
                    command, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=REPO, start_new_session=True
                )
        except OSError as exc:
            self.message.emit(f"Could not start {Path(command[0]).name}: {exc}")
            return
        _lower_priority(process.pid)
        write_record(run, command, process.pid)
        self._children.append(process)  # reaped when it ends, so that it does not linger as a zombie
        self.message.emit(f"Started {run.name}.")
        self.refresh()

    def cancel_selected(self) -> None:
        status = self.selected()
        if status is None or status.state != "running":
            return
        os.kill(status.pid, signal.SIGTERM)  # the job stops at its next step and keeps its last checkpoint
        self.message.emit(f"Cancelling {status.run.name}; it stops after its current step.")

    def resume_selected(self) -> None:
        status = self.selected()
        if status is not None and status.state in ("cancelled", "died", "failed"):
            self._launch(status.run, resume_command(status.command))

    def fit_error_map_selected(self) -> Path | None:
        """Start fitting the error map of the selected finished segmenter run on the data it was trained on, as a
        job of its own; the map is written beside the run's best checkpoint, where "Use this model" finds it.
        Returns the job's folder, or None (with a message) when no such run is selected."""
        status = self.selected()
        best = _best_segmenter(status)
        if best is None:
            self.message.emit("Choose a finished segmenter training run to fit its error map.")
            return None
        return self.start_job(
            "segment fit-errors", option_values(status.command, "--data"), None, ["--model", str(best)]
        )

    def _activate_selected(self) -> None:
        """A finished segmenter run becomes the Screen workspace's segmenter; a finished export-screening run its
        screening model."""
        status = self.selected()
        finished = status is not None and status.state == "finished"
        best = _best_segmenter(status)
        if best is not None:
            self.segmenter_chosen.emit(best)
        elif finished and "export-screening" in status.command and (status.run / "probe.safetensors").exists():
            self.screening_chosen.emit(status.run)
        else:
            self.message.emit("Choose a finished segmenter training run or a finished export-screening run.")

    # ------------------------------------------------------------ watching
    def refresh(self) -> None:
        self._children = [p for p in self._children if p.poll() is None]
        self.statuses = {s.run: s for s in scan(self.runs_home)}
        chosen = self.selected()
        self.table.blockSignals(True)
        self.table.setRowCount(len(self.statuses))
        for row, status in enumerate(self.statuses.values()):
            progress = f"{status.done}/{status.total}" if status.total else ""
            eta = f"{status.eta_s / 60:.1f} min" if status.eta_s is not None else ""
            job = " ".join(w for w in status.command[3:5] if not w.startswith("-"))
            for column, text in enumerate((status.run.name, job, status.state, progress, eta)):
                self.table.setItem(row, column, QtWidgets.QTableWidgetItem(text))
            if chosen is not None and status.run == chosen.run:
                self.table.selectRow(row)
        if chosen is None and self.statuses:
            self.table.selectRow(0)  # the newest run, with its log and curves, when nothing was chosen yet
        self.table.blockSignals(False)
        self._show_selected()

    def selected(self) -> JobStatus | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows or rows[0].row() >= len(self.statuses):
            return None
        return list(self.statuses.values())[rows[0].row()]

    def select(self, run: Path) -> None:
        for row, path in enumerate(self.statuses):
            if path == Path(run):
                self.table.selectRow(row)

    def _show_selected(self) -> None:
        status = self.selected()
        if status is None:
            return
        fresh = read_status(status.run) or status
        epochs = [
            f"epoch {e['epoch']}: "
            + ", ".join(f"{k} {v:.4g}" for k, v in e.items() if k in CURVES and isinstance(v, int | float))
            for e in fresh.epochs
        ]
        text = "\n".join([" ".join(fresh.command[3:]), *epochs, fresh.log_tail])
        text += f"\n\n{fresh.state}: {fresh.message}" if fresh.message else f"\n\n{fresh.state}"
        if self.log.toPlainText() != text:
            self.log.setPlainText(text)
        self._plot(fresh.epochs)

    def _plot(self, epochs: list[dict]) -> None:
        self.curves.clear()
        keys = [
            k for k in ("loss", "val_mean_dice", "val_ged", "val_auc", "val_macro_f1") if any(k in e for e in epochs)
        ]
        for key, colour in zip(keys, CURVE_COLOURS):
            points = [(e["epoch"], e[key]) for e in epochs if isinstance(e.get(key), int | float)]
            if points:
                x, y = np.array(points, float).T
                self.curves.plot(x, y, pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=5, name=key)


def _best_segmenter(status: JobStatus | None) -> Path | None:
    """The best checkpoint of a finished segmenter training run; None for any other job."""
    if status is None or status.state != "finished" or job_kind(status.command) != COMMANDS["segment train"]:
        return None
    best = status.run / "checkpoints" / "best.safetensors"
    return best if best.exists() else None


def _lower_priority(pid: int) -> None:
    """Run the job JOB_NICENESS steps nicer than the app (POSIX). Set right after the start, before the job's
    interpreter has made its worker threads, which inherit it. A job that has already ended is left alone."""
    if not hasattr(os, "setpriority"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, pid, min(os.getpriority(os.PRIO_PROCESS, 0) + JOB_NICENESS, 19))
    except OSError:
        pass
