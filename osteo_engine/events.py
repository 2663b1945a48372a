"""Progress events of long jobs, and their cancellation.

A job reports what it does through one callback that takes `Event`s: `start`, `progress` (done of total),
`epoch` (with its metrics), `checkpoint` (a file written), `done` (with the run folder or result), `error`
(with the sentence) and `cancelled` (stopped when asked, its last checkpoint kept). The CLI draws them as
progress bars on stderr or, with `--progress-json`, writes each as one JSON line; the app's Jobs panel reads
those lines. A `CancelToken` stops a job at its next step with `Cancelled`; what the job had saved (the last
epoch's checkpoint and resume state) stays, and `--resume` continues it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from .errors import OsteoError

EVENT_KINDS = ("start", "progress", "epoch", "checkpoint", "done", "error", "cancelled")


@dataclass(frozen=True)
class Event:
    kind: str  # one of EVENT_KINDS
    task: str = ""  # what the job does: "segmentation", "pretraining", "patches", ...
    done: int | None = None  # progress: units done of `total`
    total: int | None = None
    epoch: int | None = None
    metrics: dict = field(default_factory=dict)
    path: str | None = None  # checkpoint: the file; done: the run folder or result
    message: str = ""  # error: the sentence

    def __post_init__(self):
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown event {self.kind!r}")

    def to_json(self) -> dict:
        """{"event": kind, ...} with the fields that are set."""
        out = {"event": self.kind}
        out.update({k: v for k, v in asdict(self).items() if k != "kind" and v not in (None, "", {})})
        return out


Events = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The callback of a job nobody watches."""


class Cancelled(OsteoError):
    """A job was asked to stop; its last checkpoint is kept."""


class CancelToken:
    """Set from anywhere (a signal handler, the GUI thread); a job checks it at every step."""

    def __init__(self):
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self, what: str = "the job") -> None:
        """Raise `Cancelled` once `cancel` was called."""
        if self._event.is_set():
            raise Cancelled(f"{what} was cancelled; the last checkpoint is kept, and --resume continues it.")
