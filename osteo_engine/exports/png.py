"""PNG label maps: export one single-channel 8-bit PNG per image and rater; import them back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..annotations import AnnotationProject, RaterAnnotation, encode_label_png, validate_label_map
from ..errors import AnnotationError
from ..storage import atomic_write_bytes


def export_png(project: AnnotationProject, out_dir: str | Path) -> list[Path]:
    """Write `<out_dir>/<rater>/<image_id>.png` for every rater of every image."""
    out_dir = Path(out_dir)
    written = []
    annotations, _ = project.load_all()
    for image_id, image in annotations.items():
        for rater in image.raters:
            path = out_dir / rater.rater / f"{image_id}.png"
            atomic_write_bytes(path, encode_label_png(rater.labels))
            written.append(path)
    return written


def read_label_png(path: str | Path) -> np.ndarray:
    """Read a label map made elsewhere: 8-bit grey or palette PNG (palette indices are the labels)."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            if im.mode in ("L", "P"):
                arr = np.array(im)
            elif im.mode in ("RGB", "RGBA", "LA"):
                rgb = np.array(im.convert("RGB"))
                if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
                    raise AnnotationError(f"{path.name} is a colour image, not a label map of values 0–7.")
                arr = rgb[..., 0]
            elif im.mode in ("I", "I;16", "I;16B"):
                arr = np.array(im).astype(np.int64)
            else:
                raise AnnotationError(f"{path.name} has pixel mode {im.mode}, not a label map.")
    except AnnotationError:
        raise
    except Exception as exc:
        raise AnnotationError(f"{path.name} is not a readable PNG ({exc}).") from exc
    return validate_label_map(arr, name=path.name)


def import_png(project: AnnotationProject, in_dir: str | Path, rater: str) -> list[str]:
    """Import `<in_dir>/<image>.png` label maps for the project's images as `rater`; returns image ids."""
    imported = []
    for path in sorted(Path(in_dir).glob("*.png")):
        image_id = project.find_image(path.name)
        if image_id is None:
            raise AnnotationError(f"{path.name} matches no image of the project.")
        labels = read_label_png(path)
        _check_shape(project, image_id, labels, path.name)
        project.save(image_id, RaterAnnotation(rater, labels, author=rater))
        imported.append(image_id)
    return imported


def _check_shape(project: AnnotationProject, image_id: str, labels: np.ndarray, name: str) -> None:
    from ..io import load_radiograph

    image = load_radiograph(project.image_path(image_id))
    if labels.shape != image.pixels.shape:
        raise AnnotationError(
            f"{name} is {labels.shape[1]}×{labels.shape[0]} but its image is {image.width}×{image.height}."
        )
