"""The Annotate workspace driven like a user: mouse gestures, shortcuts, saving and bad files (offscreen)."""

import shutil

import cv2
import numpy as np
import pytest

from ..conftest import SAMPLE_DICOM

pytest.importorskip("pytestqt")
from PySide6 import QtCore, QtGui, QtWidgets  # noqa: E402

from app.settings import AppSettings  # noqa: E402
from app.window import RESEARCH_NOTICE, MainWindow  # noqa: E402
from osteo_engine.anatomy import BONE_IDS  # noqa: E402
from osteo_engine.annotations import AnnotationProject  # noqa: E402

SAM_TIMEOUT_MS = 60_000


@pytest.fixture
def truth():
    from osteo_engine.phantom import generate_subject

    return generate_subject(0, 0, (1024, 1280), raters=0).truth  # the bundled sample's subject


@pytest.fixture
def make_window(qtbot, tmp_path):
    windows = []

    def make(rater="alice"):
        store = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.IniFormat)
        window = MainWindow(AppSettings(rater=rater), store)
        qtbot.addWidget(window)
        window.resize(1400, 900)
        window.show()
        qtbot.waitExposed(window)
        window.activateWindow()
        qtbot.waitUntil(window.isActiveWindow, timeout=5000)  # shortcuts reach the active window only
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.annotate.shutdown()


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "radiographs"
    images.mkdir()
    shutil.copy(SAMPLE_DICOM, images / "hand1.dcm")
    return images


def _mouse(widget, kind, pos, button, buttons, modifiers=QtCore.Qt.NoModifier):
    event = QtGui.QMouseEvent(
        kind, QtCore.QPointF(pos), QtCore.QPointF(widget.mapToGlobal(pos)), button, buttons, modifiers
    )
    QtWidgets.QApplication.sendEvent(widget, event)


def drag(canvas, start_xy, end_xy, steps=8, modifiers=QtCore.Qt.NoModifier):
    """Press, move and release the left button along image pixels start → end (pyqtgraph drops moves
    closer than its rate limit, so the moves are spaced like a hand's)."""
    port = canvas.viewport()
    left = QtCore.Qt.LeftButton
    a, b = canvas.widget_point(*start_xy), canvas.widget_point(*end_xy)
    _mouse(port, QtCore.QEvent.MouseButtonPress, a, left, left, modifiers)
    for t in np.linspace(0, 1, steps + 1)[1:]:
        p = QtCore.QPoint(round(a.x() + t * (b.x() - a.x())), round(a.y() + t * (b.y() - a.y())))
        QtCore.QThread.msleep(20)
        _mouse(port, QtCore.QEvent.MouseMove, p, QtCore.Qt.NoButton, left, modifiers)
    _mouse(port, QtCore.QEvent.MouseButtonRelease, b, left, QtCore.Qt.NoButton, modifiers)


def click(qtbot, canvas, xy, button=QtCore.Qt.LeftButton):
    qtbot.mouseClick(canvas.viewport(), button, pos=canvas.widget_point(*xy))


def bbox(mask):
    ys, xs = np.nonzero(mask)
    return xs.min(), ys.min(), xs.max(), ys.max()


def dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


