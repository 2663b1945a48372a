"""Radiograph loading: DICOM through pydicom, PNG/JPEG/TIFF through OpenCV and tifffile.

Every file ends up as a `Radiograph` whose pixels are float32 in [0, 1] with bone bright, or raises
`RadiographError` with a sentence that says what is wrong. No other exception type escapes.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import RadiographError
from .file_checks import JPEG_SOI, PNG_SIGNATURE, jpeg_problem, png_problem
from .population import Demographics, demographics_from_dicom

MAX_PIXELS = 100_000_000
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}
RADIOGRAPH_SUFFIXES = IMAGE_SUFFIXES | {".dcm", ".dicom", ""}  # DICOM files often have no suffix
# Tags that describe the acquisition and never identify a person.
SAFE_DICOM_TAGS = (
    "Modality",
    "SOPClassUID",
    "Manufacturer",
    "ManufacturerModelName",
    "BodyPartExamined",
    "ViewPosition",
    "ImageLaterality",
    "Laterality",
    "KVP",
    "Exposure",
    "ExposureInuAs",
    "PresentationIntentType",
    "PixelIntensityRelationship",
    "BitsAllocated",
    "BitsStored",
)


@dataclass(frozen=True)
class Radiograph:
    """A hand radiograph ready for display and analysis."""

    pixels: np.ndarray  # (H, W) float32 in [0, 1], bone bright
    bits_stored: int
    pixel_spacing_mm: tuple[float, float] | None  # (row, column) spacing
    photometric: str
    window: tuple[float, float]  # default display (centre, width) in pixel units
    modality: str | None = None
    source_format: str = "dicom"
    metadata: dict[str, str] = field(default_factory=dict)
    demographics: Demographics = field(default_factory=Demographics)  # age and sex, when the file has them

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def load_radiograph(path: str | Path) -> Radiograph:
    """Load one radiograph; raises `RadiographError` for anything that cannot be used."""
    path = Path(path)
    try:
        kind = _sniff(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _load_dicom(path) if kind == "dicom" else _load_image(path)
    except RadiographError:
        raise
    except MemoryError:
        raise RadiographError(f"{path.name} is too large to load into memory.") from None
    except Exception as exc:  # any library failure becomes one plain sentence
        raise RadiographError(f"{path.name} could not be read as a radiograph ({_reason(exc)}).") from exc


def _reason(exc: Exception) -> str:
    """The library's own words, one line: the cause where a first line only introduces it ("...plugins:")."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = lines[1] if lines[0].endswith(":") and len(lines) > 1 else lines[0]
    return text.split(": ", 1)[1] if text.startswith("pydicom: ") else text[:200]


def _sniff(path: Path) -> str:
    if not path.exists():
        raise RadiographError(f"{path.name} does not exist.")
    if path.is_dir():
        raise RadiographError(f"{path.name} is a folder, not an image file.")
    with open(path, "rb") as f:
        head = f.read(132)
    if not head:
        raise RadiographError(f"{path.name} is empty.")
    if head[128:132] == b"DICM":
        return "dicom"
    if head.startswith((b"\x89PNG", b"\xff\xd8", b"II*\x00", b"MM\x00*")):
        return "image"
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise RadiographError(f"{path.name} is not a valid {path.suffix.lstrip('.').upper()} image.")
    return "dicom"  # DICOM without a preamble, or not an image at all: pydicom decides


