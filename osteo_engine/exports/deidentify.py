"""Pseudonymised stand-ins for source DICOM images, so that derived objects (DICOM SEG) can leave the hospital.

A stand-in keeps only what describes the image (size, pixel format, spacing, orientation, body part, view)
and replaces everything that identifies the patient or the visit: patient name and ID become one pseudonym,
birth date, sex, study date, accession number and physician are emptied, and every UID is replaced. The
pseudonym and the new UIDs are keyed hashes (HMAC-SHA256) under a secret kept in the annotation project, so
the same patient and the same image get the same pseudonym and UIDs in every export from that project, while
nobody without the project's key can map them back to the originals.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from ..storage import atomic_write_bytes

KEY_FILE = ".deidentification-key"
METHOD = "osteo-workstation: keyed pseudonym, no dates, new UIDs"  # the attribute holds 64 characters
# Attributes that describe the image, never the person; everything else of the source is left out.
IMAGE_ATTRIBUTES = (
    "SOPClassUID",
    "Modality",
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "NumberOfFrames",
    "PixelSpacing",
    "ImagerPixelSpacing",
    "PatientOrientation",
    "ImageOrientationPatient",
    "ImagePositionPatient",
    "SliceThickness",
    "ImageLaterality",
    "Laterality",
    "BodyPartExamined",
    "ViewPosition",
    "ImageType",
    "Manufacturer",
    "ManufacturerModelName",
)
REPLACED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")


def project_key(project_root: str | Path) -> bytes:
    """The project's pseudonymisation secret, made on first use (32 random bytes in `KEY_FILE`)."""
    path = Path(project_root) / KEY_FILE
    if path.exists():
        return path.read_bytes()
    key = secrets.token_bytes(32)
    atomic_write_bytes(path, key)
    return key


def pseudonym(key: bytes, patient_id: str) -> str:
    return "ANON-" + _digest(key, "patient", patient_id)[:12].upper()


def replacement_uid(key: bytes, uid: str) -> str:
    """A UID under the 2.25 root (a UUID as a decimal number), the same for the same source UID and key."""
    return "2.25." + str(int(_digest(key, "uid", uid)[:32], 16))


def _digest(key: bytes, kind: str, value: str) -> str:
    return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def pseudonymised_source(source, key: bytes):
    """A pydicom Dataset standing in for `source` (a pydicom Dataset) in a derived object, identity removed."""
    import pydicom

    out = pydicom.Dataset()
    for keyword in IMAGE_ATTRIBUTES:
        if keyword in source:
            setattr(out, keyword, source[keyword].value)
    for keyword in REPLACED_UIDS:
        if keyword in source:
            setattr(out, keyword, replacement_uid(key, str(source[keyword].value)))
    who = (
        str(source.get("PatientID", "") or "")
        or f"{source.get('PatientName', '')}|{source.get('PatientBirthDate', '')}"
    )
    out.PatientID = pseudonym(key, who)
    out.PatientName = out.PatientID + "^"  # a family name alone, as a person name says so
    for keyword in (
        "PatientBirthDate",
        "PatientSex",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "ReferringPhysicianName",
        "StudyID",
    ):
        setattr(out, keyword, "")
    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = METHOD
    return out
