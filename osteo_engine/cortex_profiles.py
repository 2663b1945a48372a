"""Reading a bone's cortical edges on its intensity profiles across the shaft (radiogrammetry.py's measurement,
whose docstring gives the method): every profile of a bone at once, as rows of padded arrays, because a bone's
160 profiles read one by one spent most of their time in Python rather than in arithmetic.

Each profile runs 1.4 of the mask's half-widths either side of the mask's middle on its line, sampled every
`STEP` pixels, so profiles differ in length: a row holds one profile, and `length` says how much of it is real.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

STEP = 0.25  # pixels between samples along a profile
STRIP = 5  # pixels along the axis that one profile averages
REACH = 1.4  # half-widths from the middle that a profile spans on either side
OUTER_WINDOW = (0.75, 1.3)  # half-widths from the mask's middle where the outer edge is sought
PEAK_REACH = 0.7  # half-widths past the outer edge where the intensity peak is sought
INNER_REACH = 0.4  # half-widths past the peak where the inner edge is sought
MIN_WIDTH_PX = 10.0
MAX_REACH = 300  # pixels either side of the axis where a bone's mask is sought


@dataclass
class ProfileReadings:
    """The profiles whose four edges were found and whose T lies between 0 and W/2, in the order read; lengths in
    pixels. width, thickness, marrow, contrast, tissue: (n,); edges: (n, 4, 2), the outer, inner, inner and outer
    edge as (x, y) in the image."""

    width: np.ndarray
    thickness: np.ndarray
    edges: np.ndarray
    marrow: np.ndarray  # (marrow − tissue) / (cortex peak − tissue); NaN when the cortex is not brighter
    contrast: np.ndarray  # cortex peak − tissue
    tissue: np.ndarray  # the mean of the profile's outer twentieth at each end, beside the bone

    def subset(self, keep: np.ndarray) -> ProfileReadings:
        return ProfileReadings(*(getattr(self, k)[keep] for k in self.__dataclass_fields__))


def read_profiles(
    pixels: np.ndarray, points: np.ndarray, u: np.ndarray, normal: np.ndarray, mask: np.ndarray, breadth: float
) -> ProfileReadings:
    """ProfileReadings of the profiles through `points` (P, 2) along `normal`, each the mean of a strip STRIP
    pixels wide along the unit axis `u` (which calms the trabecular texture). pixels: (H, W) float32, smoothed,
    bone bright; mask: the bone's (H, W) bool mask, whose span on each line places its profile, and `breadth` the
    furthest its pixels lie from the line through `points` (pixels). A line that misses the mask, or crosses less
    than MIN_WIDTH_PX of it, gives no reading."""
    spans = _mask_spans(mask, points, normal, breadth)
    rows = [i for i, span in enumerate(spans) if span is not None and 2 * span[1] >= MIN_WIDTH_PX]
    if not rows:
        return _readings(np.zeros((0, 4)), np.zeros(0, bool), points[:0], normal, np.zeros((0, 3)))
    s, length = _positions([spans[i] for i in rows])
    values = _sample(pixels, points[rows], s, u, normal)
    centre = length // 2
    a, a_ok = _side(values, s, centre)
    backwards = _reverse(length)
    rows_b = np.arange(len(rows))[:, None]
    b, b_ok = _side(values[rows_b, backwards], s[rows_b, backwards], length - 1 - centre)
    edges = np.stack([a[:, 0], a[:, 1], b[:, 1], b[:, 0]], 1)  # outer a, inner a, inner b, outer b
    marrow = _marrow_ratio(values, s, length, edges[:, 1], edges[:, 2])
    return _readings(edges, a_ok & b_ok, points[rows], normal, np.stack(marrow, 1))


def _readings(edges, found, points, normal, marrow) -> ProfileReadings:
    width = np.abs(edges[:, 3] - edges[:, 0])
    thickness = (np.abs(edges[:, 1] - edges[:, 0]) + np.abs(edges[:, 3] - edges[:, 2])) / 2
    keep = found & (thickness > 0) & (thickness < width / 2)
    xy = points[keep][:, None] + edges[keep][..., None] * normal
    ratio, contrast, tissue = marrow[keep].T
    return ProfileReadings(width[keep], thickness[keep], xy, ratio, contrast, tissue)


def _positions(spans: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(s, length): each profile's sample positions in pixels from its point, (P, longest) padded by repeating
    the last, and its number of samples (P,)."""
    lines = [middle + np.arange(-REACH * half, REACH * half + STEP, STEP) for middle, half in spans]
    length = np.array([len(line) for line in lines])
    s = np.empty((len(lines), length.max()))
    for row, line in zip(s, lines):
        row[: len(line)], row[len(line) :] = line, line[-1]
    return s, length


