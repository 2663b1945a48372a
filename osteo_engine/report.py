"""`report.md` of an experiment: each table as mean ± sd over seeds, internal (with bootstrap intervals) beside
external and beside the paper's figure, with Δ against table 1; a ROC plot and the per-bone contributions
(paper fig. 5)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from .anatomy import BONE_NAMES
from .evaluation import METRICS
from .fusion import FUSION_VARIANTS
from .paper_tables import PAPER
from .radiogrammetry import METACARPALS, index_kinds
from .storage import atomic_write_bytes

TITLES = {
    "1": "Table 1 — full pipeline (bone patches, constrained multi-crop)",
    "2": "Table 2 — no segmentation (7 random squares of the raw radiograph)",
    "3": "Table 3 — supervised encoder, no self-supervision",
    "4": "Table 4 — conventional multi-crop",
}


def _grouped(runs: list[dict], key: str) -> dict[tuple[str, str], list[dict]]:
    """(table, method) -> each seed's `key` (metrics, external, intervals_95) of the runs that have it."""
    grouped: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in runs:
        if key in r:
            grouped[(r["table"], r["method"])].append(r[key])
    return grouped


def _summary(runs: list[dict], key: str = "metrics") -> dict[tuple[str, str], dict[str, tuple[float, float]]]:
    """(table, method) -> metric -> (mean, sd over seeds) of each run's `key` (metrics, external); the sd is NaN
    for a single seed, which has none."""
    return {
        k: {m: (float(np.nanmean([v[m] for v in vs])), _sd([v[m] for v in vs])) for m in METRICS}
        for k, vs in _grouped(runs, key).items()
    }


def _sd(values: list[float]) -> float:
    return float(np.nanstd(values)) if len(values) > 1 else float("nan")


def _intervals(runs: list[dict], key: str = "intervals_95") -> dict[tuple[str, str], dict[str, tuple[float, float]]]:
    """(table, method) -> metric -> the mean over seeds of the 95% bootstrap bounds `key` (the internal test's, or
    "external_intervals_95": the external cohort's), of the runs that kept them."""
    return {
        k: {m: tuple(float(np.nanmean([v[m][i] for v in vs])) for i in (0, 1)) for m in METRICS}
        for k, vs in _grouped(runs, key).items()
    }


def _bounds(intervals: dict, row: tuple[str, str], metric: str) -> str:
    if row not in intervals:
        return "—"
    low, high = intervals[row][metric]
    return f"{low:.2f}–{high:.2f}"


def _cell(value: tuple[float, float] | None) -> str:
    if value is None:
        return "—"
    return f"{value[0]:.3f} ± {value[1]:.3f}" if np.isfinite(value[1]) else f"{value[0]:.3f}"


def _baseline(table: str, method: str, reference: dict):
    """What a row's Δ is against: table 1's same method (a fused row: its method alone), the best table-1
    method's for table 3 (by AUC), nothing for table 1's own methods."""
    if table == "3" and reference:
        return max(reference.values(), key=lambda v: v["auc"][0])
    return reference.get(method.split("+")[0]) if table != "1" or "+" in method else None


def _delta(value, base, metric: str) -> str:
    return "" if not value or not base else f"{value[metric][0] - base[metric][0]:+.3f}"


