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
            bars.append(tqdm(total=total or total_now, desc=desc, file=sys.stderr, unit="img", dynamic_ncols=True,
                             leave=False))
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