def _sample(pixels: np.ndarray, points: np.ndarray, s: np.ndarray, u: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """(P, longest) float32: the image along each profile, averaged over the strip (one remap for all)."""
    along = (np.arange(STRIP) - (STRIP - 1) / 2)[:, None, None]
    # x and y apart, each contiguous as remap wants them: (STRIP, P, L) float32
    x, y = ((points[:, i, None] + s * normal[i] + along * u[i]).astype(np.float32) for i in (0, 1))
    values = cv2.remap(pixels, x.reshape(-1, s.shape[1]), y.reshape(-1, s.shape[1]), cv2.INTER_LINEAR)
    return values.reshape(STRIP, len(points), s.shape[1]).mean(0)


def _reverse(length: np.ndarray) -> np.ndarray:
    """(P, longest) column indices that read each row backwards from its last real sample (clamped at 0)."""
    columns = np.arange(length.max())
    return np.maximum(length[:, None] - 1 - columns, 0)


def _side(values: np.ndarray, s: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((P, 2) outer and inner edge positions, (P,) found) on half-profiles that run from REACH half-widths
    outside the bone's middle to the middle, in samples 0..n (n: (P,)). The outer edge is the steepest rise within
    OUTER_WINDOW of the middle, the intensity peak the maximum within PEAK_REACH past it, the inner edge the
    steepest fall within INNER_REACH past the peak; each sub-pixel."""
    rows = np.arange(len(values))
    gradient = _gradient(values, n)
    lo, hi = _index(n, OUTER_WINDOW[1]), _index(n, OUTER_WINDOW[0])
    outer = _arg_within(gradient, lo, hi, np.argmax)
    peak_end = np.minimum(outer + _samples(n, PEAK_REACH) + 1, n - 1)
    peak = _arg_within(values, outer, peak_end, np.argmax)
    inner_end = np.minimum(peak + _samples(n, INNER_REACH) + 1, n)
    inner = _arg_within(gradient, peak, inner_end, np.argmin)
    found = (gradient[rows, outer] > 0) & (outer >= 1) & (peak > outer) & (inner_end - peak >= 2)
    found &= (gradient[rows, inner] < 0) & (inner < n)
    inner = np.minimum(inner, n - 1)  # a row not found still needs a neighbour to read
    return np.stack([_sub_sample(s, gradient, outer), _sub_sample(s, -gradient, inner)], 1), found


def _index(n: np.ndarray, h: float) -> np.ndarray:
    """The sample `h` half-widths from the middle on half-profiles of samples 0..n (np.rint rounds half to
    even)."""
    return np.rint(n * (REACH - h) / REACH).astype(int)


def _samples(n: np.ndarray, h: float) -> np.ndarray:
    """How many samples `h` half-widths take on half-profiles of samples 0..n."""
    return np.rint(n * h / REACH).astype(int)


def _arg_within(v: np.ndarray, start: np.ndarray, stop: np.ndarray, pick) -> np.ndarray:
    """Per row, the column in [start, stop) where `pick` (np.argmax or np.argmin) finds its extreme, the first
    one on ties; `start` where the window is empty."""
    columns = np.arange(v.shape[1])
    inside = (columns >= start[:, None]) & (columns < stop[:, None])
    filler = -np.inf if pick is np.argmax else np.inf
    chosen = pick(np.where(inside, v, filler), axis=1)
    return np.where(inside.any(1), chosen, start)


def _gradient(values: np.ndarray, n: np.ndarray) -> np.ndarray:
    """np.gradient of each row's samples 0..n: central differences inside, one-sided at both ends."""
    g = np.empty_like(values)
    g[:, 1:-1] = (values[:, 2:] - values[:, :-2]) / 2
    rows = np.arange(len(values))
    g[:, 0] = values[:, 1] - values[:, 0]
    g[rows, n] = values[rows, n] - values[rows, n - 1]
    return g


def _sub_sample(s: np.ndarray, v: np.ndarray, i: np.ndarray) -> np.ndarray:
    """Per row, the sub-pixel position of the maximum of v at sample i, by a parabola through it and its
    neighbours (none where they do not bend down)."""
    rows = np.arange(len(v))
    a, b, c = v[rows, i - 1], v[rows, i], v[rows, i + 1]
    curvature = a - 2 * b + c
    offset = np.where(curvature < 0, 0.5 * (a - c) / np.where(curvature < 0, curvature, -1), 0.0)
    return s[rows, i] + np.clip(offset, -0.5, 0.5) * (s[rows, i + 1] - s[rows, i])


def _marrow_ratio(values, s, length, inner_a, inner_b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: ((marrow − tissue) / (cortex − tissue), cortex − tissue, tissue). Marrow is the middle half
    between the inner edges, tissue the profile's outer twentieth on each end (beside the bone), cortex the
    profile's peak. The ratio is NaN when the cortex is not brighter than the tissue."""
    columns = np.arange(values.shape[1])
    real = columns < length[:, None]
    end = np.maximum(1, length // 20)[:, None]
    ends = (columns < end) | ((columns >= length[:, None] - end) & real)
    tissue = np.where(ends, values, 0).sum(1) / (2 * end[:, 0])
    contrast = np.where(real, values, -np.inf).max(1) - tissue
    centre, quarter = (inner_a + inner_b) / 2, np.abs(inner_b - inner_a) / 4
    middle = real & (np.abs(s - centre[:, None]) <= quarter[:, None])
    count = middle.sum(1)
    marrow = np.where(middle, values, 0).sum(1) / np.maximum(count, 1)
    usable = (count > 0) & (contrast > 1e-6)
    ratio = np.where(usable, (marrow - tissue) / np.where(usable, contrast, 1), np.nan)
    return ratio, contrast, tissue


def _mask_spans(mask: np.ndarray, points: np.ndarray, normal: np.ndarray, breadth: float) -> list:
    """For each of `points` (P, 2), the (middle, half-width) of the mask on the line through it along `normal`,
    in pixels from the point, sought within `breadth` (and at most MAX_REACH); None where the line misses the
    mask. All lines at once: one call per bone."""
    h, w = mask.shape
    reach = min(int(np.ceil(breadth)) + 2, MAX_REACH)  # an integer, so the samples fall on the same half-pixels
    s = np.arange(-reach, reach + 0.5, 0.5)
    xy = np.round(points[:, None] + s[None, :, None] * normal).astype(int)  # (P, len(s), 2)
    ok = (xy[..., 0] >= 0) & (xy[..., 0] < w) & (xy[..., 1] >= 0) & (xy[..., 1] < h)
    inside = np.zeros(ok.shape, bool)
    inside[ok] = mask[xy[..., 1][ok], xy[..., 0][ok]]
    low = np.where(inside, s, np.inf).min(1)
    high = np.where(inside, s, -np.inf).max(1)
    return [(float(a + b) / 2, float(b - a + 1) / 2) if hit else None for a, b, hit in zip(low, high, inside.any(1))]