@pytest.mark.slow
def test_a_dragged_box_and_clicks_make_the_chosen_bones_mask(qtbot, make_window, folder, truth):
    window = make_window()
    ws = window.annotate
    assert ws.open_folder(folder) and ws.doc is not None
    qtbot.keyClick(window, QtCore.Qt.Key_4)  # M2
    assert ws.doc.bone == BONE_IDS["M2"]
    x0, y0, x1, y1 = bbox(truth == BONE_IDS["M2"])
    with qtbot.waitSignal(ws.sam.answered, timeout=SAM_TIMEOUT_MS):
        drag(ws.canvas, (x0 - 4, y0 - 4), (x1 + 4, y1 + 4))
    qtbot.waitUntil(lambda: ws.doc.working.any(), timeout=5000)
    m2 = truth == BONE_IDS["M2"]
    # LiteMedSAM's box answer on this oblique phantom bone: most of it, and little else
    assert dice(ws.doc.working, m2) > 0.5 and (ws.doc.working & m2).sum() > 0.7 * ws.doc.working.sum()
    qtbot.keyClick(window, QtCore.Qt.Key_Return)
    assert ((ws.doc.labels == BONE_IDS["M2"]) == ws.doc.working).all()
    assert ws.files.row(ws.image_id).done == {"alice": 1}

    qtbot.keyClick(window, QtCore.Qt.Key_5)  # M3 from a single click, found with the segmenter's bones
    qtbot.waitUntil(lambda: ws.prior is not None, timeout=SAM_TIMEOUT_MS)
    ys, xs = np.nonzero(truth == BONE_IDS["M3"])
    with qtbot.waitSignal(ws.sam.answered, timeout=SAM_TIMEOUT_MS):
        click(qtbot, ws.canvas, (np.median(xs), np.median(ys)))
    qtbot.waitUntil(lambda: ws.doc.working.any(), timeout=5000)
    assert ws.doc.prompts.points and ws.doc.prompts.points[0][2]
    assert ws.panel.prompt_note.text() == "From the segmenter's M3."
    assert dice(ws.doc.working, truth == BONE_IDS["M3"]) > 0.6
    # a right click is a negative point, kept with the first
    with qtbot.waitSignal(ws.sam.answered, timeout=SAM_TIMEOUT_MS):
        click(qtbot, ws.canvas, (np.median(xs) + 60, np.median(ys)), QtCore.Qt.RightButton)
    assert [p[2] for p in ws.doc.prompts.points] == [True, False]
    assert RESEARCH_NOTICE in window.statusBar().currentMessage()


def _sweep(canvas, dabs, radius, value):
    """The painted pixels, computed independently: a disc at every dab and a band between consecutive ones."""
    points = [(int(round(x)), int(round(y))) for x, y in dabs]
    for i, p in enumerate(points):
        cv2.circle(canvas, p, radius, value, -1)
        if i:
            cv2.line(canvas, points[i - 1], p, value, 2 * radius + 1)


def test_brush_and_eraser_strokes_change_exactly_the_painted_pixels(qtbot, make_window, folder):
    window = make_window()
    ws = window.annotate
    ws.open_folder(folder)
    qtbot.keyClick(window, QtCore.Qt.Key_B)
    assert ws.canvas.mode == "brush"
    dabs = []
    ws.canvas.stroke_painted.connect(lambda x, y: dabs.append((x, y)))
    drag(ws.canvas, (300, 400), (420, 460))
    expected = np.zeros(ws.doc.shape, np.uint8)
    _sweep(expected, dabs, ws.brush_radius, 1)
    assert len(dabs) > 2 and (ws.doc.working == expected.astype(bool)).all()
    qtbot.keyClick(window, QtCore.Qt.Key_E)
    dabs.clear()
    drag(ws.canvas, (320, 400), (330, 420), steps=3)
    _sweep(expected, dabs, ws.brush_radius, 0)
    assert (ws.doc.working == expected.astype(bool)).all()
    assert not ws.doc.labels.any()  # strokes wait for Enter
    qtbot.keyClick(window, QtCore.Qt.Key_Z, QtCore.Qt.ControlModifier)
    qtbot.keyClick(window, QtCore.Qt.Key_Z, QtCore.Qt.ControlModifier)
    assert not ws.doc.working.any()
    qtbot.keyClick(window, QtCore.Qt.Key_Z, QtCore.Qt.ControlModifier | QtCore.Qt.ShiftModifier)
    assert ws.doc.working.any() and ws.doc.history() == ["brush"]


def test_save_close_reopen_gives_identical_masks_and_raters_stay_apart(qtbot, make_window, folder):
    window = make_window("alice")
    ws = window.annotate
    ws.open_folder(folder)
    qtbot.keyClick(window, QtCore.Qt.Key_2)
    qtbot.keyClick(window, QtCore.Qt.Key_B)
    drag(ws.canvas, (500, 900), (520, 1100))
    qtbot.keyClick(window, QtCore.Qt.Key_Return)
    qtbot.keyClick(window, QtCore.Qt.Key_3)
    drag(ws.canvas, (700, 700), (760, 640))
    qtbot.keyClick(window, QtCore.Qt.Key_Enter)
    saved = ws.doc.labels.copy()
    assert set(np.unique(saved)) == {0, 2, 3}
    window.close()

    again = make_window("alice").annotate
    again.open_folder(folder)
    assert (again.doc.labels == saved).all()
    bob = make_window("bob").annotate
    bob.open_folder(folder)
    assert not bob.doc.labels.any()  # another rater starts from nothing
    assert bob.files.row(bob.image_id).done == {"alice": 2}
    project = AnnotationProject.open(folder)
    assert project.raters(bob.image_id) == ["alice"]


