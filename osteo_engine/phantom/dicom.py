"""A phantom radiograph as a realistic DX DICOM file: acquisition tags filled, no real person's data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .cohort import generate_subject

DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"


def _code(value: str, scheme: str, meaning: str):
    import pydicom

    item = pydicom.Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def write_phantom_dicom(
    path: str | Path, seed: int = 0, index: int = 0, size: tuple[int, int] = (1024, 1280), compress: bool = True
) -> Path:
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

    subject = generate_subject(seed, index, size, raters=0)
    stored = (subject.image >> 4).astype(np.uint16)  # a 12-bit detector
    uid_prefix = "1.2.826.0.1.3680043.8.498."
    # UIDs derived from the seed keep the file reproducible
    study, series, instance = (generate_uid(uid_prefix, [f"phantom-{seed}-{index}-{k}"]) for k in "abc")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX_FOR_PRESENTATION
    meta.MediaStorageSOPInstanceUID = instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = DX_FOR_PRESENTATION, instance
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientName, ds.PatientID = "PHANTOM^HAND", f"PHANTOM-{seed:04d}-{index:05d}"
    ds.PatientSex, ds.PatientAge = subject.latent.sex, f"{int(subject.latent.age):03d}Y"
    ds.PatientBirthDate, ds.StudyDate, ds.StudyTime = "", "20000101", "000000"
    ds.AccessionNumber, ds.ReferringPhysicianName, ds.StudyID = "", "", "1"
    ds.Modality, ds.PresentationIntentType, ds.Manufacturer = "DX", "FOR PRESENTATION", "osteo phantom"
    ds.ManufacturerModelName, ds.BodyPartExamined, ds.ViewPosition = "synthetic", "HAND", "PA"
    ds.ImageLaterality = "R" if subject.pose.right_hand else "L"
    ds.PatientOrientation = ["A", "F"] if not subject.pose.right_hand else ["P", "F"]
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.KVP, ds.ExposureInuAs = 50, 2000
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.BurnedInAnnotation, ds.LossyImageCompression, ds.PresentationLUTShape = "NO", "00", "IDENTITY"
    ds.DetectorType, ds.PositionerType = "DIRECT", "NONE"
    ds.AnatomicRegionSequence = [_code("85562004", "SCT", "Hand")]
    ds.AcquisitionContextSequence = []
    ds.PixelIntensityRelationship, ds.PixelIntensityRelationshipSign = "LOG", 1
    spacing = round(subject.mm_per_pixel, 5)
    ds.ImagerPixelSpacing = ds.PixelSpacing = [spacing, spacing]
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "US"
    lo, hi = np.percentile(stored, [1, 99.8])
    ds.WindowCenter, ds.WindowWidth = int((lo + hi) / 2), int(max(hi - lo, 1))
    ds.PixelData = stored.tobytes()
    if compress:
        ds.compress(RLELossless, encoding_plugin="pydicom")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
