"""Rendering a posed hand into a 16-bit radiograph, its true label map and several raters' label maps.

Image formation follows a simple X-ray model: attenuation integrated along straight rays through soft
tissue and cylindrical bones (cortical shell plus trabecular core), a detector with blur, Poisson and
Gaussian noise, a logarithmic response and a display gamma. Display settings are drawn per image and are
never derived from the image itself, so nothing outside the bones can carry the label.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, replace

import cv2
import numpy as np

from .geometry import Hand, Tube

MU_SOFT = 0.04  # per mm
MU_CORTEX = 0.16
MU_TRABECULAR = 0.075
MU_LEAD = 3.0
TEXEL_MM = 0.12
LABEL_ORDER = (1, 2, 3, 4, 5, 6, 7)


@dataclass(frozen=True)
class Acquisition:
    counts: float  # photons per pixel behind no tissue
    read_noise: float
    blur_px: float  # at 1280 rows; scaled with the image size
    gamma: float
    window_low: float
    window_high: float
    marker_corner: int
    text: str

    @staticmethod
    def draw(rng: np.random.Generator) -> Acquisition:
        text = "".join(rng.choice(list(string.ascii_uppercase + string.digits + " -/"), int(rng.integers(6, 14))))
        return Acquisition(
            float(np.exp(rng.uniform(np.log(3e3), np.log(3e4)))),
            float(rng.uniform(2, 10)),
            float(rng.uniform(0.5, 1.5)),
            float(rng.uniform(0.8, 1.25)),
            float(rng.uniform(-0.05, 0.08)),
            float(rng.uniform(2.3, 3.1)),
            int(rng.integers(0, 4)),
            text.strip() or "X",
        )


@dataclass(frozen=True)
class RaterStyle:
    """How one rater's boundaries differ from the truth, in millimetres."""

    bias_mm: float  # systematically tight (<0) or loose (>0) outlines
    bone_jitter_mm: float
    end_jitter_mm: float  # where the rater decides a bone ends at its joints, at random
    wobble_mm: float  # amplitude of the smooth, hand-drawn deviation of the outline
    wobble_scale_mm: float
    end_offset_mm: float = 0.0  # a habit: bones ended past the joints (>0) or short of them (<0)

    @staticmethod
    def draw(rng: np.random.Generator) -> RaterStyle:
        return RaterStyle(
            float(rng.normal(0, 0.3)),
            0.15,
            float(rng.uniform(0.5, 2.0)),
            float(rng.uniform(0.2, 0.5)),
            float(rng.uniform(6, 14)),
        )

    def with_habit(self, rater: int) -> RaterStyle:
        """Rater `rater` (from 0) of a cohort keeps the same habit on every subject, so that experts'
        disagreement has a shape a model can learn (RATER_HABITS); raters past those keep the drawn style.
        The drawn bias, scaled down, stays as that day's variation."""
        if rater >= len(RATER_HABITS):
            return self
        _, bias, offset = RATER_HABITS[rater]
        return replace(
            self, bias_mm=bias + self.bias_mm / 3, end_offset_mm=offset, end_jitter_mm=self.end_jitter_mm / 2
        )


# (name, outline bias in mm, end offset in mm) of a phantom cohort's first raters, in order
RATER_HABITS = (
    ("tight", -0.4, -1.0),  # outlines inside the cortex, bones stopped short of the joints
    ("loose", 0.4, 1.0),  # outlines outside the cortex, bones run into the joints
    ("faithful", 0.0, 0.0),  # on the cortex; ends where the bone ends, give or take
)


def render_radiograph(
    hand: Hand, size: tuple[int, int], acq: Acquisition, rng: np.random.Generator, right_hand: bool
) -> np.ndarray:
    """Return the radiograph as uint16 (H, W), bone bright."""
    height = size[1]
    attenuation = _soft_tissue(hand, size) * MU_SOFT
    texture = _texture_tile(rng)
    for tube in hand.tubes:
        _add_tube(attenuation, tube, texture, hand.mm_per_pixel, rng)
    _add_lead_marker(attenuation, size, acq.marker_corner, "R" if right_hand else "L")
    fluence = np.exp(-attenuation)
    sigma = acq.blur_px * height / 1280.0
    fluence = cv2.GaussianBlur(fluence, (0, 0), sigma)
    counts = rng.poisson(fluence * acq.counts).astype(np.float32)
    counts += rng.normal(0.0, acq.read_noise, counts.shape).astype(np.float32)
    measured = -np.log(np.clip(counts / acq.counts, 1e-4, None))
    shown = np.clip((measured - acq.window_low) / (acq.window_high - acq.window_low), 0, 1) ** acq.gamma
    _burn_text(shown, size, acq)
    return np.round(shown * 65535.0).astype(np.uint16)