# ---------------------------------------------------------------- DICOM
def _load_dicom(path: Path) -> Radiograph:
    import pydicom

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path, force=True)
        except Exception as exc:
            raise RadiographError(f"{path.name} is unreadable or truncated ({_reason(exc)}).") from exc
    if any("end of file" in str(w.message).lower() for w in caught):
        raise RadiographError(f"{path.name} is truncated: the file ends before its data is complete.")
    if not any(t in ds for t in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise RadiographError(f"{path.name} holds no pixel data (is it a DICOM image at all?).")
    if "Rows" not in ds or "Columns" not in ds:
        raise RadiographError(f"{path.name} lacks the image size (Rows/Columns).")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise RadiographError(f"{path.name} holds {frames} frames; a radiograph is a single 2-D image.")
    _check_size(path, int(ds.Rows), int(ds.Columns))
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    arr = _decode(path, ds)
    if "PixelData" in ds:
        del ds.PixelData  # the encoded bytes are not needed once decoded
    if arr.ndim == 3:
        arr = _grey_from_colour_dicom(path, ds, arr, photometric)
        photometric = "MONOCHROME2"
    if arr.ndim != 2:
        raise RadiographError(f"{path.name} holds {arr.ndim}-D data; a radiograph is a 2-D image.")
    values = _modality_values(ds, arr)
    bits_stored = int(ds.get("BitsStored", arr.dtype.itemsize * 8))
    del arr
    pixels, has_voi = _apply_voi(ds, values)
    if photometric == "MONOCHROME1":
        pixels = 1.0 - pixels
    pixels = _finite(path, pixels)
    return Radiograph(
        pixels=pixels,
        bits_stored=bits_stored,
        pixel_spacing_mm=_dicom_spacing(ds),
        photometric=photometric,
        window=(0.5, 1.0) if has_voi else _default_window(pixels),
        modality=str(ds.get("Modality")) if "Modality" in ds else None,
        source_format="dicom",
        metadata={k: str(ds.get(k)) for k in SAFE_DICOM_TAGS if k in ds and ds.get(k) not in (None, "")},
        demographics=demographics_from_dicom(ds),
    )


def _decode(path: Path, ds) -> np.ndarray:
    """The pixel data as an array, by the fastest decoder pydicom finds. When that fails on RLE, pydicom's own
    decoder (pure Python) is tried: its reasons are the clearer ones, and the compiled one may reject what it
    reads. A compiled decoder's crash (pylibjpeg-rle's Rust panics on some corrupt RLE: a BaseException)
    is a decoding failure like any other. Raises RadiographError saying why."""
    try:
        return np.asarray(ds.pixel_array)
    except BaseException as exc:  # noqa: BLE001 (see above; interrupts and exits go on)
        if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
            raise
        failure = exc
    from pydicom.uid import RLELossless

    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts == RLELossless:
        try:
            ds.pixel_array_options(decoding_plugin="pydicom")
            return np.asarray(ds.pixel_array)
        except Exception as exc:
            failure = exc
    name = getattr(ts, "name", None) or "its transfer syntax"
    raise RadiographError(
        f"{path.name}: the pixel data ({name}) could not be decoded ({_reason(failure)})."
    ) from failure


def _modality_values(ds, arr: np.ndarray) -> np.ndarray:
    """The modality LUT's output as float32. A linear rescale (the usual case) is applied in place: pydicom's
    float64 copy of a 100-megapixel image alone took 800 MB."""
    from pydicom.pixels import apply_modality_lut

    if "ModalityLUTSequence" in ds:
        return np.asarray(apply_modality_lut(arr, ds), dtype=np.float32)
    values = arr.astype(np.float32)
    slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    if slope != 1:
        values *= slope
    if intercept:
        values += intercept
    return values


def _grey_from_colour_dicom(path: Path, ds, arr: np.ndarray, photometric: str) -> np.ndarray:
    if arr.shape[-1] not in (3, 4) or int(ds.get("SamplesPerPixel", 1)) == 1 and photometric != "PALETTE COLOR":
        raise RadiographError(f"{path.name} holds 3-D data; a radiograph is a single 2-D image.")
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr, ds)
    rgb = arr[..., :3].astype(np.float64)
    if np.ptp(rgb, axis=-1).max() > 0.02 * max(float(rgb.max()), 1.0):
        raise RadiographError(f"{path.name} is a colour DICOM image ({photometric}), not a radiograph.")
    return rgb.mean(axis=-1)


