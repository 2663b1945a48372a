"""Hand-atlas landmarks: reading them, and checking bone label maps against them.

Positive checks: the midpoint of mcN_base and mcN_head lies in metacarpal N's mask; ulna_distal, and the
point between radius_ulnar_side_b and radius_styloid, lie in or within 1% of the image height of the ulna /
radius mask. Negative checks: carpal landmarks and the midpoints between each metacarpal head and the next
joint of its finger lie outside every bone mask.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .anatomy import BONE_IDS
from .errors import CohortError

NEXT_JOINT = {1: "thumb_ip", 2: "index_pip", 3: "middle_pip", 4: "ring_pip", 5: "little_pip"}
Landmarks = dict[str, np.ndarray]  # name -> (x, y)


def read_landmarks(path: str | Path) -> dict[str, Landmarks]:
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            rows = list(reader)
    except (OSError, StopIteration, csv.Error) as exc:
        raise CohortError(f"{Path(path).name} is not a landmark CSV ({exc}).") from exc
    names = [h[:-2] for h in header[1::2]]
    out = {}
    for row in rows:
        values = np.array(row[1:], float).reshape(-1, 2)
        out[row[0]] = dict(zip(names, values))
    return out


def read_splits(path: str | Path) -> dict[str, str]:
    with open(path, newline="") as f:
        return {r["image"]: r["split"] for r in csv.DictReader(f)}


def positive_points(lm: Landmarks) -> dict[str, np.ndarray]:
    points = {f"M{n}": (lm[f"mc{n}_base"] + lm[f"mc{n}_head"]) / 2 for n in range(1, 6)}
    points["ulna"] = lm["ulna_distal"]
    points["radius"] = (lm["radius_ulnar_side_b"] + lm["radius_styloid"]) / 2
    return points


def negative_points(lm: Landmarks) -> dict[str, np.ndarray]:
    points = {f"carpal_{k}": lm[f"carpal_{k}"] for k in range(5, 13)}
    for n, joint in NEXT_JOINT.items():
        points[f"phalanx{n}"] = (lm[f"mc{n}_head"] + lm[joint]) / 2
    return points


@dataclass(frozen=True)
class LandmarkCheck:
    positives: dict[str, bool]
    negatives: dict[str, bool]


def _value_at(labels: np.ndarray, point: np.ndarray) -> int:
    h, w = labels.shape
    x = min(max(int(round(point[0])), 0), w - 1)
    y = min(max(int(round(point[1])), 0), h - 1)
    return int(labels[y, x])


def check_landmarks(labels: np.ndarray, lm: Landmarks) -> LandmarkCheck:
    tolerance = 0.01 * labels.shape[0]
    positives = {}
    for bone, point in positive_points(lm).items():
        value = BONE_IDS[bone]
        if bone.startswith("M"):
            positives[bone] = _value_at(labels, point) == value
        else:
            ys, xs = np.nonzero(labels == value)
            positives[bone] = bool(len(xs)) and bool(np.hypot(xs - point[0], ys - point[1]).min() <= tolerance)
    negatives = {name: _value_at(labels, p) == 0 for name, p in negative_points(lm).items()}
    return LandmarkCheck(positives, negatives)


@dataclass
class CheckTally:
    hits: int = 0
    positives: int = 0
    clean: int = 0
    negatives: int = 0

    def add(self, check: LandmarkCheck) -> None:
        self.hits += sum(check.positives.values())
        self.positives += len(check.positives)
        self.clean += sum(check.negatives.values())
        self.negatives += len(check.negatives)

    @property
    def hit_rate(self) -> float:
        return self.hits / max(self.positives, 1)

    @property
    def no_spill_rate(self) -> float:
        return self.clean / max(self.negatives, 1)

    def to_json(self) -> dict:
        return {
            "landmark_hits": self.hits,
            "landmark_checks": self.positives,
            "hit_rate": round(self.hit_rate, 4),
            "no_spill": self.clean,
            "spill_checks": self.negatives,
            "no_spill_rate": round(self.no_spill_rate, 4),
        }

    def describe(self) -> str:
        return (
            f"landmark hits {self.hits}/{self.positives} = {self.hit_rate:.1%}; "
            f"no-spill {self.clean}/{self.negatives} = {self.no_spill_rate:.1%}"
        )
