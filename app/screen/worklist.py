"""A folder as a worklist: one row per radiograph, filled as each is screened, referrals first."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtWidgets

COLUMNS = ("image", "decision", "probability", "bones found", "uncertainty")
PRIORITY = {"refer": 0, "osteoporosis": 1, "normal": 2, "error": 3, "": 4}  # the order of the decision column


class _Item(QtWidgets.QTableWidgetItem):
    """A cell that sorts by its key (a number or the decision's priority), not its text."""

    def __init__(self, text: str, key):
        super().__init__(text)
        self.key = key

    def __lt__(self, other) -> bool:
        return (self.key, self.text()) < (getattr(other, "key", 0), other.text())


class Worklist(QtWidgets.QTableWidget):
    chosen = QtCore.Signal(object)  # the Path of the row clicked

    def __init__(self, parent=None):
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels([c.capitalize() for c in COLUMNS])
        self.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
        self.horizontalHeader().setStretchLastSection(True)
        self.paths: dict[str, Path] = {}
        self.cellClicked.connect(lambda row, _: self.chosen.emit(self.paths[self.item(row, 0).text()]))

    def fill(self, files: list[Path]) -> None:
        self.setSortingEnabled(False)
        self.setRowCount(0)
        self.paths = {p.name: p for p in files}
        for path in files:
            row = self.rowCount()
            self.insertRow(row)
            self.setItem(row, 0, _Item(path.name, 0))
            self.setItem(row, 1, _Item("waiting", PRIORITY[""]))

    def set_answer(self, path: Path, answer: dict) -> None:
        """Fill the row of `path` with its answer (or its error) and keep referrals first."""
        self.setSortingEnabled(False)
        row = next(r for r in range(self.rowCount()) if self.item(r, 0).text() == path.name)
        decision = "error" if "error" in answer else answer["decision"]
        found = sum(v["present"] for v in answer.get("bones", {}).values())
        cells = [
            _Item(decision, PRIORITY[decision]),
            _number(answer.get("probability")),
            _Item(str(found) if "bones" in answer else "", found),
            _number(answer.get("uncertainty")),
        ]
        for column, cell in enumerate(cells, start=1):
            cell.setToolTip(answer.get("error") or " ".join(answer.get("reasons", [])))
            self.setItem(row, column, cell)
        self.setSortingEnabled(True)
        self.sortItems(1, QtCore.Qt.AscendingOrder)

    def decisions(self) -> dict[str, str]:
        return {self.item(r, 0).text(): self.item(r, 1).text() for r in range(self.rowCount())}


def _number(value) -> _Item:
    return _Item("" if value is None else f"{value:.3f}", -1.0 if value is None else float(value))