def _apply_voi(ds, values: np.ndarray) -> tuple[np.ndarray, bool]:
    """VOI LUT or window centre/width when present, else the full range of the modality values."""
    from pydicom.pixels import apply_voi_lut

    if "VOILUTSequence" in ds or "WindowCenter" in ds and "WindowWidth" in ds:
        try:
            linear = _linear_window(ds, values)
            if linear is not None:
                return linear, True
            if "VOILUTSequence" in ds:
                lo, hi = 0.0, 2.0 ** int(ds.VOILUTSequence[0].LUTDescriptor[2]) - 1
            else:  # windowing is monotone: its output range is what it makes of -inf and +inf
                lo, hi = np.asarray(apply_voi_lut(np.array([-1e12, 1e12]), ds, index=0), dtype=np.float64)
            if hi > lo and np.isfinite([lo, hi]).all():
                out = np.asarray(apply_voi_lut(values, ds, index=0), dtype=np.float32)
                out -= lo
                out /= hi - lo
                return np.clip(out, 0.0, 1.0, out=out), True
        except Exception:
            pass  # a broken VOI description falls back to the full range below
    return _min_max(values), False


def _linear_window(ds, values: np.ndarray) -> np.ndarray | None:
    """LINEAR windowing (PS3.3 C.11.2.1.2.1, the default VOI function) scaled to [0, 1], in place in float32;
    None where another VOI description applies (pydicom's apply_voi_lut, which works in float64, takes
    those). Its output equals apply_voi_lut's rescaled to its own output range."""
    if "VOILUTSequence" in ds or str(ds.get("VOILUTFunction", "LINEAR")).upper() != "LINEAR":
        return None
    from pydicom.multival import MultiValue

    centre, width = (float(v[0] if isinstance(v, MultiValue) else v) for v in (ds.WindowCenter, ds.WindowWidth))
    if not (math.isfinite(centre) and math.isfinite(width)) or width <= 1:
        return None
    values -= centre - 0.5
    values /= width - 1
    values += 0.5
    return np.clip(values, 0.0, 1.0, out=values)


def _dicom_spacing(ds) -> tuple[float, float] | None:
    for tag in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(tag)
        try:
            row, col = float(value[0]), float(value[1])
        except (TypeError, ValueError, IndexError):
            continue
        if all(math.isfinite(v) and v > 0 for v in (row, col)):
            return (row, col)
    return None


# ---------------------------------------------------------------- PNG / JPEG / TIFF
def _load_image(path: Path) -> Radiograph:
    import cv2

    arr = _read_tiff(path) if path.suffix.lower() in (".tif", ".tiff") else None
    if arr is None:
        data = _checked_bytes(path)
        _check_size(path, *_image_size(path))
        arr = (
            _decode_jpeg(path, data)
            if data.startswith(JPEG_SOI)
            else cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        )
        del data
    if arr is None:
        raise RadiographError(f"{path.name} is unreadable or truncated.")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3:
        if arr.shape[2] not in (3, 4):
            raise RadiographError(f"{path.name} holds 3-D data; a radiograph is a single 2-D image.")
        arr = cv2.cvtColor(arr[..., :3], cv2.COLOR_BGR2GRAY)
    if arr.ndim != 2:
        raise RadiographError(f"{path.name} holds {arr.ndim}-D data; a radiograph is a 2-D image.")
    if arr.dtype == np.uint8 or arr.dtype == np.uint16:
        bits = 8 * arr.dtype.itemsize
        pixels = arr.astype(np.float32)
        pixels /= float(2**bits - 1)
    else:
        bits = 8 * arr.dtype.itemsize
        if not np.isfinite(arr).any():
            raise RadiographError(f"{path.name} holds no pixel values that are numbers (all NaN or infinite).")
        pixels = _min_max(arr.astype(np.float64))
    pixels = _finite(path, pixels)
    return Radiograph(
        pixels=pixels,
        bits_stored=bits,
        pixel_spacing_mm=None,
        photometric="MONOCHROME2",
        window=_default_window(pixels),
        modality=None,
        source_format=path.suffix.lower().lstrip(".").replace("jpeg", "jpg") or "image",
    )


