"""COCO JSON with RLE masks: one annotation per image, rater and bone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from ..anatomy import BONE_IDS, BONES
from ..annotations import AnnotationProject, RaterAnnotation
from ..errors import AnnotationError
from ..storage import atomic_write_json


def to_coco(project: AnnotationProject) -> dict:
    annotations, _ = project.load_all()
    images, anns = [], []
    for index, entry in enumerate(project.images, start=1):
        raters = annotations[entry.image_id].raters
        if not raters:
            continue
        height, width = raters[0].labels.shape
        images.append({"id": index, "file_name": Path(entry.path).name, "width": width, "height": height})
        for rater in raters:
            for value in BONES:
                binary = np.asfortranarray((rater.labels == value).astype(np.uint8))
                if not binary.any():
                    continue
                rle = mask_utils.encode(binary)
                anns.append(
                    {
                        "id": len(anns) + 1,
                        "image_id": index,
                        "category_id": value,
                        "iscrowd": 0,
                        "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
                        "area": float(mask_utils.area(rle)),
                        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                        "rater": rater.rater,
                    }
                )
    return {
        "info": {"description": "hand bone masks (ulna, radius, M1-M5)", "version": "1"},
        "images": images,
        "categories": [{"id": value, "name": name, "supercategory": "bone"} for value, name in BONES.items()],
        "annotations": anns,
    }


def export_coco(project: AnnotationProject, path: str | Path) -> Path:
    path = Path(path)
    atomic_write_json(path, to_coco(project))
    return path


def import_coco(project: AnnotationProject, path: str | Path, default_rater: str) -> list[str]:
    """Read COCO masks (RLE or polygons) whose category names are bone names; returns image ids."""
    path = Path(path)
    try:
        coco = json.loads(path.read_text("utf-8"))
        categories = {c["id"]: c["name"] for c in coco["categories"]}
        images = {im["id"]: im for im in coco["images"]}
        anns = coco["annotations"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AnnotationError(f"{path.name} is not a COCO annotation file ({exc}).") from exc
    by_name = {k.lower(): v for k, v in BONE_IDS.items()}
    maps: dict[tuple[int, str], np.ndarray] = {}
    for ann in anns:
        name = str(categories.get(ann.get("category_id"), "")).lower()
        if name not in by_name:
            raise AnnotationError(f"{path.name}: category {name!r} is not one of the 7 bones.")
        image = images.get(ann.get("image_id"))
        if image is None:
            raise AnnotationError(f"{path.name}: annotation {ann.get('id')} refers to no image.")
        key = (image["id"], str(ann.get("rater", default_rater)))
        labels = maps.setdefault(key, np.zeros((image["height"], image["width"]), np.uint8))
        labels[_decode(ann["segmentation"], image["height"], image["width"]) > 0] = by_name[name]
    imported = []
    for (coco_id, rater), labels in maps.items():
        image_id = project.find_image(images[coco_id]["file_name"])
        if image_id is None:
            raise AnnotationError(f"{path.name}: {images[coco_id]['file_name']} matches no image of the project.")
        project.save(image_id, RaterAnnotation(rater, labels, author=rater))
        imported.append(image_id)
    return sorted(set(imported))


def _decode(segmentation, height: int, width: int) -> np.ndarray:
    if isinstance(segmentation, list):  # polygons
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = {"size": segmentation["size"], "counts": segmentation["counts"].encode("ascii")}
    return mask_utils.decode(rle)
