"""DICOM SEG (highdicom): one binary segmentation object per image and rater, for DICOM sources only."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..anatomy import BONES
from ..annotations import AnnotationProject
from ..errors import AnnotationError

MANUFACTURER = "osteo-workstation"


def _segment_description(value: int, name: str):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    bone_code = {"ulna": codes.SCT.Ulna, "radius": codes.SCT.Radius}.get(name, codes.SCT.BoneStructureOfMetacarpal)
    return hd.seg.SegmentDescription(
        segment_number=value, segment_label=name,
        segmented_property_category=codes.SCT.AnatomicalStructure, segmented_property_type=bone_code,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="SAM-assisted annotation", version="1", family=codes.cid7162.ArtificialIntelligence),
    )


def export_dicom_seg(project: AnnotationProject, out_dir: str | Path) -> list[Path]:
    """Write `<out_dir>/<image_id>_<rater>.seg.dcm` for every annotated DICOM image; others are skipped."""
    import highdicom as hd
    import pydicom

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    annotations, _ = project.load_all()
    written = []
    for image_id, image in annotations.items():
        source_path = project.image_path(image_id)
        if not image.raters or not pydicom.misc.is_dicom(source_path):
            continue
        source = pydicom.dcmread(source_path)
        for number, rater in enumerate(image.raters, start=1):
            if rater.labels.shape != (source.Rows, source.Columns):
                raise AnnotationError(f"{rater.rater}'s label map of {image_id} does not match the DICOM's size.")
            present = [v for v in BONES if (rater.labels == v).any()]
            if not present:
                continue
            masks = np.stack([rater.labels == v for v in present], axis=-1)[None]
            seg = hd.seg.Segmentation(
                source_images=[source], pixel_array=masks,
                segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=[_segment_description(i + 1, BONES[v]) for i, v in enumerate(present)],
                series_instance_uid=hd.UID(), series_number=900 + number, sop_instance_uid=hd.UID(),
                instance_number=1, manufacturer=MANUFACTURER, manufacturer_model_name="osteo",
                software_versions="0.1.0", device_serial_number="0", series_description=f"bones ({rater.rater})",
            )
            path = out_dir / f"{image_id}_{rater.rater}.seg.dcm"
            seg.save_as(path)
            written.append(path)
    return written
