"""Entry point of `osteo-app`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="osteo-app", description="Osteo workstation (research tool).")
    parser.add_argument("path", nargs="?", help="a radiograph, a folder of radiographs or an annotation project")
    parser.add_argument("--screenshot", metavar="OUT.png", help="render the window to a PNG and exit")
    parser.add_argument("--workspace", choices=("annotate", "screen", "jobs"), default="annotate")
    parser.add_argument("--runs", help="the Jobs panel's runs folder (default: runs/ beside the user's projects)")
    parser.add_argument(
        "--overlay",
        action="append",
        choices=("bones", "module", "uncertainty", "annotation"),
        default=[],
        help="Screen workspace: also show this overlay (repeatable), e.g. for a screenshot",
    )
    args = parser.parse_args(argv)

    from .platform import platform_problem

    problem = platform_problem(screenshot=bool(args.screenshot))
    if problem:
        print(f"osteo-app: {problem}", file=sys.stderr)
        return 2
    from PySide6 import QtWidgets

    from .window import MainWindow, grab

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    window = MainWindow(runs=Path(args.runs) if args.runs else None)
    if args.path and not window.open_path(args.path, args.workspace):
        print(f"osteo-app: {window.statusBar().currentMessage()}", file=sys.stderr)
    window.show_workspace(args.workspace)
    for name in args.overlay:
        window.screen.panel.shown[name].setChecked(True)
    if args.screenshot:
        window.screen.wait_idle()  # the screened image, not "Screening…"
        ok = grab(window, args.screenshot)
        window.close()
        return 0 if ok else 1
    window.show()
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
