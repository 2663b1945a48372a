"""DICOM SEG (highdicom): one binary segmentation object per image and rater, for DICOM sources only.

By default a SEG is de-identified (exports/deidentify.py): it carries a pseudonym instead of the patient's name
and ID, no dates of birth or study, and new UIDs, also for the image it refers to, so that annotations can
leave the hospital. `keep_patient=True` copies the patient and study of the source instead, for a SEG that goes
back to the hospital's own PACS beside its image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..anatomy import BONES
from ..annotations import AnnotationProject, safe_rater_name
from ..errors import AnnotationError

MANUFACTURER = "osteo-workstation"


def _segment_description(value: int, name: str):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    bone_code = {"ulna": codes.SCT.Ulna, "radius": codes.SCT.Radius}.get(name, codes.SCT.BoneStructureOfMetacarpal)
    return hd.seg.SegmentDescription(
        segment_number=value,
        segment_label=name,
        segmented_property_category=codes.SCT.AnatomicalStructure,
        segmented_property_type=bone_code,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="SAM-assisted annotation", version="1", family=codes.cid7162.ArtificialIntelligence
        ),
    )


def _creator(keep_patient: bool, rater: str) -> dict:
    """Who drew the masks: named inside the hospital, left out of a de-identified export."""
    return {"content_creator_name": rater.replace(" ", "^")[:64]} if keep_patient else {}


def export_dicom_seg(project: AnnotationProject, out_dir: str | Path, keep_patient: bool = False) -> list[Path]:
    """Write `<out_dir>/<image_id>_<rater>.seg.dcm` for every annotated DICOM image; others are skipped.
    De-identified unless `keep_patient` (module docstring)."""
    import highdicom as hd
    import pydicom

    from .deidentify import project_key, pseudonymised_source

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    annotations, _ = project.load_all()
    written = []
    for image_id, image in annotations.items():
        source_path = project.image_path(image_id)
        if not image.raters or not pydicom.misc.is_dicom(source_path):
            continue
        source = pydicom.dcmread(source_path)
        if not keep_patient:
            source = pseudonymised_source(source, project_key(project.root))
        for number, rater in enumerate(image.raters, start=1):
            if rater.labels.shape != (source.Rows, source.Columns):
                raise AnnotationError(f"{rater.rater}'s label map of {image_id} does not match the DICOM's size.")
            present = [v for v in BONES if (rater.labels == v).any()]
            if not present:
                continue
            masks = np.stack([rater.labels == v for v in present], axis=-1)[None]
            seg = hd.seg.Segmentation(
                source_images=[source],
                pixel_array=masks,
                segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=[_segment_description(i + 1, BONES[v]) for i, v in enumerate(present)],
                series_instance_uid=hd.UID(),
                series_number=900 + number,
                sop_instance_uid=hd.UID(),
                instance_number=1,
                manufacturer=MANUFACTURER,
                manufacturer_model_name="osteo",
                software_versions="0.1.0",
                device_serial_number="0",
                series_description=f"bones ({rater.rater})",
                **_creator(keep_patient, rater.rater),
            )
            seg.PatientOrientation = source.get("PatientOrientation", "")  # type 2 in a SEG of a 2-D image
            path = out_dir / f"{image_id}_{safe_rater_name(rater.rater)}.seg.dcm"
            seg.save_as(path)
            written.append(path)
    return written
