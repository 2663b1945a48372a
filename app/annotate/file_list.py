"""The image list: progress per rater, load errors, and an order by the segmenter's uncertainty."""

from __future__ import annotations

from dataclasses import dataclass, field

from PySide6 import QtCore, QtGui, QtWidgets

from osteo_engine.anatomy import BONES

COLUMNS = ("Image", "Done", "Raters", "Uncertainty")


@dataclass
class FileRow:
    image_id: str
    name: str
    done: dict[str, int] = field(default_factory=dict)  # rater -> bones annotated
    error: str | None = None
    uncertainty: float | None = None


class _Number(QtWidgets.QTableWidgetItem):
    """Sorts by the value stored under UserRole, not by text."""

    def __lt__(self, other):
        a, b = self.data(QtCore.Qt.UserRole), other.data(QtCore.Qt.UserRole)
        return (a if a is not None else -1.0) < (b if b is not None else -1.0)


class FileList(QtWidgets.QTableWidget):
    image_selected = QtCore.Signal(str)

    def __init__(self, parent=None):
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
        self.setSelectionMode(QtWidgets.QAbstractItemView.SingleSelection)
        self.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.verticalHeader().hide()
        self.horizontalHeader().setStretchLastSection(True)
        self.setSortingEnabled(True)
        self.rater = ""
        self._rows: dict[str, FileRow] = {}
        self.itemSelectionChanged.connect(self._emit_selection)

    def set_rows(self, rows: list[FileRow], rater: str) -> None:
        self.rater = rater
        self._rows = {r.image_id: r for r in rows}
        self.setSortingEnabled(False)
        self.setRowCount(len(rows))
        for i, row in enumerate(rows):
            self._fill(i, row)
        self.setSortingEnabled(True)
        self.resizeColumnsToContents()

    def update_row(self, row: FileRow) -> None:
        self._rows[row.image_id] = row
        index = self.row_of(row.image_id)
        if index is not None:
            sorting = self.isSortingEnabled()
            self.setSortingEnabled(False)
            self._fill(index, row)
            self.setSortingEnabled(sorting)

    def row(self, image_id: str) -> FileRow:
        return self._rows[image_id]

    def row_of(self, image_id: str) -> int | None:
        for i in range(self.rowCount()):
            item = self.item(i, 0)
            if item is not None and item.data(QtCore.Qt.UserRole) == image_id:
                return i
        return None

    def order(self) -> list[str]:
        return [self.item(i, 0).data(QtCore.Qt.UserRole) for i in range(self.rowCount())]

    def select(self, image_id: str) -> None:
        index = self.row_of(image_id)
        if index is not None:
            self.selectRow(index)

    def sort_by_uncertainty(self) -> None:
        self.sortItems(COLUMNS.index("Uncertainty"), QtCore.Qt.DescendingOrder)

    def _fill(self, i: int, row: FileRow) -> None:
        name = QtWidgets.QTableWidgetItem(row.name)
        name.setData(QtCore.Qt.UserRole, row.image_id)
        own = row.done.get(self.rater, 0)
        done = _Number(f"{own}/{len(BONES)}")
        done.setData(QtCore.Qt.UserRole, float(own))
        raters = QtWidgets.QTableWidgetItem(", ".join(f"{r} {n}/{len(BONES)}" for r, n in sorted(row.done.items())))
        uncertainty = _Number("" if row.uncertainty is None else f"{row.uncertainty:.3f}")
        uncertainty.setData(QtCore.Qt.UserRole, row.uncertainty)
        items = (name, done, raters, uncertainty)
        if row.error:
            for item in items:
                item.setForeground(QtGui.QBrush(QtGui.QColor(200, 40, 40)))
                item.setToolTip(row.error)
            raters.setText(row.error)
        for column, item in enumerate(items):
            self.setItem(i, column, item)

    def _emit_selection(self) -> None:
        rows = self.selectionModel().selectedRows()
        if rows:
            self.image_selected.emit(self.item(rows[0].row(), 0).data(QtCore.Qt.UserRole))
