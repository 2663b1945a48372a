"""Mutated radiograph files through `load_radiograph`: every one must load or raise `RadiographError`, fast.

Seeds are small, valid files of each kind (DICOM uncompressed and RLE, 8- and 16-bit PNG, JPEG). A mutant
flips bits, writes boundary values (0, 0xFF, 0x7FFFFFFF, ...) over bytes or length fields, cuts the file,
zeroes a run, or repeats a part of it. `tests/test_io_fuzz.py` runs a few hundred; `make stress` runs more:

    python -m tests.io_fuzz --cases 3000 [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from osteo_engine import RadiographError, load_radiograph

TIME_LIMIT_S = 5.0
_BOUNDARY = [
    b"\x00",
    b"\xff",
    b"\x7f",
    b"\x80",
    b"\xff\xff\xff\xff",
    b"\x7f\xff\xff\xff",
    b"\x00\x00\x00\x00",
    b"\x80\x00\x00\x00",
    b"\xff\xff",
    b"\x00\x01",
]


@dataclass(frozen=True)
class Outcome:
    name: str
    seconds: float
    error: str | None  # the RadiographError's sentence, or None when the mutant loaded
    unexpected: str | None  # any other exception: a failure


def seed_files(folder: Path) -> dict[str, bytes]:
    """Small valid files, one of each kind the loader reads."""
    from osteo_engine.phantom.dicom import write_phantom_dicom

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for compress in (False, True):
        path = write_phantom_dicom(folder / f"seed_{compress}.dcm", size=(160, 200), compress=compress)
        out[f"dicom-{'rle' if compress else 'raw'}"] = path.read_bytes()
    image = load_radiograph(folder / "seed_False.dcm").pixels
    out["png8"] = cv2.imencode(".png", (image * 255).astype(np.uint8))[1].tobytes()
    out["png16"] = cv2.imencode(".png", (image * 65535).astype(np.uint16))[1].tobytes()
    out["jpeg"] = cv2.imencode(".jpg", (image * 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    return out


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to three random mutations of `data`."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(("flip", "boundary", "cut", "zero", "repeat", "flip"))
        at = rng.randrange(len(out)) if out else 0
        if kind == "flip":
            out[at] ^= 1 << rng.randrange(8)
        elif kind == "boundary":
            value = rng.choice(_BOUNDARY)
            out[at : at + len(value)] = value
        elif kind == "cut":
            del out[at:]
        elif kind == "zero":
            length = min(rng.randint(1, 256), len(out) - at)
            out[at : at + length] = bytes(length)
        else:
            length = rng.randint(1, 512)
            out[at:at] = out[at : at + length]
        if not out:
            break
    return bytes(out)


def run(cases: int, seed: int = 0, folder: Path | None = None) -> list[Outcome]:
    """Load `cases` mutants (spread over the seed kinds) and report each."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(folder or tmp)
        seeds = seed_files(work / "seeds")
        rng = random.Random(seed)
        outcomes = []
        names = sorted(seeds)
        for k in range(cases):
            kind = names[k % len(names)]
            suffix = ".dcm" if kind.startswith("dicom") else ".png" if kind.startswith("png") else ".jpg"
            path = work / f"mutant_{k}{suffix}"
            path.write_bytes(mutate(seeds[kind], rng))
            outcomes.append(_load(path, f"{kind} #{k}"))
            path.unlink()
        return outcomes


def _load(path: Path, name: str) -> Outcome:
    started = time.perf_counter()
    error = unexpected = None
    try:
        load_radiograph(path)
    except RadiographError as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - what the fuzz run is looking for
        unexpected = f"{type(exc).__name__}: {exc}"
    return Outcome(name, time.perf_counter() - started, error, unexpected)


def main() -> None:
    parser = argparse.ArgumentParser(description="mutated DICOM, PNG and JPEG files through load_radiograph")
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    outcomes = run(args.cases, args.seed)
    bad = [o for o in outcomes if o.unexpected or o.seconds > TIME_LIMIT_S]
    slowest = max(outcomes, key=lambda o: o.seconds)
    refused = sum(o.error is not None for o in outcomes)
    print(
        f"{len(outcomes)} mutants: {refused} refused with RadiographError, {len(outcomes) - refused - len(bad)} "
        f"loaded, {len(bad)} failures; slowest {slowest.seconds:.2f} s ({slowest.name})"
    )
    for o in bad:
        print(f"FAIL {o.name}: {o.unexpected or ''} {o.seconds:.2f} s")
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
