"""The paper's reported figures (tables 1–4: mean ± sd over three seeds, positive class), for the experiment
report to print beside ours. Tables 2–4 report F1, AUC and accuracy only."""

from __future__ import annotations


def _row(*pairs) -> dict[str, tuple[float, float]]:
    names = ("precision", "recall", "f1", "auc", "accuracy") if len(pairs) == 5 else ("f1", "auc", "accuracy")
    return dict(zip(names, pairs))


PAPER: dict[str, dict[str, dict[str, tuple[float, float]]]] = {
    "1": {
        "simclr": _row((0.71, 0.04), (0.66, 0.06), (0.68, 0.03), (0.85, 0.01), (0.81, 0.03)),
        "supcon": _row((0.61, 0.01), (0.60, 0.11), (0.60, 0.06), (0.79, 0.03), (0.75, 0.04)),
        "swav": _row((0.54, 0.12), (0.54, 0.16), (0.54, 0.13), (0.68, 0.04), (0.72, 0.05)),
        "vicreg": _row((0.64, 0.07), (0.64, 0.07), (0.64, 0.07), (0.80, 0.03), (0.77, 0.03)),
    },
    "2": {
        "simclr": _row((0.54, 0.09), (0.78, 0.04), (0.74, 0.01)),
        "supcon": _row((0.51, 0.06), (0.73, 0.04), (0.70, 0.06)),
        "swav": _row((0.52, 0.07), (0.65, 0.06), (0.71, 0.05)),
        "vicreg": _row((0.54, 0.07), (0.74, 0.03), (0.70, 0.08)),
    },
    "3": {"supervised": _row((0.53, 0.04), (0.67, 0.03), (0.72, 0.01))},
    "4": {
        "simclr": _row((0.65, 0.03), (0.82, 0.02), (0.79, 0.05)),
        "supcon": _row((0.56, 0.04), (0.74, 0.04), (0.72, 0.08)),
        "swav": _row((0.51, 0.09), (0.66, 0.05), (0.70, 0.03)),
        "vicreg": _row((0.59, 0.02), (0.78, 0.03), (0.74, 0.05)),
    },
}
