"""Crash-safe file writes: temporary file, fsync, rename, fsync of the folder.

A crash at any moment leaves either the old or the new file, never a torn one. A full disk raises
`OSError` after the temporary file is removed, so the old version stays in place.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

STALE_AFTER_S = 3600  # a temporary file this old is stale even if its process number is in use again


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path, os.getpid())
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _temporary_name(path: Path, pid: int) -> Path:
    return path.with_name(f".{path.name}.{pid}.tmp")


def remove_stale_temporaries(folder: str | Path, recursive: bool = False) -> int:
    """Delete the temporary files that killed writers left in `folder` (and below it, if `recursive`): those
    whose process is gone, or older than `STALE_AFTER_S`. A live writer's file is left alone. Returns how
    many were removed; a file that cannot be removed is left, since it costs only space."""
    removed = 0
    now = time.time()
    for tmp in Path(folder).rglob(".*.tmp") if recursive else Path(folder).glob(".*.tmp"):
        parts = tmp.name.rsplit(".", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        try:
            if _process_alive(int(parts[1])) and now - tmp.stat().st_mtime < STALE_AFTER_S:
                continue
            tmp.unlink()
            removed += 1
        except OSError:
            continue
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # Windows' os.kill(pid, 0) would signal the process: age decides
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process: assume it is still writing
    return True


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_bytes(path, (strict_json(obj, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def strict_json(obj, **dumps_options) -> str:
    """JSON that every parser accepts: NaN and ±infinity, which `json.dumps` writes as bare words that are not
    JSON, become null."""
    return json.dumps(_finite_or_none(obj), allow_nan=False, **dumps_options)


def _finite_or_none(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    return obj


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
