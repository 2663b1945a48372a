"""Cohort manifests: one CSV reader for phantom cohorts and hospital exports alike.

Columns: subject_id, image (path relative to the CSV), t_score and/or label, optional split; any other
column is kept as an extra. Rows with neither t_score nor label are unlabelled images (usable for
self-supervised pretraining). Errors name CSV line numbers, never subject identifiers.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import CohortError
from .storage import atomic_write_json

OSTEOPOROSIS_T_SCORE = -2.5  # WHO: T-score at or below -2.5
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
T_SCORE_RANGE = (-8.0, 8.0)
_ALIASES = {
    "subject_id": ("subjectid", "subject", "patientid", "patient", "id"),
    "image": ("image", "imagepath", "file", "filename", "path", "dicom"),
    "t_score": ("tscore", "t"),
    "label": ("label", "osteoporosis", "target"),
    "split": ("split", "fold", "set"),
}


@dataclass(frozen=True)
class ManifestRow:
    line: int
    subject_id: str
    image: Path
    t_score: float | None
    label: int | None
    split: str
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def labelled(self) -> bool:
        return self.label is not None


@dataclass(frozen=True)
class Cohort:
    path: Path
    rows: list[ManifestRow]
    splits_given: bool

    def labelled(self) -> list[ManifestRow]:
        return [r for r in self.rows if r.labelled]

    def unlabelled(self) -> list[ManifestRow]:
        return [r for r in self.rows if not r.labelled]

    def split(self, name: str, labelled_only: bool = True) -> list[ManifestRow]:
        return [r for r in self.rows if r.split == name and (r.labelled or not labelled_only)]

    def subjects(self) -> list[str]:
        return sorted({r.subject_id for r in self.rows})

    def summary(self) -> dict:
        labelled = self.labelled()
        subjects = {r.subject_id: r.label for r in self.rows}
        return {
            "rows": len(self.rows),
            "subjects": len(subjects),
            "labelled_rows": len(labelled),
            "unlabelled_rows": len(self.rows) - len(labelled),
            "positive_subjects": sum(1 for v in subjects.values() if v == 1),
            "negative_subjects": sum(1 for v in subjects.values() if v == 0),
            "splits": {s: len({r.subject_id for r in self.rows if r.split == s}) for s in SPLITS},
            "splits_given": self.splits_given,
        }


def label_from_t_score(t_score: float) -> int:
    return int(t_score <= OSTEOPOROSIS_T_SCORE)


def read_manifest(
    path: str | Path, seed: int = 0, check_files: bool = True, assignment: dict[str, str] | None = None
) -> Cohort:
    """Read and validate a manifest; raises `CohortError` listing every problem found. Splits come from the
    manifest's split column, else from `seed`; `assignment` (from `load_split_assignment`) overrides both for
    the subjects it knows, so that every step of a run sees the split its pretraining saw."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = _map_columns(reader.fieldnames or [], path)
            raw = list(reader)
    except CohortError:
        raise
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CohortError(f"{path.name} could not be read as a CSV file ({exc}).") from exc
    problems: list[str] = []
    rows = [
        r
        for r in (_parse_row(i + 2, rec, columns, path.parent, check_files, problems) for i, rec in enumerate(raw))
        if r is not None
    ]
    if not rows and not problems:
        problems.append("the manifest has no rows")
    _check_duplicates(rows, problems)
    _check_subject_consistency(rows, problems)
    if problems:
        shown = "; ".join(problems[:20]) + (f"; and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise CohortError(f"{path.name} is not a valid manifest: {shown}.")
    splits_given = any(r.split for r in rows)
    if not splits_given:
        labels: dict[str, int | None] = {}
        for r in rows:
            labels[r.subject_id] = r.label if r.label is not None else labels.get(r.subject_id)
        by_seed = subject_splits(labels, seed)
        rows = [
            ManifestRow(r.line, r.subject_id, r.image, r.t_score, r.label, by_seed[r.subject_id], r.extra) for r in rows
        ]
    if assignment:
        rows = [
            ManifestRow(
                r.line,
                r.subject_id,
                r.image,
                r.t_score,
                r.label,
                assignment.get(subject_key(r.subject_id), r.split),
                r.extra,
            )
            for r in rows
        ]
    return Cohort(path, rows, splits_given)


def subject_key(subject_id: str) -> str:
    """A stand-in for a subject ID in files a run writes (run folders may travel; identifiers must not)."""
    return hashlib.sha256(f"osteo-subject:{subject_id}".encode()).hexdigest()[:20]


def save_split_assignment(path: str | Path, subjects, splits) -> None:
    """Write which split each subject (by `subject_key`) is in; `subjects` and `splits` run in parallel."""
    pairs = {subject_key(str(s)): str(v) for s, v in zip(subjects, splits)}
    atomic_write_json(path, {"kind": "subject splits", "subjects": dict(sorted(pairs.items()))})


def load_split_assignment(path: str | Path) -> dict[str, str] | None:
    """subject_key -> split from `save_split_assignment`, or None when `path` does not exist."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        pairs = json.loads(path.read_text("utf-8"))["subjects"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CohortError(f"{path} is not a readable split file ({exc}).") from None
    if not isinstance(pairs, dict) or not set(pairs.values()) <= set(SPLITS):
        raise CohortError(f"{path} is not a split file: its splits must be train, val or test.")
    return pairs


def subject_splits(subject_labels: dict[str, int | None], seed: int) -> dict[str, str]:
    """Subject-wise 80/10/10 split, stratified by label (unlabelled subjects form their own group)."""
    rng = np.random.default_rng(seed)
    out: dict[str, str] = {}
    groups: dict[int | None, list[str]] = {}
    for subject, label in sorted(subject_labels.items(), key=lambda kv: kv[0]):
        groups.setdefault(label, []).append(subject)
    for label in sorted(groups, key=lambda v: -1 if v is None else v):
        members = [groups[label][i] for i in rng.permutation(len(groups[label]))]
        n_val = int(round(SPLIT_FRACTIONS[1] * len(members)))
        n_test = int(round(SPLIT_FRACTIONS[2] * len(members)))
        for k, subject in enumerate(members):
            out[subject] = "test" if k < n_test else "val" if k < n_test + n_val else "train"
    return out


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _map_columns(fieldnames: list[str], path: Path) -> dict[str, str]:
    found = {}
    normalised = {_normalise(f): f for f in fieldnames}
    for key, aliases in _ALIASES.items():
        for alias in (_normalise(key), *aliases):
            if alias in normalised:
                found[key] = normalised[alias]
                break
    missing = [k for k in ("subject_id", "image") if k not in found]
    if missing:
        raise CohortError(f"{path.name} lacks the column(s) {', '.join(missing)} (found: {', '.join(fieldnames)}).")
    return found


def _parse_row(line, rec, columns, base, check_files, problems) -> ManifestRow | None:
    get = lambda key: (rec.get(columns[key]) or "").strip() if key in columns else ""  # noqa: E731
    subject, image = get("subject_id"), get("image")
    if not subject or not image:
        problems.append(f"line {line} lacks a subject_id or an image")
        return None
    image_path = Path(image) if Path(image).is_absolute() else base / image
    if check_files and not image_path.is_file():
        problems.append(f"line {line}: image file {image} not found")
    t_score = label = None
    if get("t_score"):
        try:
            t_score = float(get("t_score"))
        except ValueError:
            problems.append(f"line {line}: t_score {get('t_score')!r} is not a number")
        else:
            if not math.isfinite(t_score) or not T_SCORE_RANGE[0] <= t_score <= T_SCORE_RANGE[1]:
                problems.append(
                    f"line {line}: t_score {t_score} is outside the possible range "
                    f"{T_SCORE_RANGE[0]:g} to {T_SCORE_RANGE[1]:g}"
                )
                t_score = None
    if get("label"):
        if get("label") not in ("0", "1", "0.0", "1.0"):
            problems.append(f"line {line}: label {get('label')!r} is not 0 or 1")
        else:
            label = int(float(get("label")))
    if t_score is not None:
        derived = label_from_t_score(t_score)
        if label is not None and label != derived:
            problems.append(f"line {line}: label {label} contradicts t_score {t_score} (threshold -2.5)")
        label = derived
    split = get("split").lower()
    if split and split not in SPLITS:
        problems.append(f"line {line}: split {split!r} is not train, val or test")
    known = set(columns.values())
    extra = {k: v for k, v in rec.items() if k not in known and k is not None}
    return ManifestRow(line, subject, image_path, t_score, label, split, extra)


def _check_duplicates(rows: list[ManifestRow], problems: list[str]) -> None:
    seen: dict[Path, int] = {}
    for r in rows:
        key = r.image.resolve()
        if key in seen:
            problems.append(f"line {r.line} repeats the image of line {seen[key]}")
        else:
            seen[key] = r.line


def _check_subject_consistency(rows: list[ManifestRow], problems: list[str]) -> None:
    first: dict[str, ManifestRow] = {}
    for r in rows:
        f = first.setdefault(r.subject_id, r)
        if r.label is not None and f.label is not None and r.label != f.label:
            problems.append(f"lines {f.line} and {r.line} give one subject conflicting labels")
        if r.split != f.split:
            problems.append(f"lines {f.line} and {r.line} put one subject in different splits")
