"""Structural checks of PNG and JPEG files before they reach a decoder.

Decoders trust what a file says about itself: a PNG chunk whose length field is corrupt made OpenCV allocate
4 GB before failing, and libjpeg decodes a JPEG cut to a tenth of its length into a whole image of grey with
only a warning on stderr. Walking the container first costs one pass over the bytes and turns both into a
sentence. Each check returns None for a sound file, else what is wrong with it.
"""

from __future__ import annotations

import zlib

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"
_PNG_MAX_CHUNK = 2**31 - 1  # the PNG specification's limit on a chunk's length


def png_problem(data: bytes) -> str | None:
    """Every chunk's length fits the file and its CRC matches, IHDR comes first and IEND is reached."""
    if not data.startswith(PNG_SIGNATURE):
        return "it does not start with the PNG signature"
    pos, size = len(PNG_SIGNATURE), len(data)
    first = True
    while True:
        if pos + 8 > size:
            return "it is truncated (it ends before its last chunk, IEND)"
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if first and kind != b"IHDR":
            return "it is corrupt (its first chunk is not the image header, IHDR)"
        first = False
        if length > _PNG_MAX_CHUNK:
            return f"it is corrupt (a {_chunk_name(kind)} chunk claims {length} bytes)"
        end = pos + 12 + length
        if end > size:
            return (
                f"it is truncated or corrupt (a {_chunk_name(kind)} chunk claims {length} bytes, "
                f"only {max(size - pos - 12, 0)} remain)"
            )
        if zlib.crc32(data[pos + 4 : pos + 8 + length]) != int.from_bytes(data[end - 4 : end], "big"):
            return f"it is corrupt (a {_chunk_name(kind)} chunk fails its checksum)"
        if kind == b"IEND":
            return None
        pos = end


def _chunk_name(kind: bytes) -> str:
    return kind.decode("ascii", "replace") if kind.isalpha() else "damaged"


def jpeg_problem(data: bytes) -> str | None:
    """The markers run from SOI to EOI with every segment inside the file; a file cut short never reaches
    its EOI. Entropy-coded scan data is skipped up to the next marker (0xFF not followed by 0x00 or RSTn)."""
    if not data.startswith(JPEG_SOI):
        return "it does not start like a JPEG file"
    truncated = "it is truncated (the image data ends before the end-of-image marker)"
    buffer = np.frombuffer(data, np.uint8)
    pos, size = 2, len(data)
    while True:
        if pos >= size:
            return truncated
        if data[pos] != 0xFF:
            return f"it is corrupt (no marker where one belongs, at byte {pos})"
        while pos < size and data[pos] == 0xFF:  # fill bytes may precede a marker
            pos += 1
        if pos >= size:
            return truncated
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # EOI
            return None
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            continue
        if pos + 2 > size:
            return truncated
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2:
            return f"it is corrupt (a segment of length {length} at byte {pos})"
        pos += length
        if pos > size:
            return truncated
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next real marker
            pos = _end_of_scan(buffer, pos)
            if pos is None:
                return truncated


def _end_of_scan(buffer: np.ndarray, start: int) -> int | None:
    tail = buffer[start:]
    ff = np.flatnonzero(tail[:-1] == 0xFF)
    following = tail[ff + 1]
    real = (following != 0x00) & ((following < 0xD0) | (following > 0xD7))
    hits = ff[real]
    return start + int(hits[0]) if len(hits) else None