def label_map(hand: Hand, size: tuple[int, int]) -> np.ndarray:
    """The true label map (uint8): the outer outline of each labelled bone."""
    labels = np.zeros((size[1], size[0]), np.uint8)
    for tube in _labelled(hand.tubes):
        _paint_outline(labels, tube)
    return labels


def rater_label_map(hand: Hand, size: tuple[int, int], style: RaterStyle, rng: np.random.Generator) -> np.ndarray:
    """One rater's label map: the truth with that rater's bias, end choices and hand-drawn wobble."""
    px = 1.0 / hand.mm_per_pixel
    labels = np.zeros((size[1], size[0]), np.uint8)
    for tube in _labelled(hand.tubes):
        axis = (tube.p1 - tube.p0) / max(np.linalg.norm(tube.p1 - tube.p0), 1e-6)
        p0 = tube.p0 - axis * (style.end_offset_mm - rng.normal(0, style.end_jitter_mm)) * px
        p1 = tube.p1 + axis * (style.end_offset_mm + rng.normal(0, style.end_jitter_mm)) * px
        radius = max(tube.radius + (style.bias_mm + rng.normal(0, style.bone_jitter_mm)) * px, 1.0)
        _paint_outline(
            labels,
            Tube(
                tube.name,
                tube.label,
                p0,
                p1,
                radius,
                tube.cortical_index,
                tube.density,
                tube.flare_proximal,
                tube.flare_distal,
                tube.flare_extent,
            ),
        )
    return _wobble(labels, style.wobble_mm * px, style.wobble_scale_mm * px, rng)


def _labelled(tubes: list[Tube]) -> list[Tube]:
    return sorted((t for t in tubes if t.label), key=lambda t: LABEL_ORDER.index(t.label))