def _table(table: str, internal, intervals, external, external_intervals, ssl_methods: set[str]) -> list[str]:
    """One table, a row per method and metric: internal test and external cohort (each mean ± sd over seeds, and
    the mean 95% bootstrap bounds), the paper's figure for the same cell, and Δ against table 1."""
    ref_int = {m: v for (t, m), v in internal.items() if t == "1" and m in ssl_methods}
    ref_ext = {m: v for (t, m), v in external.items() if t == "1" and m in ssl_methods}
    lines = [
        f"### {TITLES[table]}",
        "",
        "| method | metric | internal test | internal 95% CI | external cohort | external 95% CI | paper | Δ internal "
        "| Δ external |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (t, method), values in sorted(internal.items()):
        if t != table:
            continue
        ext = external.get((t, method))
        base_int, base_ext = _baseline(t, method, ref_int), _baseline(t, method, ref_ext)
        for m in METRICS:
            cells = [
                _cell(values[m]),
                _bounds(intervals, (t, method), m),
                _cell(ext[m] if ext else None),
                _bounds(external_intervals, (t, method), m),
                _cell(PAPER.get(t, {}).get(method, {}).get(m)),
                _delta(values, base_int, m),
                _delta(ext, base_ext, m),
            ]
            lines.append(f"| {method} | {m} | " + " | ".join(cells) + " |")
    return lines + [""]


def _headline(internal, external, seeds: dict[tuple[str, str], list[int]]) -> list[str]:
    """AUC of every row at a glance: the seeds it has, internal, external, the paper's."""
    lines = ["## AUC at a glance", "", "| table | method | seeds | internal test | external cohort | paper |"]
    lines.append("|---|---|---|---|---|---|")
    for (t, method), values in sorted(internal.items()):
        ext = _cell(external[(t, method)]["auc"] if (t, method) in external else None)
        paper = _cell(PAPER.get(t, {}).get(method, {}).get("auc"))
        row = [t, method, ", ".join(map(str, sorted(seeds[(t, method)]))), _cell(values["auc"]), ext, paper]
        lines.append("| " + " | ".join(row) + " |")
    return lines + [""]


def write_report(runs: list[dict], out: str | Path, oracle_auc: float | None, not_run: list[str] = ()) -> Path:
    """report.md (and roc.png, bones.png) in `out` from the runs' records (experiments.run_one's); `not_run`
    names the planned runs left out, listed at the end so that a partial report says what it lacks."""
    out = Path(out)
    internal, external, intervals = _summary(runs), _summary(runs, "external"), _intervals(runs)
    ssl_methods = {r["method"] for r in runs if r["variant"] == "full"}
    seeds = sorted({r["seed"] for r in runs})
    subjects = sorted({len(r["subject_scores"]) for r in runs})
    lines = [
        "# Experiment report (research use only)",
        "",
        f"Seeds: {', '.join(map(str, seeds))}. Metrics are for the positive class (osteoporosis), per subject (a "
        "subject's probability is the mean over its bones), mean ± sd over seeds (a row of one seed: its value). "
        f"The internal test split has {'/'.join(map(str, subjects))} subjects, so its figures carry their 95% "
        "bootstrap intervals (the mean over seeds of each seed's bounds) and are mostly noise; the external "
        "cohort, when given, scores every labelled subject of another cohort (its intervals likewise, for the runs "
        "that kept them: runs made before 2026-12-07 show —). `paper` is the paper's figure for "
        "the same cell (real hands, its own data; tables 2–4 report F1, AUC and accuracy only). Δ is against "
        "table 1: the same method, the best method (by AUC) for table 3, a fused row's method alone.",
        "",
    ]
    if oracle_auc is not None:
        lines += [
            f"Oracle AUC of this phantom cohort (`osteo oracle`): {oracle_auc:.3f}. A model clearly above it "
            "would mean that the label leaks.",
            "",
        ]
    if any(r["variant"] in FUSION_VARIANTS for r in runs):
        lines += [
            "Table 1 also has radiogrammetry's rows (`osteo_engine/fusion.py`): `radiogrammetry` is the same probe "
            f"protocol on each image's radiogrammetry alone ({_fused_indices(runs)}, measured on the "
            "segmenter's label maps); `METHOD+radiogrammetry` appends them to that method's encoder features.",
            "",
        ]
    lines += _headline(internal, external, _grouped(runs, "seed"))
    for table in sorted({r["table"] for r in runs}):
        lines += _table(table, internal, intervals, external, _intervals(runs, "external_intervals_95"), ssl_methods)
    lines += _plots(runs, out)
    if not_run:
        lines += ["## Not yet run", "", f"{len(not_run)} planned runs: {', '.join(not_run)}.", ""]
    path = out / "report.md"
    atomic_write_bytes(path, "\n".join(lines).encode())
    return path


def _fused_indices(runs: list[dict]) -> str:
    """The indices the radiogrammetry rows read, with the rows that read them when they differ; rows fitted
    before RBD existed name none (MCI, T, W, RMD of M1–M5)."""
    older = [f"{bone}_{kind}" for bone in METACARPALS for kind in ("MCI", "T", "W", "RMD")]
    methods: dict[str, list[str]] = {}
    for r in runs:
        if r["variant"] in FUSION_VARIANTS:
            rows = methods.setdefault(index_kinds(r.get("indices", older)), [])
            rows += [] if r["method"] in rows else [r["method"]]
    if len(methods) == 1:
        return next(iter(methods))
    return "; ".join(f"{kinds} in {', '.join(f'`{m}`' for m in rows)}" for kinds, rows in sorted(methods.items()))


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
    first = [r for r in first if r["variant"] == "full"]
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
