import pytest

from app import platform


@pytest.mark.parametrize(
    "soname, package",
    [
        ("libxcb-cursor.so.0", "libxcb-cursor0"),
        ("libxcb-icccm.so.4", "libxcb-icccm4"),
        ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
    ],
)
def test_missing_sonames_map_to_the_debian_packages_that_provide_them(soname, package):
    assert platform.debian_package(soname) == package


def test_a_missing_xcb_library_is_named_instead_of_qts_generic_abort(monkeypatch):
    monkeypatch.setattr(platform.sys, "platform", "linux")
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(platform, "missing_libraries", lambda binaries: ["libxcb-cursor.so.0"])
    message = platform.platform_problem(screenshot=False)
    assert "libxcb-cursor.so.0" in message and "apt install libxcb-cursor0" in message
    monkeypatch.setattr(platform, "missing_libraries", lambda binaries: [])
    assert platform.platform_problem(screenshot=False) is None


def test_screenshots_without_a_display_go_offscreen(monkeypatch):
    monkeypatch.setattr(platform.sys, "platform", "linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert "no display" in platform.platform_problem(screenshot=False)
    assert platform.platform_problem(screenshot=True) is None
    assert platform.os.environ["QT_QPA_PLATFORM"] == "offscreen"


def test_ldd_reports_what_this_machine_lacks_for_real_binaries():
    binaries = platform._xcb_binaries()
    assert binaries, "PySide6 ships the xcb plugin"
    missing = platform.missing_libraries(binaries)
    assert all(".so" in name for name in missing)


def test_python_slots_do_not_leak_references_to_none(qtbot):
    """PySide6 6.12.0 decremented None once per slot call, so a busy UI (a timer, mouse moves) crashed the
    interpreter after a few thousand calls; the pinned version must not."""
    import sys

    from PySide6 import QtCore, QtWidgets

    calls = []
    timer = QtCore.QTimer(interval=0)
    timer.timeout.connect(lambda: calls.append(1))
    before = sys.getrefcount(None)
    timer.start()
    while len(calls) < 3000:
        QtWidgets.QApplication.processEvents()
    timer.stop()
    assert sys.getrefcount(None) - before > -500
