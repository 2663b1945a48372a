"""The Screen workspace driven like a user: the sample screened, overlays, a child's age, a worklist, bad files."""

import json
import shutil

import numpy as np
import pytest

from ..conftest import SAMPLE_DICOM

pytest.importorskip("pytestqt")
from PySide6 import QtCore  # noqa: E402

from app.settings import AppSettings  # noqa: E402
from app.window import MainWindow  # noqa: E402

pytestmark = pytest.mark.slow  # the bundled models screen each image in seconds


@pytest.fixture
def screen(qtbot, tmp_path):
    store = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.IniFormat)
    window = MainWindow(AppSettings(rater="alice"), store)
    qtbot.addWidget(window)
    window.show_workspace("screen")
    yield window.screen
    window.screen.shutdown()
    window.annotate.shutdown()


def test_the_sample_on_screen_has_the_numbers_of_osteo_screen(screen, capsys):
    from training_cli.main import main

    assert main(["screen", str(SAMPLE_DICOM), "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)
    assert screen.open_path(SAMPLE_DICOM) and screen.wait_idle()
    shown = screen.current.result.to_json()
    for key in ("decision", "probability", "uncertainty", "threshold", "bones", "population", "reasons"):
        assert shown[key] == expected[key], key
    assert screen.panel.decision.text() == expected["decision"].upper()
    assert f"probability {expected['probability']:.2f}" in screen.panel.summary.text()
    assert "Research tool" in screen.panel.widget().findChildren(type(screen.panel.decision))[-1].text()
    # radiogrammetry: the command's indices in the panel, the edges on the image, a profile for a clicked bone
    assert shown["radiogrammetry"] == expected["radiogrammetry"]
    assert f"MCI {expected['radiogrammetry']['MCI_M2_M4']:.2f}" in screen.panel.indices.text()
    assert len(screen.canvas.edges["outer"].data) == len(screen.canvas.edges["inner"].data) > 0
    ys, xs = np.nonzero(screen.current.segmentation.labels == 5)  # M3
    assert screen.show_profile_at(int(np.median(xs)), int(np.median(ys))) and screen.panel.profile.isVisibleTo(
        screen.panel
    )
    assert not screen.show_profile_at(0, 0)  # background: no profile


def test_overlays_toggle_and_each_module_can_be_shown_with_its_weight(screen):
    assert screen.open_path(SAMPLE_DICOM) and screen.wait_idle()
    modules = screen.current.segmentation.modules
    assert screen.panel.modules.count() == len(modules) and "π = " in screen.panel.modules.itemText(0)
    screen.panel.shown["module"].setChecked(True)
    screen.panel.modules.setCurrentIndex(1)
    assert screen.canvas.is_shown("module")
    assert np.array_equal(screen.canvas.overlays["module"].image, modules[1].labels)
    screen.panel.shown["bones"].setChecked(False)
    assert not screen.canvas.is_shown("bones")
    screen.panel.shown["uncertainty"].setChecked(True)
    screen.panel.kinds.setCurrentIndex(screen.panel.kinds.findData("mutual_information"))
    assert np.array_equal(screen.canvas.overlays["uncertainty"].image, screen.current.segmentation.mutual_information)
    error = screen.current.segmentation.error  # the bundled segmenter's learned error map, a choice of its own
    item = screen.panel.kinds.model().item(screen.panel.kinds.findData("error"))
    assert item.isEnabled() == (error is not None)
    if error is not None:
        screen.panel.kinds.setCurrentIndex(screen.panel.kinds.findData("error"))
        assert np.array_equal(screen.canvas.overlays["uncertainty"].image, error)
    screen.panel.opacity["uncertainty"].setValue(20)
    assert screen.canvas.overlays["uncertainty"].opacity() == pytest.approx(0.2)


def test_a_childs_age_gives_refer_with_the_reason(screen):
    assert screen.open_path(SAMPLE_DICOM) and screen.wait_idle()
    screen.panel.age.setValue(9)
    screen.panel._emit_person()
    assert screen.wait_idle()
    assert screen.panel.decision.text() == "REFER"
    assert "9 years (given) is below the model's population" in screen.panel.reasons.text()


def test_a_folder_is_a_worklist_with_referrals_first_and_a_corrupt_file_says_why(screen, tmp_path):
    folder = tmp_path / "worklist"
    folder.mkdir()
    shutil.copy(SAMPLE_DICOM, folder / "adult.dcm")
    (folder / "broken.dcm").write_bytes(b"DICM" + b"\0" * 300)
    messages = []
    screen.message.connect(messages.append)
    assert screen.open_path(folder) and screen.wait_idle()
    decisions = screen.worklist.decisions()
    assert decisions["adult.dcm"] in ("normal", "osteoporosis", "refer") and decisions["broken.dcm"] == "error"
    assert screen.worklist.item(screen.worklist.rowCount() - 1, 0).text() == "broken.dcm"  # errors sort last
    assert screen.open_image(folder / "broken.dcm") and screen.wait_idle()
    assert screen.panel.decision.text() == "No answer" and "broken.dcm" in messages[-1]


def test_the_report_and_the_json_carry_the_answer_and_no_patient_unless_asked(screen, tmp_path, capsys):
    from app.screen.report import report_lines
    from training_cli.main import main

    assert screen.open_path(SAMPLE_DICOM) and screen.wait_idle()
    answer = screen.current.result.to_json()
    lines = "\n".join(report_lines(answer, screen.facts))
    assert "PHANTOM^HAND" not in lines and "PHANTOM-0000" not in lines  # the sample's name and ID
    assert answer["decision"].upper() in lines and "Research tool" in lines and "M2 " in lines
    assert "radiogrammetry (mm): MCI" in lines
    assert "PHANTOM^HAND" in "\n".join(report_lines(answer, screen.facts, include_patient=True))
    pdf = screen.export_pdf(tmp_path / "report.pdf")
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 20_000  # the image is in it
    saved = json.loads(screen.export_json(tmp_path / "answer.json").read_text())
    assert main(["screen", str(SAMPLE_DICOM), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert saved.pop("timings_s").keys() == printed.pop("timings_s").keys()  # the same steps, timed apart
    assert saved == printed


def test_recent_files_remember_what_was_opened_and_forget_what_is_gone(qtbot, tmp_path):
    store = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.IniFormat)
    window = MainWindow(AppSettings(), store)
    qtbot.addWidget(window)
    copy = tmp_path / "hand.dcm"
    shutil.copy(SAMPLE_DICOM, copy)
    assert window.open_path(copy, "screen") and window.screen.wait_idle()
    assert not window.open_path(tmp_path / "missing.dcm", "screen")  # a failed open is not remembered
    again = MainWindow(AppSettings(), store)  # the next session's window
    qtbot.addWidget(again)
    again._fill_recent()
    assert [a.text() for a in again.recent_menu.actions()] == ["hand.dcm  (screen)"]
    again.recent_menu.actions()[0].trigger()  # reopens it in the Screen workspace
    assert again.tabs.currentWidget() is again.screen and again.screen.wait_idle()
    assert again.screen.path == copy.resolve() and again.screen.current is not None
    copy.unlink()
    assert again.recent.entries() == []
    for w in (window, again):
        w.screen.shutdown()
        w.annotate.shutdown()
