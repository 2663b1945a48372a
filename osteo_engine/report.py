"""`report.md` of an experiment: tables as mean ± std over seeds with Δ against table 1, a ROC plot and the
per-bone contributions (paper fig. 5)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from .anatomy import BONE_NAMES
from .evaluation import METRICS
from .storage import atomic_write_bytes

TITLES = {
    "1": "Table 1 — full pipeline (bone patches, constrained multi-crop)",
    "2": "Table 2 — no segmentation (7 random squares of the raw radiograph)",
    "3": "Table 3 — supervised encoder, no self-supervision",
    "4": "Table 4 — conventional multi-crop",
}


def _summary(runs: list[dict], key: str = "metrics") -> dict[tuple[str, str], dict[str, tuple[float, float]]]:
    grouped: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in runs:
        if key in r:
            grouped[(r["table"], r["method"])].append(r[key])
    return {
        k: {m: (float(np.nanmean([v[m] for v in vs])), float(np.nanstd([v[m] for v in vs]))) for m in METRICS}
        for k, vs in grouped.items()
    }


def _table(summary, table: str, reference) -> list[str]:
    lines = [f"### {TITLES[table]}", "", "| method | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for (t, method), values in sorted(summary.items()):
        if t != table:
            continue
        base = reference.get(method) if table != "1" else None
        if table == "3" and reference:
            base = max(reference.values(), key=lambda v: v["auc"][0])  # against the best table-1 method
        cells = []
        for m in METRICS:
            mean, std = values[m]
            delta = f" (Δ {mean - base[m][0]:+.3f})" if base else ""
            cells.append(f"{mean:.3f} ± {std:.3f}{delta}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines + [""]


def write_report(runs: list[dict], out: str | Path, oracle_auc: float | None) -> Path:
    out = Path(out)
    summary = _summary(runs)
    reference = {method: v for (t, method), v in summary.items() if t == "1"}
    seeds = sorted({r["seed"] for r in runs})
    lines = [
        "# Experiment report (research use only)",
        "",
        f"Seeds: {', '.join(map(str, seeds))}. Metrics are for the positive class (osteoporosis), on the test "
        "split's subjects (a subject's probability is the mean over its bones); mean ± std over seeds; Δ is "
        "against table 1 (the same method, or the best method for table 3).",
        "",
    ]
    if oracle_auc is not None:
        lines += [
            f"Oracle AUC of this phantom cohort (`osteo oracle`): {oracle_auc:.3f}. A model clearly above it "
            "would mean that the label leaks.",
            "",
        ]
    for table in sorted({r["table"] for r in runs}):
        lines += _table(summary, table, reference)
    external = _summary(runs, "external")
    if external:
        lines += ["## External cohort", ""]
        for table in sorted({t for t, _ in external}):
            lines += _table(external, table, {m: v for (t, m), v in external.items() if t == "1"})
    lines += _plots(runs, out)
    path = out / "report.md"
    atomic_write_bytes(path, "\n".join(lines).encode())
    return path


def _plots(runs: list[dict], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    first = [r for r in runs if r["table"] == "1" and r["seed"] == min(x["seed"] for x in runs)]
    if not first:
        return []
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for r in first:
        scores = np.array(r["subject_scores"])
        if len(np.unique(scores[:, 0])) == 2:
            fpr, tpr, _ = roc_curve(scores[:, 0], scores[:, 1])
            ax.plot(fpr, tpr, label=f"{r['method']} (AUC {r['metrics']['auc']:.2f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, table 1, test subjects")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "roc.png", dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.8 / len(first)
    for k, r in enumerate(first):
        c = r["bone_contributions"]
        means = [c[b]["mean"] if c.get(b) else np.nan for b in BONE_NAMES]
        errors = [c[b]["sem"] if c.get(b) else 0 for b in BONE_NAMES]
        ax.bar(np.arange(7) + k * width, means, width, yerr=errors, capsize=2, label=r["method"])
    ax.set_xticks(np.arange(7) + width * (len(first) - 1) / 2, BONE_NAMES)
    ax.set(ylabel="mean probability", title="Bone contributions for true positives (fig. 5)", ylim=(0, 1))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "bones.png", dpi=120)
    plt.close(fig)
    return ["## Figures", "", "![ROC](roc.png)", "", "![Bone contributions](bones.png)", ""]
