"""Screening time for one 2000×2400 radiograph on this machine (goal: ≤ 5 s on 2 cores).

A phantom hand rendered at 2000×2400 is screened with the bundled models (or --model DIR); the models are
loaded once, then each stage (segment, classify) and the total are timed over --repeats runs after one
warm-up. Loading the models is timed apart: `osteo screen` pays it once per command. The same image stored
sideways is timed too: it needs the full orientation search. The screening is timed again without the
segmenter's error map, without its instability score (a refer policy that limits the expected error, as policies
made before the instability do: screening then skips the turned readings), and without both, interleaved, and
the ratios printed (issue 14: within 1.2x); and with SAM's second opinion, which a policy on the combined
score needs (second_opinion.py).

Run: .venv/bin/python bench/screen_speed.py [--repeats 5] [--model DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
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
    _extras_cost(pixels, model, args.repeats)
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


def _extras_cost(pixels: np.ndarray, model, repeats: int) -> None:
    """Median screening time with the segmenter's error map and its instability (the two turned readings of
    stability.py), without each, without both, and with SAM's second opinion too; runs interleaved."""
    from osteo_engine.segmentation.image_scores import IMAGE_SCORE, LEGACY_SCORE

    segmenter, policy = model.segmenter, model.policy
    plain = dataclasses.replace(segmenter, error_map=None)
    ways = {
        "with both": (segmenter, IMAGE_SCORE),
        "without the error map": (plain, IMAGE_SCORE),
        "without the instability": (segmenter, LEGACY_SCORE),
        "without both": (plain, LEGACY_SCORE),
        "with both and SAM's second opinion (a policy on the combined score)": (segmenter, "combined"),
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(repeats):
        for name, (way, score) in ways.items():
            model.segmenter, model.policy = way, dataclasses.replace(policy, score=score)
            started = time.perf_counter()
            screen(pixels, model)
            times[name].append(time.perf_counter() - started)
    model.segmenter, model.policy = segmenter, policy
    base = statistics.median(times["without both"])
    for name, values in times.items():
        print(f"  {name}: {statistics.median(values):.2f} s, {statistics.median(values) / base:.3f}x")


if __name__ == "__main__":
    main()
