"""The experiment report: what a reader of report.md relies on."""

from __future__ import annotations

import numpy as np

from osteo_engine.anatomy import BONE_NAMES
from osteo_engine.evaluation import METRICS
from osteo_engine.report import write_report


def _run(table: str, method: str, seed: int, auc: float, external_auc: float) -> dict:
    rng = np.random.default_rng(seed)
    labels = np.array([0, 1] * 10)
    scores = np.clip(labels * 0.3 + rng.uniform(0, 0.7, 20), 0, 1)
    metrics = {m: 0.5 for m in METRICS} | {"auc": auc}
    return {
        "table": table,
        "method": method,
        "variant": "full" if table == "1" else "supervised",
        "seed": seed,
        "metrics": metrics,
        "external": metrics | {"auc": external_auc},
        "intervals_95": {m: (0.1, 0.9) for m in METRICS},
        "subject_scores": np.stack([labels, scores], 1).tolist(),
        "bone_contributions": {b: {"mean": 0.6, "sem": 0.05} for b in BONE_NAMES},
    }


def test_rows_give_mean_and_sd_over_seeds_a_single_seed_its_value_and_the_runs_left_out(tmp_path):
    runs = [
        _run("1", "simclr", 0, 0.70, 0.78),
        _run("1", "simclr", 1, 0.80, 0.80),
        _run("3", "supervised", 0, 0.6, 0.7),
    ]
    report = write_report(runs, tmp_path, oracle_auc=0.867, not_run=["t3-supervised-s1"]).read_text()
    assert "| 1 | simclr | 0, 1 | 0.750 ± 0.050 | 0.790 ± 0.010 | 0.850 ± 0.010 |" in report  # paper beside ours
    assert "| 3 | supervised | 0 | 0.600 | 0.700 |" in report  # one seed: no sd that would read as certainty
    assert "Oracle AUC of this phantom cohort (`osteo oracle`): 0.867" in report
    assert report.rstrip().endswith("1 planned runs: t3-supervised-s1.")
    assert (tmp_path / "roc.png").stat().st_size > 0 and (tmp_path / "bones.png").stat().st_size > 0


def test_the_external_cohort_shows_its_bootstrap_interval_where_the_run_kept_one(tmp_path):
    kept = _run("1", "simclr", 0, 0.70, 0.78) | {"external_intervals_95": {m: (0.74, 0.82) for m in METRICS}}
    older = _run("3", "supervised", 0, 0.6, 0.7)  # made before runs kept the external intervals
    report = write_report([kept, older], tmp_path, oracle_auc=None).read_text()
    assert "| simclr | auc | 0.700 | 0.10–0.90 | 0.780 | 0.74–0.82 | 0.850 ± 0.010 |" in report
    assert "| supervised | auc | 0.600 | 0.10–0.90 | 0.700 | — |" in report
