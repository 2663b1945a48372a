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

    bar = tqdm(total=total, desc=desc, file=sys.stderr, unit="img", dynamic_ncols=True, leave=False)

    def update(done: int, total_now: int) -> None:
        if done < bar.n or total_now != bar.total:
            bar.reset(total=total_now)  # a new pass (e.g. calibration, then test): its own rate and time
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()
