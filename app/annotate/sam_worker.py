"""SAM off the UI thread (after ISAT's thin wrapper behind a worker).

One daemon thread owns the model. Prompt requests are answered newest-first (a request overtaken by a newer
one is dropped: the document would ignore its answer anyway); embeddings of the image just opened and of the
next one are prepared when no prompt is waiting. Results come back as Qt signals, which Qt queues to the
UI thread.
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
from osteo_engine.sam.clicks import PromptAnswer, crop_key, segment_clicks
from osteo_engine.sam.crops import Crop
from osteo_engine.sam.predictor import BonePrompter


@dataclass
class PromptRequest:
    image_key: str
    pixels: np.ndarray
    prompts: object  # app.document.Prompts, handed back untouched
    points: np.ndarray
    labels: np.ndarray
    box: np.ndarray | None
    mask_input: np.ndarray | None
    crop: Crop | None


class SamWorker(QtCore.QObject):
    answered = QtCore.Signal(object, object)  # (Prompts, PromptAnswer)
    embedded = QtCore.Signal(str)  # image key
    busy_changed = QtCore.Signal(bool)
    failed = QtCore.Signal(str)

    def __init__(self, load_prompter: Callable[[], BonePrompter]):
        super().__init__()
        self._load_prompter = load_prompter
        self._prompter: BonePrompter | None = None
        self._lock = threading.Condition()
        self._prompt: PromptRequest | None = None
        self._prepare: deque[tuple[str, object]] = deque()  # (key, pixels array or path)
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="sam-worker", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ requests (UI thread)
    def ask(self, request: PromptRequest) -> None:
        with self._lock:
            self._prompt = request
            self._lock.notify()

    def prepare(self, image_key: str, source: np.ndarray | str | Path, first: bool = True) -> None:
        """Embed a whole image ahead of its prompts; `source` is its pixels or its file (loaded here)."""
        with self._lock:
            if first:
                self._prepare.appendleft((image_key, source))
            else:
                self._prepare.append((image_key, source))
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
        answer: PromptAnswer = segment_clicks(
            self._prompter_ready(), r.pixels, r.points, r.labels, r.box, r.mask_input, r.crop, image_key=r.image_key
        )
        self.answered.emit(r.prompts, answer)

    def _embed(self, image_key: str, source) -> None:
        pixels = source if isinstance(source, np.ndarray) else load_radiograph(source).pixels
        whole = Crop(0, 0, pixels.shape[1], pixels.shape[0])
        prompter = self._prompter_ready()
        if not prompter.is_cached(crop_key(image_key, whole)):
            prompter.embed(whole.pixels(pixels), key=crop_key(image_key, whole))
        self.embedded.emit(image_key)
