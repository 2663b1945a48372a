import pytest

from .conftest import SAMPLE_DICOM

pytest.importorskip("pytestqt")


def test_viewer_shows_the_sample_with_its_default_window(qtbot, tmp_path):
    from app.viewer import RESEARCH_NOTICE, RadiographViewer

    window = RadiographViewer()
    qtbot.addWidget(window)
    assert window.open_image(SAMPLE_DICOM)
    centre, width = window.radiograph.window
    assert window.display_levels() == pytest.approx((centre - width / 2, centre + width / 2))
    assert "1024×1280" in window.statusBar().currentMessage()
    assert RESEARCH_NOTICE in window.statusBar().currentMessage()


def test_viewer_reports_a_bad_file_and_keeps_the_image(qtbot, tmp_path):
    from app.viewer import RadiographViewer

    window = RadiographViewer()
    qtbot.addWidget(window)
    window.open_image(SAMPLE_DICOM)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG broken")
    assert not window.open_image(bad)
    assert "broken.png" in window.statusBar().currentMessage()
    assert window.radiograph is not None and window.radiograph.width == 1024


def test_screenshot_renders_at_least_1280x800(tmp_path):
    import cv2

    from app.main import main

    out = tmp_path / "shot.png"
    assert main([str(SAMPLE_DICOM), "--screenshot", str(out)]) == 0
    shot = cv2.imread(str(out))
    assert shot.shape[1] >= 1280 and shot.shape[0] >= 800
    assert shot.std() > 10  # the radiograph is drawn, not an empty window
