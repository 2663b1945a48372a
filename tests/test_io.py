from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from osteo_engine import Radiograph, RadiographError, load_radiograph

from .conftest import SAMPLE_DICOM


def pydicom_wheel_files():
    root = Path(pydicom.__file__).parent / "data"
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc", ".json", ".txt"))


def test_every_dicom_in_the_pydicom_wheel_loads_or_raises_our_error():
    files = pydicom_wheel_files()
    assert len(files) > 50
    loaded = 0
    for path in files:
        try:
            image = load_radiograph(path)
        except RadiographError as exc:
            assert str(exc)  # a plain sentence, never empty
            continue
        assert isinstance(image, Radiograph)
        assert image.pixels.ndim == 2 and image.pixels.dtype == np.float32
        assert np.isfinite(image.pixels).all()
        assert 0.0 <= image.pixels.min() and image.pixels.max() <= 1.0
        loaded += 1
    assert loaded >= 40


@pytest.mark.parametrize(
    "name",
    [
        "JPEG2000.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "JPGExtended.dcm",
        "JPEGLSNearLossless_16.dcm",
        "693_J2KI.dcm",
    ],
)
def test_compressed_transfer_syntaxes_decode(name):
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not in this pydicom wheel")
    ds = pydicom.dcmread(path)
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        with pytest.raises(RadiographError, match="frames"):
            load_radiograph(path)
        return
    image = load_radiograph(path)
    assert image.pixels.shape == (ds.Rows, ds.Columns)


def _write_dicom(path, pixels, photometric="MONOCHROME2", bits=16, **tags):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.Modality = "DOE^JANE", "SECRET-123", "DX"
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def _bone_phantom(bone_value, background_value, shape=(64, 48)):
    arr = np.full(shape, background_value, np.uint16)
    arr[20:40, 16:32] = bone_value
    return arr


def test_monochrome1_16_bit_loads_with_bone_bright(tmp_path):
    # MONOCHROME1: low values are white, so bone is stored with the LOW value
    path = _write_dicom(tmp_path / "m1.dcm", _bone_phantom(1000, 60000), "MONOCHROME1", 16)
    image = load_radiograph(path)
    assert image.photometric == "MONOCHROME1" and image.bits_stored == 16
    assert image.pixels[30, 20] > 0.9 and image.pixels[5, 5] < 0.1


def test_window_centre_width_and_rescale_are_applied(tmp_path):
    arr = _bone_phantom(3000, 1000)
    arr[0, 0] = 4095
    path = _write_dicom(
        tmp_path / "w.dcm",
        arr,
        bits=12,
        RescaleSlope=2,
        RescaleIntercept=-1000,
        WindowCenter=3000,
        WindowWidth=2000,
        PixelSpacing=[0.1, 0.12],
    )
    image = load_radiograph(path)
    # rescaled: bone 5000, background 1000; window 2000..4000 -> background black, bone white
    assert image.pixels[30, 20] == pytest.approx(1.0, abs=1e-3)
    assert image.pixels[5, 5] == pytest.approx(0.0, abs=1e-3)
    assert image.pixel_spacing_mm == (0.1, 0.12)


def test_imager_pixel_spacing_is_the_fallback(tmp_path):
    path = _write_dicom(tmp_path / "s.dcm", _bone_phantom(900, 100), ImagerPixelSpacing=[0.15, 0.15])
    assert load_radiograph(path).pixel_spacing_mm == (0.15, 0.15)


def test_metadata_never_holds_patient_name_or_id(tmp_path):
    path = _write_dicom(tmp_path / "p.dcm", _bone_phantom(900, 100))
    image = load_radiograph(path)
    text = repr(image.metadata)
    assert "DOE" not in text and "SECRET" not in text
    assert image.metadata["Modality"] == "DX"


@pytest.mark.parametrize(
    "suffix,dtype",
    [(".png", np.uint8), (".png", np.uint16), (".tif", np.uint8), (".tif", np.uint16), (".jpg", np.uint8)],
)
def test_ordinary_images_in_8_and_16_bit(tmp_path, suffix, dtype):
    top = np.iinfo(dtype).max
    arr = _bone_phantom(int(top * 0.9), int(top * 0.1)).astype(dtype)
    path = tmp_path / f"img{suffix}"
    assert cv2.imwrite(str(path), arr)
    image = load_radiograph(path)
    assert image.bits_stored == 8 * np.dtype(dtype).itemsize
    assert image.pixels[30, 20] == pytest.approx(0.9, abs=0.03)
    assert image.pixels[5, 5] == pytest.approx(0.1, abs=0.03)


def test_colour_png_becomes_grey(tmp_path):
    arr = np.zeros((40, 30, 3), np.uint8)
    arr[10:20, 10:20] = (200, 200, 200)
    cv2.imwrite(str(tmp_path / "c.png"), arr)
    image = load_radiograph(tmp_path / "c.png")
    assert image.pixels.ndim == 2 and image.pixels[15, 15] == pytest.approx(200 / 255, abs=0.01)


@pytest.mark.parametrize(
    "content,match",
    [
        (b"", "empty"),
        (b"this is not an image at all, just text " * 10, "not a valid|could not|no pixel|unreadable"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "unreadable|truncated|corrupt|could not"),
    ],
)
def test_unusable_files_raise_radiograph_error(tmp_path, content, match):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(RadiographError, match=match):
        load_radiograph(path)


