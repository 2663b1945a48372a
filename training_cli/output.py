"""Where command output goes: one JSON document or plain lines on stdout; progress and logs on stderr."""

from __future__ import annotations

import sys
from contextlib import contextmanager

from osteo_engine.storage import strict_json


def emit(obj: dict, as_json: bool, lines: list[str]) -> None:
    if as_json:
        sys.stdout.write(strict_json(obj, indent=2) + "\n")
    else:
        sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def progress_bar(total: int, desc: str):
    from tqdm import tqdm

    bars = []  # made at the first update: work that reports nothing (a cache hit, a refusal) shows no bar

    def update(done: int, total_now: int) -> None:
        if not bars:
            bars.append(
                tqdm(total=total or total_now, desc=desc, file=sys.stderr, unit="img", dynamic_ncols=True, leave=False)
            )
        bar = bars[0]
        if done < bar.n or total_now != bar.total:
            bar.reset(total=total_now)  # a new pass (e.g. calibration, then test): its own rate and time
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        for bar in bars:
            bar.close()


def add_progress_json(parser) -> None:
    parser.add_argument(
        "--progress-json",
        action="store_true",
        help='report progress as JSON lines on stdout ({"event": ...}); the last line is '
        "`done` (with the run folder or result) or `error` (with the sentence)",
    )


class JobOutput:
    """Renders a job's events: tqdm bars on stderr, or one JSON line per event on stdout (--progress-json).
    Its `cancel` token is set by SIGINT or SIGTERM while `cancellable()` is active."""

    def __init__(self, args, task: str, unit: str = "epoch"):
        from osteo_engine.events import CancelToken

        self.as_json = bool(getattr(args, "progress_json", False))
        self.task, self.unit = task, unit
        self.cancel = CancelToken()
        self._bar = None

    def __call__(self, event) -> None:
        if self.as_json:
            sys.stdout.write(strict_json(event.to_json()) + "\n")
            sys.stdout.flush()
        elif event.kind in ("start", "progress", "epoch"):
            self._draw(event)
        elif event.kind in ("done", "error"):
            self.close()

    @contextmanager
    def images(self, what: str = "patches"):
        """The (done, total) callback for images: `progress` events of task `what`, or a progress bar of its own."""
        if self.as_json:
            from osteo_engine.events import Event

            yield lambda done, total: self(Event("progress", what, done=done, total=total))
        else:
            with progress_bar(0, what) as update:
                yield update

    def done(self, path) -> None:
        from osteo_engine.events import Event

        self(Event("done", self.task, path=str(path)))

    def _draw(self, event) -> None:
        from tqdm import tqdm

        if self._bar is None or (event.total and event.total != self._bar.total):
            self.close()
            self._bar = tqdm(
                total=event.total, desc=self.task, unit=self.unit, file=sys.stderr, leave=False, dynamic_ncols=True
            )
        self._bar.n = event.done or 0
        shown = {
            k: f"{v:.3f}"
            for k, v in event.metrics.items()
            if k in ("loss", "val_ged", "val_mean_dice") and isinstance(v, float)
        }
        if shown:
            self._bar.set_postfix(shown)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    @contextmanager
    def cancellable(self):
        """SIGINT and SIGTERM stop the job at its next step (a second SIGINT interrupts at once)."""
        import signal

        def stop(signum, frame):
            if self.cancel.cancelled and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.cancel.cancel()

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.close()


def request_from(cls, args, **given):
    """A typed engine request (a dataclass) from parsed arguments: each field from the argument of the same
    name, or from `given`; path fields as `Path`, lists as tuples; an argument left unset keeps the field's
    default."""
    import dataclasses
    import typing
    from pathlib import Path

    hints = typing.get_type_hints(cls)
    values = dict(given)
    for f in dataclasses.fields(cls):
        if f.name in values or getattr(args, f.name, None) is None:
            continue
        value, hint = getattr(args, f.name), str(hints[f.name])
        if isinstance(value, list):
            value = tuple(Path(v) for v in value) if "Path" in hint else tuple(value)
        elif "Path" in hint:
            value = Path(value)
        values[f.name] = value
    return cls(**values)


def command_line() -> str:
    """`osteo ...` as typed, for model cards."""
    return "osteo " + " ".join(sys.argv[1:])
