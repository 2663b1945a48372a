"""Annotation exchange formats, one module each: PNG label maps, COCO JSON (RLE), DICOM SEG."""
