"""Screening time for one 2000×2400 radiograph on this machine (goal: ≤ 5 s on 2 cores).

A phantom hand rendered at 2000×2400 is screened with the bundled models (or --model DIR); the models are
loaded once, then each stage (segment, classify) and the total are timed over --repeats runs after one
warm-up. Loading the models is timed apart: `osteo screen` pays it once per command. The same image stored
sideways is timed too: it needs the full orientation search. When the segmenter has an error map, the
screening is timed again without it, interleaved, and the ratio printed (issue 14: within 1.2x).

Run: .venv/bin/python bench/screen_speed.py [--repeats 5] [--model DIR]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from osteo_engine.screening import screen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", help="screening model folder (default: the bundled demo classifier)")
    args = parser.parse_args()

    from osteo_engine.phantom import generate_subject
    from osteo_engine.screening_model import load_screening_model

    pixels = generate_subject(0, 11, (2000, 2400), raters=0).image.astype(np.float32) / 65535.0
    started = time.perf_counter()
    model = load_screening_model(args.model)
    load_s = time.perf_counter() - started
    screen(pixels, model)  # warm-up
    stages: dict[str, list[float]] = {"segment": [], "classify": [], "total": []}
    for _ in range(args.repeats):
        started = time.perf_counter()
        result = screen(pixels, model)
        stages["total"].append(time.perf_counter() - started)
        for name in ("segment", "classify"):
            stages[name].append(result.timings_s[name])
    print(
        f"screening a 2000x2400 radiograph, {torch.get_num_threads()} threads, {args.repeats} runs "
        f"(models loaded once in {load_s:.2f} s)"
    )
    for name, values in stages.items():
        print(f"  {name:9s} median {statistics.median(values):.2f} s   max {max(values):.2f} s")
    print(f"  decision: {result.decision}, {sum(b['present'] for b in result.bones.values())} bones")
    _error_map_cost(pixels, model, args.repeats)
    turned = np.ascontiguousarray(np.rot90(pixels))  # a sideways file: all 8 orientations are read
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        answer = screen(turned, model)
        times.append(time.perf_counter() - started)
    print(
        f"  sideways file: total median {statistics.median(times):.2f} s, max {max(times):.2f} s "
        f"(read with {answer.orientation['quarter_turns']} quarter turn(s))"
    )


def _error_map_cost(pixels: np.ndarray, model, repeats: int) -> None:
    """Median screening time with and without the segmenter's error map, runs interleaved."""
    import dataclasses

    segmenter = model.segmenter
    if segmenter.error_map is None:
        return
    ways = {"with": segmenter, "without": dataclasses.replace(segmenter, error_map=None)}
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(repeats):
        for name, way in ways.items():
            model.segmenter = way
            started = time.perf_counter()
            screen(pixels, model)
            times[name].append(time.perf_counter() - started)
    model.segmenter = segmenter
    with_s, without_s = (statistics.median(times[name]) for name in ways)
    print(f"  with the error map {with_s:.2f} s, without {without_s:.2f} s: {with_s / without_s:.3f}x")


if __name__ == "__main__":
    main()
