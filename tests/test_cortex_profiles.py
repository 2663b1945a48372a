"""Reading cortical edges on a synthetic tube whose walls are known exactly."""

import numpy as np

from osteo_engine.cortex_profiles import read_profiles

OUTER, INNER = 20.0, 12.0  # the tube's radii in pixels: W = 40, T = 8


def _tube(tilt_deg: float = 0.0, size: int = 200):
    """A radiograph of a hollow tube through the image's middle along y, turned by `tilt_deg`: the projected
    thickness of an annulus, blurred a little as an X-ray is; with its mask and unit axis."""
    ys, xs = np.mgrid[:size, :size].astype(float)
    angle = np.radians(tilt_deg)
    u = np.array([np.sin(angle), np.cos(angle)])
    normal = np.array([-u[1], u[0]])
    across = (xs - size / 2) * normal[0] + (ys - size / 2) * normal[1]
    chord = lambda r: 2 * np.sqrt(np.clip(r**2 - across**2, 0, None))  # noqa: E731
    pixels = (0.1 + 0.02 * (chord(OUTER) - chord(INNER))).astype(np.float32)
    mask = np.abs(across) <= OUTER
    return pixels, mask, u, normal


def _points(u: np.ndarray, size: int = 200, count: int = 40) -> np.ndarray:
    return size / 2 + np.linspace(-40, 40, count)[:, None] * u


def test_width_and_thickness_of_a_tube_at_any_angle():
    for tilt in (0.0, 17.0):
        pixels, mask, u, normal = _tube(tilt)
        readings = read_profiles(pixels, _points(u), u, normal, mask, breadth=OUTER + 2)
        assert len(readings.width) >= 35  # nearly every profile is read
        assert abs(np.median(readings.width) - 2 * OUTER) < 0.06 * 2 * OUTER
        assert abs(np.median(readings.thickness) - (OUTER - INNER)) < 0.1 * (OUTER - INNER)
        edges = readings.edges[0]  # outer, inner, inner, outer: ordered across the bone
        distances = (edges - edges[0]) @ normal
        assert np.all(np.diff(distances) > 0)
        assert 0 < np.nanmedian(readings.marrow) < 1  # the marrow is darker than the cortex, brighter than tissue


def test_lines_that_miss_the_mask_or_cross_too_little_of_it_read_nothing():
    pixels, mask, u, normal = _tube()
    far = _points(u) + 80 * normal  # beside the tube
    assert len(read_profiles(pixels, far, u, normal, mask, breadth=OUTER + 2).width) == 0
    sliver = np.abs(np.arange(200) - 100)[None, :].repeat(200, 0) <= 3  # a mask 7 pixels wide
    assert len(read_profiles(pixels, _points(u), u, normal, sliver, breadth=5).width) == 0


def test_a_flat_image_has_no_cortex_to_read():
    _, mask, u, normal = _tube()
    flat = np.full(mask.shape, 0.5, np.float32)
    assert len(read_profiles(flat, _points(u), u, normal, mask, breadth=OUTER + 2).width) == 0
