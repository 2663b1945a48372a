"""Phantom generation speed: 192 subjects at 1024x1280 (goal: under 2 minutes on 2 cores).

Run: .venv/bin/python bench/phantom_speed.py [--subjects 192] [--size 1024x1280]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from osteo_engine.phantom import PhantomConfig, run_oracle, write_cohort


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subjects", type=int, default=192)
    parser.add_argument("--size", default="1024x1280")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_cohort(tmp, PhantomConfig(args.subjects, args.seed, 3, size))
        seconds = time.perf_counter() - start
        oracle = run_oracle(tmp)
    print(
        f"phantom: {args.subjects} subjects at {args.size} in {seconds:.1f} s "
        f"({seconds / args.subjects * 1000:.0f} ms/subject, {os.cpu_count()} cores)"
    )
    print(f"oracle (seed {args.seed}): auc={oracle.auc:.3f} auc_test={oracle.auc_test}")


if __name__ == "__main__":
    main()