def test_a_corrupt_file_is_listed_with_its_error_and_the_app_goes_on(qtbot, make_window, folder):
    (folder / "broken.png").write_bytes(b"\x89PNG this is not an image")
    (folder / "volume.dcm").write_bytes(b"nonsense")
    window = make_window()
    ws = window.annotate
    assert ws.open_folder(folder)
    qtbot.waitUntil(lambda: ws.files.row("broken").error is not None, timeout=20_000)
    index = ws.files.row_of("broken")
    assert "broken.png" in ws.files.item(index, 0).toolTip()
    assert not ws.open_image("broken")
    assert ws.image_id is not None and ws.image_id != "broken"  # the good image stays open
    assert "broken.png" in window.statusBar().currentMessage()


def test_shortcuts_choose_bones_tools_and_images(qtbot, make_window, folder):
    shutil.copy(SAMPLE_DICOM, folder / "hand2.dcm")
    window = make_window()
    ws = window.annotate
    ws.open_folder(folder)
    for key, bone in zip((QtCore.Qt.Key_1, QtCore.Qt.Key_7, QtCore.Qt.Key_3), (1, 7, 3)):
        qtbot.keyClick(window, key)
        assert ws.doc.bone == bone and ws.panel.bone_buttons[bone].isChecked()
    for key, mode in ((QtCore.Qt.Key_B, "brush"), (QtCore.Qt.Key_E, "erase"), (QtCore.Qt.Key_P, "prompt")):
        qtbot.keyClick(window, key)
        assert ws.canvas.mode == mode
    first = ws.image_id
    qtbot.keyClick(window, QtCore.Qt.Key_PageDown)
    assert ws.image_id != first
    qtbot.keyClick(window, QtCore.Qt.Key_PageUp)
    assert ws.image_id == first
    lo, hi = ws.canvas.levels()
    drag(ws.canvas, (300, 300), (400, 300), modifiers=QtCore.Qt.ShiftModifier)  # window/level
    assert ws.canvas.levels()[1] - ws.canvas.levels()[0] > hi - lo
    assert not ws.doc.history()  # window/level is not an edit


def test_screenshot_renders_both_workspaces_at_least_1280x800(tmp_path):
    from app.main import main

    for workspace in ("annotate", "screen"):
        out = tmp_path / f"{workspace}.png"
        assert main([str(SAMPLE_DICOM), "--screenshot", str(out), "--workspace", workspace]) == 0
        shot = cv2.imread(str(out))
        assert shot.shape[1] >= 1280 and shot.shape[0] >= 800
    assert cv2.imread(str(tmp_path / "annotate.png")).std() > 10


def test_propose_fills_only_unannotated_bones_and_ranking_orders_by_uncertainty(
    qtbot, make_window, folder, tiny_segmenter
):
    shutil.copy(SAMPLE_DICOM, folder / "hand2.dcm")
    window = make_window()
    window.apply_settings(AppSettings(rater="alice", segmenter=str(tiny_segmenter)))
    ws = window.annotate
    ws.open_folder(folder)
    qtbot.keyClick(window, QtCore.Qt.Key_B)
    drag(ws.canvas, (100, 100), (140, 100))  # the ulna, wherever the model puts it
    qtbot.keyClick(window, QtCore.Qt.Key_Return)
    ulna = ws.doc.labels == 1
    job_done = lambda: not ws.jobs  # noqa: E731
    ws.propose()
    qtbot.waitUntil(job_done, timeout=60_000)
    filled = set(np.unique(ws.doc.labels)) - {0, 1}
    assert filled, "the segmenter proposed bones"
    assert ((ws.doc.labels == 1) == ulna).all()  # the expert's bone is untouched
    saved, _ = AnnotationProject.open(folder).load(ws.image_id)
    assert (saved.raters[0].labels == ws.doc.labels).all()  # a proposal is saved like any accepted change
    qtbot.keyClick(window, QtCore.Qt.Key_Z, QtCore.Qt.ControlModifier)
    assert set(np.unique(ws.doc.labels)) == {0, 1}

    ws.rank_by_uncertainty()
    qtbot.waitUntil(job_done, timeout=60_000)
    values = [ws.files.row(i).uncertainty for i in ws.files.order()]
    assert all(v is not None for v in values) and values == sorted(values, reverse=True)
    assert ws.ranking_score == "combined"  # with SAM at hand, the instability and SAM's second opinion


