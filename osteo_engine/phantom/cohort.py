"""Writing a phantom cohort: images, true and rater label maps, an annotation project and a manifest."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from ..anatomy import BONE_NAMES
from ..annotations import AnnotationProject, RaterAnnotation
from ..cohort import subject_splits
from ..errors import ConfigError
from ..storage import atomic_write_bytes, atomic_write_json
from .geometry import Pose, build_hand
from .latent import SubjectLatent, draw_subject
from .render import Acquisition, RaterStyle, label_map, rater_label_map, render_radiograph

FIXED_TIME = "2000-01-01T00:00:00+00:00"  # annotation timestamps, so that one seed gives the same bytes
CONFIG_FILE = "phantom.json"


@dataclass(frozen=True)
class PhantomConfig:
    subjects: int
    seed: int
    raters: int = 3
    size: tuple[int, int] = (1024, 1280)  # width, height

    def validate(self) -> None:
        if self.subjects < 1:
            raise ConfigError("a phantom cohort needs at least one subject.")
        if self.raters < 1:
            raise ConfigError("a phantom cohort needs at least one rater.")
        w, h = self.size
        if not (128 <= w <= 6000 and 128 <= h <= 6000):
            raise ConfigError(f"image size {w}x{h} is outside 128–6000 pixels per side.")


@dataclass
class PhantomSubject:
    subject_id: str
    latent: SubjectLatent
    pose: Pose
    mm_per_pixel: float
    image: np.ndarray  # uint16
    truth: np.ndarray  # uint8 label map
    raters: list[np.ndarray]


def subject_id(index: int) -> str:
    return f"P{index + 1:05d}"


def generate_subject(seed: int, index: int, size: tuple[int, int] = (1024, 1280), raters: int = 3) -> PhantomSubject:
    """Render one subject; the same (seed, index) always gives the same subject."""
    rng = np.random.default_rng([seed, index])
    latent = draw_subject(rng)
    pose = Pose.draw(rng)
    acquisition = Acquisition.draw(rng)
    styles = [RaterStyle.draw(rng).with_habit(k) for k in range(raters)]
    hand = build_hand(latent, pose, size, rng)
    image = render_radiograph(hand, size, acquisition, rng, pose.right_hand)
    truth = label_map(hand, size)
    maps = [rater_label_map(hand, size, style, rng) for style in styles]
    return PhantomSubject(subject_id(index), latent, pose, hand.mm_per_pixel, image, truth, maps)


def manifest_fields() -> list[str]:
    fields = ["subject_id", "image", "t_score", "label", "split", "age", "sex", "hand", "pixel_spacing_mm"]
    for bone in BONE_NAMES:
        fields += [f"{bone}_W_px", f"{bone}_T_px", f"{bone}_ci", f"{bone}_density"]
    return fields


def _manifest_row(s: PhantomSubject, split: str) -> dict:
    row = {
        "subject_id": s.subject_id,
        "image": f"images/{s.subject_id}.png",
        "t_score": f"{s.latent.t_score:.4f}",
        "label": s.latent.label,
        "split": split,
        "age": f"{s.latent.age:.1f}",
        "sex": s.latent.sex,
        "hand": "right" if s.pose.right_hand else "left",
        "pixel_spacing_mm": f"{s.mm_per_pixel:.5f}",
    }
    for bone, b in s.latent.bones.items():
        width_px = b.width_mm * s.pose.scale / s.mm_per_pixel
        row.update(
            {
                f"{bone}_W_px": f"{width_px:.4f}",
                f"{bone}_T_px": f"{b.cortical_index * width_px / 2:.4f}",
                f"{bone}_ci": f"{b.cortical_index:.5f}",
                f"{bone}_density": f"{b.density:.5f}",
            }
        )
    return row


def _write_subject(out_dir: str, seed: int, index: int, size: tuple[int, int], raters: int) -> dict:
    out = Path(out_dir)
    s = generate_subject(seed, index, size, raters)
    atomic_write_bytes(out / "images" / f"{s.subject_id}.png", _png(s.image))
    atomic_write_bytes(truth_path(out, s.subject_id), _png(s.truth))
    project = AnnotationProject.open(out)
    for k, labels in enumerate(s.raters, start=1):
        project.save(s.subject_id, RaterAnnotation(f"rater{k}", labels, author=f"phantom-rater{k}"), when=FIXED_TIME)
    return _manifest_row(s, split="")


def truth_path(cohort_dir: Path, subject_id: str) -> Path:
    """Where a phantom cohort keeps a subject's true label map (uint8, BONES' values)."""
    return cohort_dir / "truth" / f"{subject_id}.png"


def read_truth(manifest: str | Path, subject_id: str) -> np.ndarray:
    """The true label map (H, W) uint8 of a subject of the phantom cohort whose manifest is `manifest`.
    Raises ConfigError when there is none (only `osteo phantom` cohorts have them)."""
    path = truth_path(Path(manifest).parent, subject_id)
    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if labels is None:
        raise ConfigError(f"no true label map at {path}: only phantom cohorts (`osteo phantom`) have them.")
    return labels


def _png(arr: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise OSError("PNG encoding failed")
    return buf.tobytes()


def write_cohort(
    out_dir: str | Path,
    config: PhantomConfig,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the cohort into `out_dir` and return the manifest's path."""
    config.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ids = [subject_id(i) for i in range(config.subjects)]
    if (out / "project.json").exists():
        (out / "project.json").unlink()
    AnnotationProject.create(out, [out / "images" / f"{i}.png" for i in ids])
    workers = workers or min(os.cpu_count() or 1, 8)
    rows: list[dict] = []
    jobs = [(str(out), config.seed, i, tuple(config.size), config.raters) for i in range(config.subjects)]
    if workers == 1:
        for job in jobs:
            rows.append(_write_subject(*job))
            progress and progress(len(rows), len(jobs))
    else:
        with ProcessPoolExecutor(workers) as pool:
            for row in pool.map(_write_subject, *zip(*jobs), chunksize=4):
                rows.append(row)
                progress and progress(len(rows), len(jobs))
    splits = subject_splits({r["subject_id"]: int(r["label"]) for r in rows}, config.seed)
    for r in rows:
        r["split"] = splits[r["subject_id"]]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=manifest_fields(), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    manifest = out / "manifest.csv"
    atomic_write_bytes(manifest, text.getvalue().encode("utf-8"))
    atomic_write_json(out / CONFIG_FILE, {**asdict(config), "size": list(config.size), "generator": "osteo phantom v1"})
    return manifest


def read_config(out_dir: str | Path) -> PhantomConfig:
    path = Path(out_dir) / CONFIG_FILE
    try:
        obj = json.loads(path.read_text("utf-8"))
        return PhantomConfig(int(obj["subjects"]), int(obj["seed"]), int(obj["raters"]), tuple(obj["size"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{out_dir} is not a phantom cohort ({CONFIG_FILE} missing or corrupt).") from exc
