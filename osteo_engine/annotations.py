"""Annotation projects: per image, one or more raters' label maps with their weights and prompts.

Layout of a project folder::

    project.json                              images (relative paths) and the label names
    annotations/<image_id>/<rater>.json       the record: weight, prompts per bone, author, time, PNG name
    annotations/<image_id>/<rater>.<hash>.png the label map, single-channel 8-bit

The JSON record is the commit point: a new label map is written under a new, content-addressed name
first, then the record is replaced atomically, then stale maps are removed. A crash at any moment
leaves the old or the new annotation, never a mixture.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from .anatomy import BONES, NUM_CLASSES
from .errors import AnnotationError
from .storage import atomic_write_bytes, atomic_write_json, remove_stale_temporaries

SCHEMA_VERSION = 1
PROJECT_FILE = "project.json"
ANNOTATION_DIR = "annotations"
_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
_RATER = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass
class BonePrompts:
    """The SAM prompts that made one bone: points (x, y, positive) and an optional box (x0, y0, x1, y1)."""

    points: list[tuple[float, float, bool]] = field(default_factory=list)
    box: tuple[float, float, float, float] | None = None

    def to_json(self) -> dict:
        return {
            "points": [[float(x), float(y), bool(p)] for x, y, p in self.points],
            "box": None if self.box is None else [float(v) for v in self.box],
        }

    @staticmethod
    def from_json(obj: dict) -> BonePrompts:
        box = obj.get("box")
        return BonePrompts(
            [(float(x), float(y), bool(p)) for x, y, p in obj.get("points", [])],
            None if box is None else tuple(float(v) for v in box),
        )


@dataclass
class RaterAnnotation:
    rater: str
    labels: np.ndarray  # (H, W) uint8, values 0..7
    weight: float | None = None  # β; None means "share uniformly"
    prompts: dict[str, BonePrompts] = field(default_factory=dict)
    author: str = ""
    updated: str = ""


@dataclass
class ImageAnnotations:
    image_id: str
    raters: list[RaterAnnotation]

    @property
    def weights(self) -> np.ndarray:
        """β per rater, summing to one; raters without a weight share uniformly."""
        raw = np.array([1.0 if r.weight is None else float(r.weight) for r in self.raters], float)
        return raw / raw.sum() if raw.sum() > 0 else np.full(len(raw), 1.0 / max(len(raw), 1))


@dataclass(frozen=True)
class LoadProblem:
    path: str
    message: str


@dataclass(frozen=True)
class ImageEntry:
    image_id: str
    path: str  # relative to the project folder, or absolute when outside it


def validate_label_map(labels: np.ndarray, shape: tuple[int, int] | None = None, name: str = "label map") -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise AnnotationError(f"{name} must be a 2-D array, got shape {labels.shape}.")
    if shape is not None and labels.shape != tuple(shape):
        raise AnnotationError(f"{name} is {labels.shape[1]}×{labels.shape[0]} but the image is {shape[1]}×{shape[0]}.")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise AnnotationError(f"{name} holds values outside 0–{NUM_CLASSES - 1}.")
    return labels.astype(np.uint8, copy=False)


def encode_label_png(labels: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", validate_label_map(labels))
    if not ok:
        raise AnnotationError("the label map could not be encoded as PNG.")
    return buf.tobytes()


def decode_label_png(data: bytes, name: str) -> np.ndarray:
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise AnnotationError(f"{name} is not a readable PNG.")
    if arr.ndim != 2 or arr.dtype != np.uint8:
        raise AnnotationError(f"{name} is not a single-channel 8-bit label map.")
    return validate_label_map(arr, name=name)


class AnnotationProject:
    """A folder of images and their raters' annotations."""

    def __init__(self, root: Path, images: list[ImageEntry], rater_names: dict[str, str] | None = None):
        self.root = Path(root)
        self._images = {e.image_id: e for e in images}
        self._rater_names = dict(rater_names or {})  # file key -> the rater's name exactly as given

    # ------------------------------------------------------------ project file
    @classmethod
    def create(cls, root: str | Path, images: list[str | Path] = ()) -> AnnotationProject:
        root = Path(root)
        if (root / PROJECT_FILE).exists():
            raise AnnotationError(f"{root} already holds an annotation project.")
        project = cls(root, [])
        for path in images:
            project._add(Path(path))
        project._save_project()
        return project

    @classmethod
    def open(cls, root: str | Path) -> AnnotationProject:
        root = Path(root)
        path = root / PROJECT_FILE
        try:
            obj = json.loads(path.read_text("utf-8"))
            images = [ImageEntry(str(e["id"]), str(e["path"])) for e in obj["images"]]
            rater_names = {str(k): str(v) for k, v in obj.get("raters", {}).items()}
        except FileNotFoundError:
            raise AnnotationError(f"{root} is not an annotation project (no {PROJECT_FILE}).") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise AnnotationError(f"{path.name} in {root} is corrupt ({exc}).") from exc
        if obj.get("schema_version", 0) > SCHEMA_VERSION:
            raise AnnotationError(f"{path.name} was written by a newer version (schema {obj['schema_version']}).")
        remove_stale_temporaries(root)
        remove_stale_temporaries(root / ANNOTATION_DIR, recursive=True)
        return cls(root, images, rater_names)

    @classmethod
    def open_or_create(cls, root: str | Path) -> AnnotationProject:
        return cls.open(root) if (Path(root) / PROJECT_FILE).exists() else cls.create(root)

    def add_images(self, paths: list[str | Path]) -> list[str]:
        ids = [self._add(Path(p)) for p in paths]
        self._save_project()
        return ids

    def _add(self, path: Path) -> str:
        rel = _relative(path, self.root)
        for entry in self._images.values():
            if entry.path == rel:
                return entry.image_id
        base = _NAME.sub("_", Path(rel).stem) or "image"
        image_id, k = base, 1
        while image_id in self._images:
            k += 1
            image_id = f"{base}_{k}"
        self._images[image_id] = ImageEntry(image_id, rel)
        return image_id

    def _save_project(self) -> None:
        atomic_write_json(
            self.root / PROJECT_FILE,
            {
                "schema_version": SCHEMA_VERSION,
                "labels": {str(k): v for k, v in {0: "background", **BONES}.items()},
                "images": [{"id": e.image_id, "path": e.path} for e in self._images.values()],
                "raters": dict(sorted(self._rater_names.items())),
            },
        )

    @property
    def images(self) -> list[ImageEntry]:
        return list(self._images.values())

    def image_path(self, image_id: str) -> Path:
        entry = self._entry(image_id)
        path = Path(entry.path)
        return path if path.is_absolute() else self.root / path

    def find_image(self, name: str) -> str | None:
        """The id of the image whose id, file name or stem is `name`."""
        stem = Path(name).stem
        for e in self._images.values():
            if name in (e.image_id, Path(e.path).name) or stem in (e.image_id, Path(e.path).stem):
                return e.image_id
        return None

    def find_image_path(self, path: str | Path) -> str | None:
        """The id of the image stored at `path` (absolute, or relative to the project folder)."""
        rel = _relative(Path(path), self.root)
        return next((e.image_id for e in self._images.values() if e.path == rel), None)

    def _entry(self, image_id: str) -> ImageEntry:
        try:
            return self._images[image_id]
        except KeyError:
            raise AnnotationError(f"the project has no image {image_id!r}.") from None

    # ------------------------------------------------------------ annotations
    def save(self, image_id: str, annotation: RaterAnnotation, when: str | None = None) -> None:
        self._entry(image_id)
        name = annotation.rater.strip()
        rater = self._claim_rater(name)
        folder = self.root / ANNOTATION_DIR / image_id
        png = encode_label_png(annotation.labels)
        digest = hashlib.sha256(png).hexdigest()
        png_name = f"{rater}.{digest[:16]}.png"
        record = {
            "schema_version": SCHEMA_VERSION,
            "rater": rater,
            "rater_name": name,
            "weight": annotation.weight,
            "author": annotation.author or rater,
            "updated": when or datetime.now(UTC).isoformat(timespec="seconds"),
            "label_map": png_name,
            "label_map_sha256": digest,
            "shape": list(annotation.labels.shape),
            "prompts": {bone: p.to_json() for bone, p in annotation.prompts.items()},
        }
        try:
            if not (folder / png_name).exists():
                atomic_write_bytes(folder / png_name, png)
            atomic_write_json(folder / f"{rater}.json", record)
        except OSError as exc:
            raise AnnotationError(
                f"could not save {rater}'s annotation of {image_id} ({exc.strerror or exc}); "
                "the previous version is unchanged."
            ) from exc
        self._remove_stale_maps(folder, rater, keep=png_name)

    def _claim_rater(self, name: str) -> str:
        """The file key of rater `name`. Names that differ only in what a file name cannot hold ("dr kim" and
        "dr_kim", "Dr.Lee" and "Dr Lee") or in case would share one file, so the second to come is refused
        rather than allowed to replace the first's work. The first use of a key registers its name."""
        key = safe_rater_name(name)
        owner = next(((k, v) for k, v in self._rater_names.items() if k.lower() == key.lower()), None)
        if owner is None:
            owner = self._legacy_owner(key)
        if owner is not None and owner[1] != name:
            raise AnnotationError(
                f"the rater name {name!r} cannot be told apart from {owner[1]!r}, who already annotates this "
                f"project (both would be stored as {owner[0]}); choose a distinct rater name."
            )
        if key not in self._rater_names:
            self._rater_names[key] = name
            self._save_project()
        return key

    def _legacy_owner(self, key: str) -> tuple[str, str] | None:
        """(key, name) of a rater that saved under `key` before names were registered in project.json."""
        for record in sorted((self.root / ANNOTATION_DIR).glob(f"*/{key}.json")):
            try:
                obj = json.loads(record.read_text("utf-8"))
                return key, str(obj.get("rater_name") or obj["rater"])
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue
        return None

    def raters(self, image_id: str) -> list[str]:
        folder = self.root / ANNOTATION_DIR / image_id
        return sorted(p.stem for p in folder.glob("*.json")) if folder.exists() else []

    def load(self, image_id: str) -> tuple[ImageAnnotations, list[LoadProblem]]:
        self._entry(image_id)
        raters, problems = [], []
        for rater in self.raters(image_id):
            try:
                raters.append(self._load_rater(image_id, rater))
            except AnnotationError as exc:
                problems.append(LoadProblem(str(self.root / ANNOTATION_DIR / image_id / f"{rater}.json"), str(exc)))
        return ImageAnnotations(image_id, raters), problems

    def load_all(self) -> tuple[dict[str, ImageAnnotations], list[LoadProblem]]:
        out, problems = {}, []
        for image_id in self._images:
            annotations, found = self.load(image_id)
            out[image_id] = annotations
            problems.extend(found)
        return out, problems

    def _load_rater(self, image_id: str, rater: str) -> RaterAnnotation:
        folder = self.root / ANNOTATION_DIR / image_id
        record_path = folder / f"{rater}.json"
        try:
            record = json.loads(record_path.read_text("utf-8"))
            png_path = folder / record["label_map"]
            data = png_path.read_bytes()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AnnotationError(f"{record_path.name} of image {image_id} is corrupt or incomplete ({exc}).") from exc
        if hashlib.sha256(data).hexdigest() != record.get("label_map_sha256"):
            raise AnnotationError(f"{png_path.name} of image {image_id} does not match its record (corrupt file).")
        labels = decode_label_png(data, png_path.name)
        try:
            prompts = {bone: BonePrompts.from_json(p) for bone, p in record.get("prompts", {}).items()}
        except (ValueError, TypeError) as exc:
            raise AnnotationError(f"{record_path.name} of image {image_id} has malformed prompts ({exc}).") from exc
        return RaterAnnotation(
            str(record.get("rater_name") or rater),
            labels,
            record.get("weight"),
            prompts,
            record.get("author", ""),
            record.get("updated", ""),
        )

    @staticmethod
    def _remove_stale_maps(folder: Path, rater: str, keep: str) -> None:
        for old in folder.glob(f"{rater}.*.png"):
            if old.name != keep:
                old.unlink(missing_ok=True)


def safe_rater_name(name: str) -> str:
    cleaned = _RATER.sub("_", name.strip()).strip("_")
    if not cleaned:
        raise AnnotationError("a rater needs a name made of letters, digits, '-' or '_'.")
    return cleaned


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return Path(path).resolve().as_posix()


__all__ = [
    "AnnotationProject",
    "BonePrompts",
    "ImageAnnotations",
    "ImageEntry",
    "LoadProblem",
    "RaterAnnotation",
    "decode_label_png",
    "encode_label_png",
    "safe_rater_name",
    "validate_label_map",
]