def test_truncated_dicom_and_missing_file(tmp_path):
    data = SAMPLE_DICOM.read_bytes()
    (tmp_path / "t.dcm").write_bytes(data[: len(data) // 2])
    with pytest.raises(RadiographError):
        load_radiograph(tmp_path / "t.dcm")
    with pytest.raises(RadiographError, match="does not exist"):
        load_radiograph(tmp_path / "missing.dcm")


def test_multi_frame_3d_colour_and_huge_images_are_refused(tmp_path):
    import tifffile

    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, np.zeros((5, 32, 32), np.uint16))
    with pytest.raises(RadiographError, match="stack|3-D"):
        load_radiograph(stack)
    colour = np.zeros((16, 16, 3), np.uint8)
    colour[..., 0] = 255
    path = tmp_path / "colour.dcm"
    _write_dicom(path, np.zeros((16, 16)), "MONOCHROME2")
    ds = pydicom.dcmread(path)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = colour.tobytes()
    ds.save_as(path)
    with pytest.raises(RadiographError, match="colour"):
        load_radiograph(path)
    big = _write_dicom(tmp_path / "big.dcm", np.zeros((4, 4)))
    ds = pydicom.dcmread(big)
    ds.Rows, ds.Columns = 20000, 6000
    ds.save_as(big)
    with pytest.raises(RadiographError, match="megapixels"):
        load_radiograph(big)


def test_bundled_sample_is_a_realistic_dicom():
    image = load_radiograph(SAMPLE_DICOM)
    assert (image.width, image.height) == (1024, 1280)
    assert image.modality == "DX" and image.bits_stored == 12 and image.pixel_spacing_mm is not None
    ds = pydicom.dcmread(SAMPLE_DICOM)
    assert "PHANTOM" in str(ds.PatientName) and ds.BodyPartExamined == "HAND"


def test_all_shared_radiographs_load(shared_data):
    files = sorted(p for p in shared_data.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    assert len(files) == 152
    for path in files:
        image = load_radiograph(path)
        assert image.pixels.ndim == 2 and image.pixels.max() > image.pixels.min()


def _jpeg(tmp_path) -> bytes:
    gradient = np.add.outer(np.arange(300), np.arange(200)).astype(np.uint8)
    path = tmp_path / "whole.jpg"
    cv2.imwrite(str(path), gradient)
    return path.read_bytes()


@pytest.mark.parametrize("keep", [0.1, 0.5, 1000])
def test_a_truncated_jpeg_is_refused_not_loaded_as_grey(tmp_path, keep):
    data = _jpeg(tmp_path)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])
    with pytest.raises(RadiographError, match="cut.jpg .*truncated"):
        load_radiograph(cut)


def test_a_png_chunk_length_that_overruns_the_file_is_refused_before_decoding(tmp_path):
    cv2.imwrite(str(tmp_path / "ok.png"), np.random.default_rng(0).integers(0, 255, (400, 300), np.uint8))
    data = bytearray((tmp_path / "ok.png").read_bytes())
    at = data.index(b"IDAT") - 4
    data[at : at + 4] = (0x7FFF0000).to_bytes(4, "big")  # made OpenCV allocate 4.2 GB before failing
    (tmp_path / "bad.png").write_bytes(bytes(data))
    with pytest.raises(RadiographError, match="IDAT chunk claims 2147418112 bytes"):
        load_radiograph(tmp_path / "bad.png")
    (tmp_path / "half.png").write_bytes(bytes((tmp_path / "ok.png").read_bytes()[:3000]))
    with pytest.raises(RadiographError, match="half.png .*truncated"):
        load_radiograph(tmp_path / "half.png")


def test_loader_messages_say_what_is_wrong(tmp_path):
    import tifffile

    data = SAMPLE_DICOM.read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[: int(len(data) * 0.9)])
    with pytest.raises(RadiographError, match="cut.dcm is truncated"):
        load_radiograph(tmp_path / "cut.dcm")
    tifffile.imwrite(tmp_path / "nan.tif", np.full((50, 40), np.nan, np.float32))
    with pytest.raises(RadiographError, match="nan.tif holds no pixel values that are numbers"):
        load_radiograph(tmp_path / "nan.tif")
    ds = pydicom.dcmread(SAMPLE_DICOM)
    ds.PixelData = pydicom.encaps.encapsulate([b"\x00" * 64 + b"garbage" * 100])
    ds.save_as(tmp_path / "rle.dcm")
    with pytest.raises(RadiographError, match=r"RLE segments") as raised:
        load_radiograph(tmp_path / "rle.dcm")
    assert "plugins" not in str(raised.value)
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(RadiographError, match="folder.png is a folder"):
        load_radiograph(tmp_path / "folder.png")


def test_corrupt_files_leave_nothing_on_stderr(tmp_path, capfd):
    cv2.imwrite(str(tmp_path / "ok.png"), np.zeros((64, 64), np.uint8) + 40)
    (tmp_path / "cut.png").write_bytes((tmp_path / "ok.png").read_bytes()[:60])
    (tmp_path / "cut.jpg").write_bytes(_jpeg(tmp_path)[:2000])
    for name in ("cut.png", "cut.jpg"):
        with pytest.raises(RadiographError):
            load_radiograph(tmp_path / name)
    assert capfd.readouterr().err == ""  # libpng's "Read Error", libjpeg's "Premature end" used to leak here
