"""Before Qt starts: pick a platform plugin that can work, or say exactly which system library is missing.

Qt's xcb plugin (X11) links system libraries that a bare Linux machine often lacks; Qt then aborts with a
generic "could not load the Qt platform plugin" message. We ask the dynamic linker first.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def _xcb_binaries() -> list[Path]:
    import PySide6

    qt = Path(PySide6.__file__).parent / "Qt"
    return [
        p
        for p in (qt / "plugins" / "platforms" / "libqxcb.so", *sorted((qt / "lib").glob("libQt6XcbQpa.so*")))
        if p.exists()
    ]


def missing_libraries(binaries: list[Path]) -> list[str]:
    """Shared libraries that `ldd` cannot find for the given binaries (sonames, sorted)."""
    missing: set[str] = set()
    for binary in binaries:
        try:
            out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            return []  # no ldd: let Qt try and report for itself
        missing.update(m.group(1) for m in re.finditer(r"^\s*(\S+) => not found", out, re.M))
    return sorted(missing)


def debian_package(soname: str) -> str:
    """libxcb-cursor.so.0 -> libxcb-cursor0, libxkbcommon-x11.so.0 -> libxkbcommon-x11-0."""
    match = re.match(r"(lib.+?)\.so\.(\d+)", soname)
    if not match:
        return soname
    name, version = match.groups()
    return f"{name}-{version}" if name[-1].isdigit() else f"{name}{version}"


def platform_problem(screenshot: bool) -> str | None:
    """None when Qt can start; else a message naming what is missing. May choose `offscreen` for screenshots."""
    if not sys.platform.startswith("linux"):
        return None
    chosen = os.environ.get("QT_QPA_PLATFORM", "")
    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if not chosen and not has_display:
        if screenshot:
            os.environ["QT_QPA_PLATFORM"] = "offscreen"
            return None
        return (
            "no display found (DISPLAY and WAYLAND_DISPLAY are unset). Run on a desktop, or use "
            "QT_QPA_PLATFORM=offscreen with --screenshot."
        )
    if chosen.split(":")[0] not in ("", "xcb") or (not chosen and os.environ.get("WAYLAND_DISPLAY")):
        return None
    missing = missing_libraries(_xcb_binaries())
    if not missing:
        return None
    packages = " ".join(debian_package(m) for m in missing)
    return (
        f"Qt's X11 (xcb) platform plugin needs system libraries that are missing: {', '.join(missing)}. "
        f"On Debian/Ubuntu: sudo apt install {packages}"
    )
