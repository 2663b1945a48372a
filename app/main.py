"""Entry point of `osteo-app`."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="osteo-app", description="Osteo workstation (research tool).")
    parser.add_argument("image", nargs="?", help="radiograph to open")
    parser.add_argument("--screenshot", metavar="OUT.png", help="render the window to a PNG and exit")
    args = parser.parse_args(argv)
    from PySide6 import QtWidgets

    from .viewer import RadiographViewer, grab

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    window = RadiographViewer()
    if args.image and not window.open_image(args.image):
        print(f"osteo-app: {window.statusBar().currentMessage()}", file=sys.stderr)
    if args.screenshot:
        return 0 if grab(window, args.screenshot) else 1
    window.show()
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
