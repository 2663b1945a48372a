"""The phantom cohort's latent model: who the subjects are and how disease shows in their bones.

Everything that carries the label lives here, so the oracle can draw thousands of subjects without
rendering a single image, and the renderer draws exactly the same distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..anatomy import BONE_NAMES

T_SCORE_MEAN, T_SCORE_SD = -1.6, 1.55  # P(T < -2.5) ≈ 0.28
OSTEOPOROSIS_T_SCORE = -2.5

# Cortical index 2T/W = CI0 + CI_SLOPE * T-score + residual; the residual's variance is set so that the
# 2nd metacarpal's CI correlates with T-score at about 0.65, 80% of it shared by all bones of a subject.
CI_SLOPE = 0.04
CI_TARGET_CORR = 0.65
CI_SHARED_FRACTION = 0.8
_CI_RESIDUAL_VAR = (CI_SLOPE * T_SCORE_SD) ** 2 * (1.0 / CI_TARGET_CORR**2 - 1.0)
CI_SHARED_SD = float(np.sqrt(CI_SHARED_FRACTION * _CI_RESIDUAL_VAR))
CI_BONE_SD = float(np.sqrt((1.0 - CI_SHARED_FRACTION) * _CI_RESIDUAL_VAR))
CI0 = {"ulna": 0.42, "radius": 0.40, "M1": 0.50, "M2": 0.52, "M3": 0.50, "M4": 0.47, "M5": 0.46}

# Trabecular density (relative, 0..1) = DENSITY0 + DENSITY_SLOPE * T-score + residual.
DENSITY0 = 0.58
DENSITY_SLOPE = 0.04
DENSITY_SHARED_SD = 0.08
DENSITY_BONE_SD = 0.04

# Mid-shaft outer width in mm of an average hand; individual geometry scales it.
SHAFT_WIDTH_MM = {"ulna": 12.0, "radius": 15.0, "M1": 10.0, "M2": 9.0, "M3": 8.6, "M4": 7.2, "M5": 7.6}
GEOMETRY_SHARED_SD = 0.06
GEOMETRY_BONE_SD = 0.03


@dataclass(frozen=True)
class BoneLatent:
    width_mm: float  # outer width W at mid-shaft
    cortical_index: float  # 2T/W
    density: float  # trabecular density, relative

    @property
    def thickness_mm(self) -> float:
        return self.cortical_index * self.width_mm / 2.0


@dataclass(frozen=True)
class SubjectLatent:
    t_score: float
    label: int
    age: float
    sex: str
    hand_scale: float
    bones: dict[str, BoneLatent]
    distractor_ci: float  # phalanges and carpals: drawn independently of the label
    distractor_density: float


def draw_disease(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Vectorised draw of everything that depends on the label, for n subjects."""
    t = np.clip(rng.normal(T_SCORE_MEAN, T_SCORE_SD, n), -5.5, 3.5)
    k = len(BONE_NAMES)
    ci0 = np.array([CI0[b] for b in BONE_NAMES])
    ci = ci0 + CI_SLOPE * t[:, None] + rng.normal(0, CI_SHARED_SD, (n, 1)) + rng.normal(0, CI_BONE_SD, (n, k))
    dens = (
        DENSITY0
        + DENSITY_SLOPE * t[:, None]
        + rng.normal(0, DENSITY_SHARED_SD, (n, 1))
        + rng.normal(0, DENSITY_BONE_SD, (n, k))
    )
    return {
        "t_score": t,
        "label": (t < OSTEOPOROSIS_T_SCORE).astype(int),
        "cortical_index": np.clip(ci, 0.15, 0.85),
        "density": np.clip(dens, 0.05, 1.0),
    }


def draw_subject(rng: np.random.Generator) -> SubjectLatent:
    disease = draw_disease(rng, 1)
    sex = "M" if rng.random() < 0.5 else "F"
    hand_scale = float((1.04 if sex == "M" else 0.96) * np.exp(rng.normal(0, 0.05)))
    shared_geometry = rng.normal(0, GEOMETRY_SHARED_SD)
    bones = {}
    for j, name in enumerate(BONE_NAMES):
        width = SHAFT_WIDTH_MM[name] * hand_scale * np.exp(shared_geometry + rng.normal(0, GEOMETRY_BONE_SD))
        bones[name] = BoneLatent(float(width), float(disease["cortical_index"][0, j]), float(disease["density"][0, j]))
    # Unlabelled bones look like labelled ones of an unrelated subject, so they carry no label.
    unrelated = draw_disease(rng, 1)
    return SubjectLatent(
        t_score=float(disease["t_score"][0]),
        label=int(disease["label"][0]),
        age=float(rng.uniform(45, 85)),
        sex=sex,
        hand_scale=hand_scale,
        bones=bones,
        distractor_ci=float(unrelated["cortical_index"][0].mean()),
        distractor_density=float(unrelated["density"][0].mean()),
    )