def _checked_bytes(path: Path) -> bytes:
    """The file's bytes, once its PNG or JPEG structure is known to be whole (file_checks)."""
    data = path.read_bytes()
    check = png_problem if data.startswith(PNG_SIGNATURE) else jpeg_problem if data.startswith(JPEG_SOI) else None
    problem = check(data) if check else None
    if problem:
        raise RadiographError(f"{path.name} cannot be used: {problem}.")
    return data


def _decode_jpeg(path: Path, data: bytes) -> np.ndarray:
    """Pillow, not OpenCV: libjpeg's "Corrupt JPEG data" is only a warning on stderr under OpenCV, and the
    damaged image loads as if whole; Pillow raises instead. Grey, or BGR like OpenCV's colour images."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if im.mode == "L":
                return np.asarray(im)
            return np.ascontiguousarray(np.asarray(im.convert("RGB"))[..., ::-1])
    except Exception as exc:
        raise RadiographError(f"{path.name} is a damaged JPEG file ({_reason(exc)}).") from exc


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # our own limit below applies instead
    try:
        with Image.open(path) as im:
            width, height = im.size
    except Exception as exc:
        raise RadiographError(f"{path.name} is unreadable or truncated ({_reason(exc)}).") from exc
    return height, width


def _read_tiff(path: Path) -> np.ndarray | None:
    """Refuse stacks and oversized pages from the header; decode with OpenCV, tifffile as the fallback."""
    import cv2
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series_shape = tif.series[0].shape
            if len(tif.pages) > 1 or len(series_shape) > 3 or len(series_shape) == 3 and series_shape[-1] not in (3, 4):
                raise RadiographError(
                    f"{path.name} holds a stack of {len(tif.pages)} images (3-D data); "
                    "a radiograph is a single 2-D image."
                )
            _check_size(path, *tif.pages[0].shape[:2])
            arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if arr is None:
                arr = tif.pages[0].asarray()
                if arr.ndim == 3 and arr.shape[-1] in (3, 4):  # tifffile gives RGB, OpenCV BGR
                    arr = np.ascontiguousarray(arr[..., [2, 1, 0, *range(3, arr.shape[-1])]])
    except RadiographError:
        raise
    except Exception as exc:
        raise RadiographError(f"{path.name} is unreadable or truncated ({_reason(exc)}).") from exc
    return arr


# ---------------------------------------------------------------- shared helpers
def _check_size(path: Path, rows: int, cols: int) -> None:
    if rows <= 0 or cols <= 0:
        raise RadiographError(f"{path.name} has an empty image ({cols}×{rows}).")
    if rows * cols > MAX_PIXELS:
        raise RadiographError(
            f"{path.name} is {cols}×{rows} pixels ({rows * cols / 1e6:.0f} megapixels); "
            f"the limit is {MAX_PIXELS // 1_000_000} megapixels."
        )


def _min_max(values: np.ndarray) -> np.ndarray:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(values.shape, np.float32)
    lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        return np.zeros(values.shape, np.float32)
    return ((values - lo) / (hi - lo)).astype(np.float32)


def _finite(path: Path, pixels: np.ndarray) -> np.ndarray:
    pixels = np.asarray(pixels, dtype=np.float32)
    if not np.isfinite(pixels).all():
        raise RadiographError(f"{path.name} contains pixel values that are not numbers.")
    if float(pixels.max()) <= float(pixels.min()):
        raise RadiographError(f"{path.name} is blank: every pixel has the same value.")
    return np.clip(pixels, 0.0, 1.0, out=pixels)  # in place: the loader owns `pixels`


def _default_window(pixels: np.ndarray) -> tuple[float, float]:
    sample = pixels[:: max(1, pixels.shape[0] // 512), :: max(1, pixels.shape[1] // 512)]
    lo, hi = np.percentile(sample, [0.5, 99.5])
    if hi - lo < 1e-3:
        lo, hi = float(sample.min()), float(sample.max())
    return (float((lo + hi) / 2), float(max(hi - lo, 1e-3)))


def radiograph_files(folder: str | Path) -> list[Path]:
    """Files of a folder that may be radiographs: known image suffixes, and none (DICOM often has none)."""
    return sorted(
        p
        for p in Path(folder).iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in RADIOGRAPH_SUFFIXES
    )