def _soft_tissue(hand: Hand, size: tuple[int, int]) -> np.ndarray:
    """Soft-tissue thickness in mm from the hand's silhouette, computed at quarter resolution."""
    width, height = size
    f = 4
    mask = np.zeros(((height + f - 1) // f, (width + f - 1) // f), np.uint8)
    for p0, p1, radius in hand.soft_lines:
        cv2.line(mask, _pt(p0 / f), _pt(p1 / f), 255, max(1, int(round(2 * radius / f))), cv2.LINE_AA)
    cv2.fillConvexPoly(mask, np.round(hand.soft_polygon / f).astype(np.int32), 255, cv2.LINE_AA)
    inside = (mask > 127).astype(np.uint8)
    depth_mm = cv2.distanceTransform(inside, cv2.DIST_L2, 5) * f * hand.mm_per_pixel
    half = np.minimum(depth_mm, 11.0)  # a hand is about 22 mm thick, rounded at its edges
    thickness = 2.0 * np.sqrt(half * (22.0 - half))
    thickness = cv2.GaussianBlur(thickness, (0, 0), 0.7)
    return cv2.resize(thickness, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.float32)


def _texture_tile(rng: np.random.Generator, n: int = 256) -> np.ndarray:
    """Periodic band-passed noise: the subject's trabecular pattern, zero mean, unit spread."""
    freq = np.fft.fftfreq(n)[:, None] ** 2 + np.fft.fftfreq(n)[None, :] ** 2
    band = np.exp(-((np.sqrt(freq) - 0.14) ** 2) / (2 * 0.05**2))
    field = np.fft.ifft2(np.fft.fft2(rng.normal(size=(n, n))) * band).real
    return ((field - field.mean()) / (field.std() + 1e-9)).astype(np.float32)


def _tube_box(tube: Tube, shape: tuple[int, int]) -> tuple[slice, slice] | None:
    reach = tube.radius * max(tube.flare_proximal, tube.flare_distal, 1.0) + 2
    lo = np.floor(np.minimum(tube.p0, tube.p1) - reach).astype(int)
    hi = np.ceil(np.maximum(tube.p0, tube.p1) + reach).astype(int)
    x0, y0 = max(lo[0], 0), max(lo[1], 0)
    x1, y1 = min(hi[0], shape[1]), min(hi[1], shape[0])
    if x1 <= x0 or y1 <= y0:
        return None
    return slice(y0, y1), slice(x0, x1)


def _tube_coordinates(tube: Tube, box: tuple[slice, slice]):
    """Per pixel of the box: position along the axis (t in [0, 1] inside), distance to the axis segment."""
    ys, xs = np.mgrid[box[0], box[1]].astype(np.float32)
    axis = tube.p1 - tube.p0
    length = float(max(np.linalg.norm(axis), 1e-6))
    u = axis / length
    rx, ry = xs - tube.p0[0], ys - tube.p0[1]
    along = rx * u[0] + ry * u[1]
    across = -rx * u[1] + ry * u[0]
    t = np.clip(along / length, 0.0, 1.0)
    beyond = along - t * length
    distance = np.sqrt(across**2 + beyond**2)
    return along, across, t, distance


def _paint_outline(labels: np.ndarray, tube: Tube) -> None:
    box = _tube_box(tube, labels.shape)
    if box is None:
        return
    _, _, t, distance = _tube_coordinates(tube, box)
    inside = distance <= tube.radius_at(t)
    labels[box][inside] = tube.label


def _add_tube(
    attenuation: np.ndarray, tube: Tube, texture: np.ndarray, mm_per_pixel: float, rng: np.random.Generator
) -> None:
    box = _tube_box(tube, attenuation.shape)
    if box is None:
        return
    along, across, t, distance = _tube_coordinates(tube, box)
    outer = tube.radius_at(t)
    inner = np.maximum(outer - tube.cortex_at(t), 0.0)
    chord_outer = 2.0 * np.sqrt(np.maximum(outer**2 - distance**2, 0.0))
    chord_inner = 2.0 * np.sqrt(np.maximum(inner**2 - distance**2, 0.0))
    # trabeculae run along the bone: stretch the pattern along the axis
    offset = rng.uniform(0, texture.shape[0], 2).astype(np.float32)
    map_x = (along * mm_per_pixel * 0.35 / TEXEL_MM + offset[0]).astype(np.float32)
    map_y = (across * mm_per_pixel / TEXEL_MM + offset[1]).astype(np.float32)
    pattern = cv2.remap(texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    endness = np.maximum(1.0 - t / 0.25, (t - 0.75) / 0.25).clip(0, 1)
    fill = tube.density * (0.45 + 0.55 * endness) * np.clip(1.0 + 0.45 * pattern, 0.0, None)
    bone = MU_CORTEX * (chord_outer - chord_inner) + MU_TRABECULAR * fill * chord_inner
    attenuation[box] += (bone * mm_per_pixel).astype(np.float32)


def _add_lead_marker(attenuation: np.ndarray, size: tuple[int, int], corner: int, letter: str) -> None:
    width, height = size
    side = int(0.045 * height)
    x = int(0.04 * width) if corner % 2 == 0 else int(0.96 * width) - side
    y = int(0.04 * height) if corner < 2 else int(0.96 * height) - side
    marker = np.zeros((side, side), np.uint8)
    cv2.rectangle(marker, (0, 0), (side - 1, side - 1), 80, max(1, side // 12))
    cv2.putText(
        marker,
        letter,
        (side // 5, int(side * 0.82)),
        cv2.FONT_HERSHEY_SIMPLEX,
        side / 32.0,
        255,
        max(1, side // 8),
        cv2.LINE_AA,
    )
    attenuation[y : y + side, x : x + side] += marker.astype(np.float32) / 255.0 * MU_LEAD


def _burn_text(shown: np.ndarray, size: tuple[int, int], acq: Acquisition) -> None:
    width, height = size
    scale = height / 1400.0
    x = int(0.05 * width) if acq.marker_corner % 2 else int(0.55 * width)
    y = int(0.06 * height) if acq.marker_corner >= 2 else int(0.97 * height)
    ink = np.zeros(shown.shape, np.uint8)
    cv2.putText(ink, acq.text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, max(1, int(2 * scale)), cv2.LINE_AA)
    np.maximum(shown, ink.astype(np.float32) * (0.95 / 255.0), out=shown)


def _wobble(labels: np.ndarray, amplitude: float, scale: float, rng: np.random.Generator) -> np.ndarray:
    height, width = labels.shape
    gh, gw = max(2, int(height / scale)), max(2, int(width / scale))
    dx = cv2.resize(
        rng.normal(0, amplitude, (gh, gw)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC
    )
    dy = cv2.resize(
        rng.normal(0, amplitude, (gh, gw)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC
    )
    gx, gy = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(labels, gx + dx, gy + dy, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))
