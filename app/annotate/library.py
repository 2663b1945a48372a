"""Folders and projects as the Annotate workspace sees them (no Qt): which files are radiographs to list,
where a folder's project lives, and each image's progress or error."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from osteo_engine import OsteoError, load_radiograph
from osteo_engine.anatomy import BONES
from osteo_engine.annotations import PROJECT_FILE, AnnotationProject
from osteo_engine.io import radiograph_files

from .file_list import FileRow


def project_for_folder(folder: str | Path, fallback_root: str | Path) -> AnnotationProject:
    """The annotation project of a folder of radiographs, with any new files added.

    The project lives in the folder itself when it is writable, else under `fallback_root` in a folder named
    after it (a read-only archive can still be annotated).
    """
    folder = Path(folder).resolve()
    if (folder / PROJECT_FILE).exists():
        project = AnnotationProject.open(folder)
    else:
        root = folder if os.access(folder, os.W_OK) else _fallback(folder, Path(fallback_root))
        project = AnnotationProject.open_or_create(root)
    known = {project.image_path(e.image_id).resolve() for e in project.images}
    new = [p for p in radiograph_files(folder) if p.resolve() not in known]
    if new:
        project.add_images(new)
    return project


def _fallback(folder: Path, root: Path) -> Path:
    digest = hashlib.sha1(str(folder).encode()).hexdigest()[:8]
    path = root / f"{folder.name}-{digest}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def bones_done(labels: np.ndarray) -> int:
    counts = np.bincount(labels.ravel(), minlength=256)
    return int(sum(counts[v] > 0 for v in BONES))


def scan_row(project: AnnotationProject, image_id: str, check_image: bool = True) -> FileRow:
    """Progress per rater and, when asked, whether the radiograph loads."""
    path = project.image_path(image_id)
    row = FileRow(image_id, path.name)
    annotations, problems = project.load(image_id)
    row.done = {r.rater: bones_done(r.labels) for r in annotations.raters}
    errors = [p.message for p in problems]
    if check_image:
        try:
            load_radiograph(path)
        except OsteoError as exc:
            errors.insert(0, str(exc))
    row.error = "; ".join(errors) or None
    return row


def project_for_image(path: str | Path, fallback_root: str | Path) -> tuple[AnnotationProject, str]:
    """The project holding one radiograph: its folder's project when it lists it, else a per-user project."""
    path = Path(path).resolve()
    if (path.parent / PROJECT_FILE).exists():
        project = AnnotationProject.open(path.parent)
        image_id = project.find_image_path(path)
        if image_id is not None:
            return project, image_id
    project = AnnotationProject.open_or_create(_fallback(path.parent, Path(fallback_root)))
    image_id = project.find_image_path(path) or project.add_images([path])[0]
    return project, image_id
