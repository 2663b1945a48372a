"""The longest stall of the UI thread in the Screen workspace, by a 10 ms timer heartbeat (goal: none over 100 ms).

Opens the bundled sample (screened in the background), then switches overlays, modules and uncertainty maps
as a reader would, then opens a folder of copies as a worklist and clicks through it, offscreen. A gap between
heartbeats longer than the timer's period is time the UI thread could not answer the user.

Run: QT_QPA_PLATFORM=offscreen .venv/bin/python bench/screen_ui_stalls.py [--copies 4] [--dump-over 90]
"""

from __future__ import annotations

import argparse
import faulthandler
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class Heartbeat:
    """Records the longest gap between beats per phase; with `dump_over` (s), faulthandler writes every thread's
    stack to `dump_file` whenever a gap grows longer (it needs no interpreter lock, so it sees who holds it)."""

    def __init__(self, period_ms: int = 10, dump_over: float | None = None, dump_file=None):
        from PySide6 import QtCore

        self.gaps: dict[str, float] = {}
        self.phase = "start"
        self._last = time.perf_counter()
        self.dump_over, self.dump_file = dump_over, dump_file
        self.timer = QtCore.QTimer(interval=period_ms, timeout=self._beat)
        self.timer.start()

    def _beat(self) -> None:
        if self.dump_over:
            faulthandler.cancel_dump_traceback_later()
            faulthandler.dump_traceback_later(self.dump_over, file=self.dump_file)
        now = time.perf_counter()
        self.gaps[self.phase] = max(self.gaps.get(self.phase, 0.0), now - self._last)
        self._last = now


def _pump(seconds: float) -> None:
    from PySide6 import QtWidgets

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QtWidgets.QApplication.processEvents()
        time.sleep(0.002)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--dump-over", type=float, help="ms: write every thread's stack at each longer gap")
    parser.add_argument("--dump-file", default="build/ui_stalls.txt", help="where --dump-over writes")
    parser.add_argument("--switch-interval", type=float, help="sys.setswitchinterval, seconds (Python's: 0.005)")
    args = parser.parse_args()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    from PySide6 import QtCore, QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    from app.settings import AppSettings
    from app.window import MainWindow

    scratch = Path(tempfile.mkdtemp())
    window = MainWindow(AppSettings(), QtCore.QSettings(str(scratch / "s.ini"), QtCore.QSettings.IniFormat))
    window.show_workspace("screen")
    window.show()
    screen = window.screen
    dump = None
    if args.dump_over:
        Path(args.dump_file).parent.mkdir(parents=True, exist_ok=True)
        dump = open(args.dump_file, "w")  # noqa: SIM115 (faulthandler writes to it until the end)
    beat = Heartbeat(dump_over=args.dump_over / 1000 if args.dump_over else None, dump_file=dump)
    sample = ROOT / "resources" / "samples" / "phantom_hand.dcm"
    beat.phase = "opening and screening"
    screen.open_path(sample)
    screen.wait_idle()
    beat.phase = "switching overlays"
    for name in ("module", "uncertainty", "annotation", "bones"):
        screen.panel.shown[name].setChecked(not screen.panel.shown[name].isChecked())
        _pump(0.05)
    for k in range(screen.panel.modules.count()):
        screen.panel.modules.setCurrentIndex(k)
        _pump(0.05)
    for k in range(screen.panel.kinds.count()):
        screen.panel.kinds.setCurrentIndex(k)
        _pump(0.05)
    folder = scratch / "worklist"
    folder.mkdir()
    for i in range(args.copies):
        shutil.copy(sample, folder / f"hand{i}.dcm")
    beat.phase = "worklist screening"
    screen.open_path(folder)
    screen.wait_idle(600)
    beat.phase = "switching images"
    for row in range(screen.worklist.rowCount()):
        screen.worklist.cellClicked.emit(row, 0)
        screen.wait_idle()
    _pump(0.1)
    screen.shutdown()
    faulthandler.cancel_dump_traceback_later()
    print(app.platformName(), "platform; longest UI-thread gap per phase (heartbeat every 10 ms):")
    for phase, gap in beat.gaps.items():
        print(f"  {phase}: {gap * 1000:.0f} ms")


if __name__ == "__main__":
    main()
