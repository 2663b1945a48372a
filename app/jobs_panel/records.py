"""Training jobs as their run folders record them (no Qt), so that the Jobs panel can show every run's state
after the app was closed and opened again.

The panel starts a job as a detached `python -m training_cli.main COMMAND ... --out RUN --progress-json`
process: it keeps running when the app closes. In the run folder it writes `job.json` (the command, the
process id, when it started), and the process writes its progress events to `job.out` (one JSON line each)
and its log to `job.err`. A job's state follows from those files alone:
- `finished`, `failed` or `cancelled`: the last event line says so (`done`, `error`, `cancelled`);
- `running`: no such line yet and the process is alive;
- `died`: no such line and the process is gone (killed, out of memory, the machine restarted).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from osteo_engine.registry import PRESETS
from osteo_engine.storage import atomic_write_json


@dataclass(frozen=True)
class JobKind:
    """A command the launch form offers."""

    words: tuple[str, ...]  # after `training_cli.main`
    preset: bool = False  # takes --preset
    writes_run: bool = True  # writes into `--out RUN`; else RUN holds only the job's files, its output lies where
    # its options say (an error map beside its segmenter)
    resumable: bool = False  # takes --resume; the others are started again with the same command


COMMANDS = {
    "segment train": JobKind(("segment", "train"), preset=True, resumable=True),
    "segment fit-errors": JobKind(("segment", "fit-errors"), writes_run=False),
    "pretrain": JobKind(("pretrain",), preset=True, resumable=True),
    "probe": JobKind(("probe",)),
    "experiment": JobKind(("experiment",), preset=True),  # it skips the runs it has finished
    "export-screening": JobKind(("export-screening",)),
}
LOG_TAIL_LINES = 40
FINAL = {"done": "finished", "error": "failed", "cancelled": "cancelled"}


@dataclass
class JobStatus:
    run: Path
    command: list[str]
    state: str  # running, finished, failed, cancelled, died
    started: float  # seconds since the epoch
    pid: int = 0  # the job's process
    done: int | None = None  # progress of the current stage
    total: int | None = None
    epochs: list[dict] = field(default_factory=list)  # each `epoch` event's metrics, with "epoch"
    message: str = ""  # the error's or the cancellation's sentence
    log_tail: str = ""

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the pace so far, from the current stage's progress; None when unknown."""
        if self.state != "running" or not self.done or not self.total:
            return None
        return (time.time() - self.started) / self.done * (self.total - self.done)


def launch_command(name: str, data: list[str], out: Path, preset: str | None = None, extra: list[str] = ()) -> list:
    """The full command line (this Python, `-m training_cli.main`, ...) of a job the form describes. Raises
    ValueError for a command or preset that is not offered."""
    if name not in COMMANDS:
        raise ValueError(f"unknown job {name!r}; choose one of {', '.join(COMMANDS)}")
    kind = COMMANDS[name]
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}")
    args = [*kind.words, "--data", *data, *(["--out", str(out)] if kind.writes_run else []), *list(extra)]
    args += ["--progress-json"]
    if kind.preset and preset:
        args += ["--preset", preset]
    return [sys.executable, "-m", "training_cli.main", *args]


def job_kind(command: list[str]) -> JobKind | None:
    """The kind of a launched command line; None for one the form does not offer."""
    words = command[3:]
    return next((k for k in COMMANDS.values() if tuple(words[: len(k.words)]) == k.words), None)


def option_values(command: list[str], option: str) -> list[str]:
    """The words after `option` in a command line, up to the next option."""
    if option not in command:
        return []
    rest = command[command.index(option) + 1 :]
    return rest[: next((i for i, w in enumerate(rest) if w.startswith("--")), len(rest))]


def write_record(run: Path, command: list[str], pid: int) -> None:
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run / "job.json", {"command": command, "pid": pid, "started": time.time()})


def resume_command(command: list[str]) -> list[str]:
    """The command that continues the job: the same one with `--resume` where its kind takes it, else the same
    one (an experiment skips the runs it finished; a probe or an error map is made again)."""
    kind = job_kind(command)
    if kind is None or not kind.resumable or "--resume" in command:
        return command
    return [*command, "--resume"]


def read_status(run: Path) -> JobStatus | None:
    """The job of a run folder, from its files; None when the folder holds no job the panel started."""
    try:
        record = json.loads((run / "job.json").read_text())
    except (OSError, ValueError):
        return None
    pid = int(record.get("pid", 0))
    status = JobStatus(run, list(record.get("command", [])), "running", float(record.get("started", 0.0)), pid)
    for event in _events(run / "job.out"):
        kind = event.get("event")
        if kind in ("start", "progress", "epoch"):
            status.done, status.total = event.get("done"), event.get("total")
        if kind == "epoch":
            status.epochs.append({"epoch": event.get("epoch"), **event.get("metrics", {})})
        if kind in FINAL:
            status.state, status.message = FINAL[kind], event.get("message", "")
    if status.state == "running" and not _alive(pid):
        status.state = "died"
    status.log_tail = _tail(run / "job.err")
    return status


def scan(runs_home: Path) -> list[JobStatus]:
    """Every job under `runs_home`, newest first."""
    found = [read_status(p) for p in sorted(runs_home.iterdir()) if p.is_dir()] if runs_home.is_dir() else []
    return sorted((s for s in found if s is not None), key=lambda s: s.started, reverse=True)


def _events(path: Path) -> list[dict]:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except ValueError:
            continue  # a line being written, or a stray print
    return events


def _tail(path: Path) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _not_a_zombie(pid)


def _not_a_zombie(pid: int) -> bool:
    """A child that exited but was not reaped still answers kill(pid, 0); /proc tells (Linux)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
