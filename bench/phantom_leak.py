"""Leak audit of the phantom: AUC of outside-the-bone statistics for the label (goal: at most 0.6).

Run: .venv/bin/python bench/phantom_leak.py [--subjects 2000]
"""

from __future__ import annotations

import argparse
import time

from osteo_engine.phantom.audit import audit_leak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subjects", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args()
    start = time.perf_counter()
    result = audit_leak(args.subjects, args.seed)
    print(
        f"leak audit over {result.subjects} subjects ({time.perf_counter() - start:.0f} s): "
        f"AUC logistic {result.auc_logistic:.3f}, gradient boosting {result.auc_boosting:.3f}"
    )


if __name__ == "__main__":
    main()
