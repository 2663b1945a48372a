"""Leak audit: can anything outside the labelled bones predict the label?

Statistics of each radiograph outside its (slightly dilated) bone masks — intensities, noise, hand size,
position, orientation — and the label-independent draws (pose, hand scale, age) are fed to two classifiers
with cross-validation. A phantom whose disease lives only in the bones gives AUCs near 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .cohort import PhantomSubject, generate_subject


@dataclass(frozen=True)
class LeakAudit:
    subjects: int
    auc_logistic: float
    auc_boosting: float


def outside_bone_features(s: PhantomSubject) -> list[float]:
    image = s.image.astype(np.float32) / 65535
    outside = cv2.dilate((s.truth > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) == 0
    values = image[outside]
    tissue = values > np.percentile(values, 40)
    noise = cv2.Laplacian(image, cv2.CV_32F)[outside].std()
    ys, xs = np.nonzero(image > 0.15)
    orientation = 0.5 * np.arctan2(2 * np.cov(xs, ys)[0, 1], np.var(xs) - np.var(ys))
    return [
        values.mean(),
        values.std(),
        *np.percentile(values, [5, 25, 50, 75, 95]),
        values[tissue].mean(),
        noise,
        tissue.mean(),
        xs.mean(),
        ys.mean(),
        orientation,
        s.pose.rotation_deg,
        s.pose.scale,
        s.latent.hand_scale,
        s.latent.age,
    ]


def audit_leak(subjects: int = 2000, seed: int = 21, size: tuple[int, int] = (160, 200)) -> LeakAudit:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows, labels = [], []
    for i in range(subjects):
        s = generate_subject(seed, i, size, raters=0)
        rows.append(outside_bone_features(s))
        labels.append(s.latent.label)
    x, y = np.array(rows), np.array(labels)
    aucs = []
    for model in (
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        HistGradientBoostingClassifier(max_iter=100, random_state=0),
    ):
        scores = cross_val_predict(model, x, y, cv=5, method="predict_proba")[:, 1]
        aucs.append(float(roc_auc_score(y, scores)))
    return LeakAudit(subjects, *aucs)
