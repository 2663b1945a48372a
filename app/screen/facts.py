"""What the file says about itself, for the reader: shown on screen only, never logged or exported.

The patient's name and ID are read here, for display beside the image, and nowhere else in the app.
"""

from __future__ import annotations

from pathlib import Path

DICOM_FACTS = (
    ("Modality", "Modality"),
    ("Acquired", "AcquisitionDate"),
    ("Study date", "StudyDate"),
    ("Patient", "PatientName"),
    ("Patient ID", "PatientID"),
    ("Sex", "PatientSex"),
)


def header_facts(path: Path, image) -> dict[str, str]:
    """Display facts of a radiograph (a Radiograph from `load_radiograph`): size, spacing, format, and for a
    DICOM file its modality, dates, patient and sex when present; the age as the population check read it."""
    facts = {
        "File": path.name,
        "Size": f"{image.width} × {image.height} px, {image.bits_stored}-bit",
        "Spacing": f"{image.pixel_spacing_mm[0]:.3f} mm" if image.pixel_spacing_mm else "unknown",
        "Format": image.source_format.upper(),
    }
    if image.source_format == "dicom":
        facts.update(_dicom_facts(path))
    age = image.demographics.age_years
    facts["Age"] = f"{age:.1f} years ({image.demographics.age_source})" if age is not None else "unknown"
    return facts


def _dicom_facts(path: Path) -> dict[str, str]:
    import pydicom

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
    except Exception:  # the image itself loaded; its header is only shown, so a bad one shows nothing
        return {}
    out = {}
    for label, keyword in DICOM_FACTS:
        value = str(ds.get(keyword, "") or "").strip()
        if value:
            out[label] = _date(value) if keyword.endswith("Date") else value
    return out


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value
