"""The oracle: the best a classifier could do if it could read every label-carrying latent variable.

A logistic regression on each labelled bone's cortical index and trabecular density, fitted on the
cohort's train split. `auc` is measured on a fresh draw of subjects from the same latent model (no
images rendered), the stable figure; `auc_test` on the cohort's own, small, test split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..anatomy import BONE_NAMES
from ..cohort import read_manifest
from ..errors import CohortError
from .cohort import read_config
from .latent import draw_disease

FRESH_SUBJECTS = 2000


@dataclass(frozen=True)
class OracleResult:
    auc: float
    auc_test: float | None
    train_subjects: int
    test_subjects: int
    fresh_subjects: int
    features: list[str]


def feature_names() -> list[str]:
    return [f"{b}_ci" for b in BONE_NAMES] + [f"{b}_density" for b in BONE_NAMES]


def run_oracle(cohort_dir: str | Path, fresh_subjects: int = FRESH_SUBJECTS) -> OracleResult:
    cohort_dir = Path(cohort_dir)
    config = read_config(cohort_dir)
    cohort = read_manifest(cohort_dir / "manifest.csv", seed=config.seed, check_files=False)
    names = feature_names()

    def table(rows):
        try:
            x = np.array([[float(r.extra[n]) for n in names] for r in rows])
        except KeyError as exc:
            raise CohortError(f"the manifest lacks the latent column {exc}; is it a phantom cohort?") from None
        return x, np.array([r.label for r in rows])

    x_train, y_train = table(cohort.split("train"))
    if len(set(y_train)) < 2:
        raise CohortError("the train split holds only one class; generate more subjects.")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x_train, y_train)
    x_test, y_test = table(cohort.split("test"))
    auc_test = float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])) if len(set(y_test)) == 2 else None
    fresh = draw_disease(np.random.default_rng([config.seed, 7_777_777]), fresh_subjects)
    x_fresh = np.hstack([fresh["cortical_index"], fresh["density"]])
    auc = float(roc_auc_score(fresh["label"], model.predict_proba(x_fresh)[:, 1]))
    return OracleResult(auc, auc_test, len(y_train), len(y_test), fresh_subjects, names)