def test_ranking_reads_the_instability_alone_when_sam_cannot_be_loaded(qtbot, folder, tiny_segmenter):
    from app.annotate.workspace import AnnotateWorkspace
    from osteo_engine.errors import ConfigError

    def no_sam():
        raise ConfigError("a vit_b model needs its checkpoint file (no weights are downloaded).")

    ws = AnnotateWorkspace(AppSettings(rater="alice", segmenter=str(tiny_segmenter)), prompter_loader=no_sam)
    qtbot.addWidget(ws)
    messages = []
    ws.message.connect(messages.append)
    ws.open_folder(folder)
    ws.rank_by_uncertainty()
    qtbot.waitUntil(lambda: not ws.jobs, timeout=60_000)
    assert ws.ranking_score == "instability" and ws.files.row(ws.files.order()[0]).uncertainty is not None
    assert any("instability alone: SAM could not be loaded" in m for m in messages)
    ws.shutdown()


def test_settings_round_trip_and_the_dialog_refuses_unusable_choices(qtbot, tmp_path):
    from app.settings import SettingsDialog
    from osteo_engine.errors import AnnotationError

    store = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.IniFormat)
    chosen = AppSettings(rater="dr_kim", opacity=0.7, colours={**AppSettings().colours, "M1": (1, 2, 3)})
    chosen.save(store)
    again = AppSettings.load(store)
    assert again.rater == "dr_kim" and again.colours["M1"] == (1, 2, 3) and again.opacity == 0.7
    store.setValue("settings", "{not json")
    assert AppSettings.load(store) == AppSettings()  # unreadable settings fall back to the defaults
    dialog = SettingsDialog(again)
    qtbot.addWidget(dialog)
    dialog.kind.setCurrentText("vit_b")
    with pytest.raises(AnnotationError, match="checkpoint"):
        dialog.result_settings()
    dialog.checkpoint.setText(str(tmp_path / "missing.pth"))
    with pytest.raises(AnnotationError, match="no checkpoint"):
        dialog.result_settings()
    dialog.kind.setCurrentText("litemedsam")
    dialog.checkpoint.setText("")
    dialog.rater.setText("  ")
    with pytest.raises(AnnotationError, match="rater"):
        dialog.result_settings()
    dialog.rater.setText(" dr lee ")
    assert dialog.result_settings().rater == "dr lee"  # kept as typed: the project tells "dr lee" from "dr_lee"


def test_exports_from_the_menu_write_files(qtbot, make_window, folder, tmp_path):
    from osteo_engine.exports.png import export_png

    window = make_window()
    ws = window.annotate
    ws.open_folder(folder)
    qtbot.keyClick(window, QtCore.Qt.Key_B)
    drag(ws.canvas, (300, 400), (340, 420))
    qtbot.keyClick(window, QtCore.Qt.Key_Return)
    written = window.export_to("PNG", export_png, tmp_path / "png")
    assert len(written) == 1 and written[0].exists()
    coco = window.export_to("COCO", window._coco, tmp_path / "coco")
    assert coco[0].name == "annotations_coco.json" and coco[0].exists()


def test_dicom_seg_export_from_the_window_is_de_identified_unless_the_box_is_ticked(
    qtbot, make_window, folder, tmp_path
):
    import pydicom

    from app.window import seg_export_dialog

    dialog = seg_export_dialog()
    qtbot.addWidget(dialog)
    assert not dialog.checkBox().isChecked()  # de-identified unless someone ticks the box
    window = make_window()
    window.annotate.open_folder(folder)
    qtbot.keyClick(window, QtCore.Qt.Key_B)
    drag(window.annotate.canvas, (300, 400), (340, 420))
    qtbot.keyClick(window, QtCore.Qt.Key_Return)
    source = pydicom.dcmread(folder / "hand1.dcm")
    for keep in (False, True):
        written = window.export_seg_to(tmp_path / f"seg{keep}", keep_patient=keep)
        assert len(written) == 1
        assert (pydicom.dcmread(written[0]).PatientID == source.PatientID) is keep
