"""A screenshot of the Annotate workspace mid-annotation, for the docs.

Four bones are accepted from SAM box prompts and a fifth is being edited (its box drawn, not yet
accepted). The boxes come from the atlas landmarks when given (`--landmarks`), else from the bundled
segmenter's proposal. Settings and the project go to a scratch folder.

    .venv/bin/python docs/make_screenshot.py ../shared/data/hand-atlas/images/3143.jpg build/annotate-atlas.png \
        --landmarks ../shared/data/hand-atlas/landmarks.csv
    .venv/bin/python docs/make_screenshot.py resources/samples/phantom_hand.dcm docs/screenshots/annotate.png
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ACCEPTED = (1, 2, 3, 4)  # ulna, radius, M1, M2
EDITING = 5  # M3


def bone_boxes(pixels: np.ndarray, image: Path, landmarks: str | None) -> dict[int, np.ndarray]:
    from osteo_engine.anatomy import BONES

    if landmarks:
        from osteo_engine.autoannotate import landmark_prompts
        from osteo_engine.landmarks import read_landmarks

        prompts = landmark_prompts(read_landmarks(landmarks)[image.name], pixels.shape)
        return {v: prompts[name].box for v, name in BONES.items()}
    from osteo_engine.segmentation.predict import load_segmenter, segment

    labels = segment(pixels, load_segmenter()).labels
    boxes = {}
    for value in BONES:
        ys, xs = np.nonzero(labels == value)
        if len(xs):
            boxes[value] = np.array([xs.min(), ys.min(), xs.max(), ys.max()], float)
    return boxes


def wait_for_sam(app, workspace, timeout: float = 60.0) -> None:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        app.processEvents()
        if workspace.doc.working.any() and workspace.panel.sam_state.text() == "SAM: ready":
            return
        time.sleep(0.02)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("image")
    parser.add_argument("out")
    parser.add_argument("--landmarks")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="osteo-shot-"))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["XDG_CONFIG_HOME"], os.environ["XDG_DATA_HOME"] = str(scratch / "config"), str(scratch / "data")
    from PySide6 import QtCore, QtWidgets

    from app.document import Prompts
    from app.settings import AppSettings
    from app.window import MainWindow, grab

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    window = MainWindow(AppSettings(rater="demo"), QtCore.QSettings(str(scratch / "s.ini"), QtCore.QSettings.IniFormat))
    window.show()
    if not window.open_path(args.image):
        print(window.statusBar().currentMessage(), file=sys.stderr)
        return 1
    ws = window.annotate
    boxes = bone_boxes(ws.radiograph.pixels, Path(args.image), args.landmarks)
    for value in ACCEPTED:
        if value in boxes:
            ws.select_bone(value)
            ws.prompt(Prompts((), tuple(boxes[value])))
            wait_for_sam(app, ws)
            ws.accept()
    if EDITING in boxes:
        ws.select_bone(EDITING)
        ws.prompt(Prompts((), tuple(boxes[EDITING])))
        wait_for_sam(app, ws)
    ok = grab(window, args.out)
    window.close()
    print(f"wrote {args.out}" if ok else f"could not write {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
