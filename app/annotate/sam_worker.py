"""SAM off the UI thread (after ISAT's thin wrapper behind a worker).

One daemon thread owns the model. Prompt requests are answered newest-first (a request overtaken by a newer
one is dropped: the document would ignore its answer anyway); the crops of the image's bones are embedded
once the segmenter has found them, whenever no prompt is waiting. Results come back as Qt signals, which Qt
queues to the UI thread.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6 import QtCore

from osteo_engine import OsteoError, load_radiograph
from osteo_engine.click_prompts import ClickAnswer, answer_clicks
from osteo_engine.sam.clicks import crop_key
from osteo_engine.sam.crops import Crop
from osteo_engine.sam.predictor import BonePrompter


@dataclass
class PromptRequest:
    image_key: str
    pixels: np.ndarray
    prompts: object  # app.document.Prompts, handed back untouched
    bone: str  # the bone being annotated
    points: np.ndarray
    labels: np.ndarray
    box: np.ndarray | None
    prior: np.ndarray | None  # the segmenter's label map of the image, once it has answered


class SamWorker(QtCore.QObject):
    answered = QtCore.Signal(object, object)  # (Prompts, ClickAnswer)
    embedded = QtCore.Signal(str)  # image key
    busy_changed = QtCore.Signal(bool)
    failed = QtCore.Signal(str)

    def __init__(self, load_prompter: Callable[[], BonePrompter]):
        super().__init__()
        self._load_prompter = load_prompter
        self._prompter: BonePrompter | None = None
        self._lock = threading.Condition()
        self._prompt: PromptRequest | None = None
        self._prepare: deque[tuple[str, object, list | None]] = deque()  # (key, pixels array or path, crops)
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="sam-worker", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ requests (UI thread)
    def ask(self, request: PromptRequest) -> None:
        with self._lock:
            self._prompt = request
            self._lock.notify()

    def prepare(
        self, image_key: str, source: np.ndarray | str | Path, first: bool = True, crops: list[Crop] | None = None
    ) -> None:
        """Embed an image ahead of its prompts: the whole image, or these crops of it; `source` is its pixels
        or its file (loaded here)."""
        with self._lock:
            job = (image_key, source, crops)
            if first:
                self._prepare.appendleft(job)
            else:
                self._prepare.append(job)
            self._lock.notify()

    def set_loader(self, load_prompter: Callable[[], BonePrompter]) -> None:
        """Use another SAM model from the next request on."""
        with self._lock:
            self._load_prompter, self._prompter = load_prompter, None

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._lock.notify()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------ the thread
    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._stopped and self._prompt is None and not self._prepare:
                    self._lock.wait()
                if self._stopped:
                    return
                request, self._prompt = self._prompt, None
                job = None if request is not None else self._prepare.popleft()
            self.busy_changed.emit(True)
            try:
                if request is not None:
                    self._answer(request)
                else:
                    self._embed(*job)
            except (OsteoError, ValueError, RuntimeError, OSError) as exc:
                self.failed.emit(str(exc))
            finally:
                with self._lock:
                    idle = self._prompt is None and not self._prepare
                if idle:
                    self.busy_changed.emit(False)

    def _prompter_ready(self) -> BonePrompter:
        with self._lock:
            loader = self._load_prompter if self._prompter is None else None
        if loader is not None:
            prompter = loader()
            with self._lock:
                self._prompter = prompter
        return self._prompter

    def _answer(self, r: PromptRequest) -> None:
        answer: ClickAnswer = answer_clicks(
            self._prompter_ready(), r.pixels, r.prior, r.bone, r.points, r.labels, r.box, image_key=r.image_key
        )
        self.answered.emit(r.prompts, answer)

    def _embed(self, image_key: str, source, crops: list[Crop] | None) -> None:
        pixels = source if isinstance(source, np.ndarray) else load_radiograph(source).pixels
        prompter = self._prompter_ready()
        for crop in crops or [Crop(0, 0, pixels.shape[1], pixels.shape[0])]:
            with self._lock:
                if self._prompt is not None:  # a click waits: answer it first, embed the rest later
                    self._prepare.appendleft((image_key, pixels, crops[crops.index(crop) :] if crops else None))
                    return
            if not prompter.is_cached(crop_key(image_key, crop)):
                prompter.embed(crop.pixels(pixels), key=crop_key(image_key, crop))
        self.embedded.emit(image_key)
