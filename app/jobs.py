"""Background jobs: an engine function on a worker thread, reporting back through Qt signals.

The function receives a `report(item)` callable for progress and a `cancelled()` callable to poll; its
return value arrives as `finished`, an engine error as `failed` with its message.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable

from PySide6 import QtCore

from osteo_engine import OsteoError


class BackgroundJob(QtCore.QObject):
    progressed = QtCore.Signal(object)
    finished = QtCore.Signal(object)
    failed = QtCore.Signal(str)

    def __init__(self, name: str, work: Callable[[Callable[[object], None], Callable[[], bool]], object]):
        super().__init__()
        self.name = name
        self._work = work
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"job-{name}", daemon=True)

    def start(self) -> BackgroundJob:
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            result = self._work(self.progressed.emit, self._cancel.is_set)
        except (OsteoError, OSError, ValueError) as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # an unexpected bug must reach the user, not kill the thread silently
            traceback.print_exc()
            self.failed.emit(f"{self.name} failed unexpectedly: {exc}")
        else:
            self.finished.emit(result)


def start_job(jobs: list[BackgroundJob], name: str, work, progress=None, done=None, failed=None) -> BackgroundJob:
    """Start `work` as a BackgroundJob, kept in `jobs` until it finishes or fails, with its signals connected to
    `progress(item)`, `done(result)` and `failed(message)` where given."""
    job = BackgroundJob(name, work)
    for signal, slot in ((job.progressed, progress), (job.finished, done), (job.failed, failed)):
        if slot:
            signal.connect(slot)
    for signal in (job.finished, job.failed):
        signal.connect(lambda _: jobs.remove(job) if job in jobs else None)
    jobs.append(job)
    return job.start()
