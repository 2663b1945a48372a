"""Canonical hand skeleton in millimetres, posed into image pixels.

Every bone is a `Tube`: a straight axis from its proximal to its distal end with a radius profile that
flares at the ends, a cortical shell and a medullary/trabecular core. Carpals are short, fat tubes.
The canonical hand is a left hand seen PA (thumb towards +x), y pointing proximally (down the image).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..anatomy import BONE_IDS
from .latent import SubjectLatent

FIELD_HEIGHT_MM = 255.0  # the detector's field of view along the image height
PALM_CENTRE_MM = np.array([0.0, -50.0])

# name: (base x, base y, angle from "up" in degrees towards the thumb, length) for a hand of scale 1
METACARPALS = {
    "M1": (22.0, -8.0, 38.0, 44.0),
    "M2": (11.0, -20.0, 8.0, 66.0),
    "M3": (0.0, -21.0, 0.0, 63.0),
    "M4": (-11.0, -19.0, -7.0, 56.0),
    "M5": (-21.0, -15.0, -15.0, 52.0),
}
# phalanx lengths (proximal, middle, distal) per finger; the thumb has no middle phalanx
PHALANGES = {
    "M1": (30.0, 22.0),
    "M2": (40.0, 24.0, 18.0),
    "M3": (45.0, 28.0, 19.0),
    "M4": (42.0, 26.0, 19.0),
    "M5": (33.0, 20.0, 17.0),
}
# name: (centre x, centre y, radius, length, angle)
CARPALS = {
    "scaphoid": (14.0, 6.0, 6.0, 9.0, 55.0),
    "lunate": (2.0, 9.0, 6.5, 3.0, 0.0),
    "triquetrum": (-10.0, 8.0, 5.5, 3.0, 30.0),
    "pisiform": (-14.0, 2.0, 4.0, 1.0, 0.0),
    "trapezium": (20.0, -6.0, 6.0, 4.0, 40.0),
    "trapezoid": (10.5, -9.0, 5.0, 3.0, 0.0),
    "capitate": (0.5, -7.0, 6.0, 8.0, 0.0),
    "hamate": (-11.0, -6.0, 6.0, 6.0, -20.0),
}
FOREARM = {"radius": (9.0, 20.0, 1.7, 0.14), "ulna": (-17.0, 24.0, 1.3, 0.10)}  # distal x, y, flare, extent
FOREARM_LENGTH_MM = 170.0


@dataclass(frozen=True)
class Tube:
    name: str
    label: int  # 0 for unlabelled distractors
    p0: np.ndarray  # proximal end, pixels (x, y)
    p1: np.ndarray  # distal end, pixels (x, y)
    radius: float  # mid-shaft outer radius, pixels
    cortical_index: float
    density: float
    flare_proximal: float = 1.3
    flare_distal: float = 1.35
    flare_extent: float = 0.18

    def radius_at(self, t: np.ndarray) -> np.ndarray:
        e = self.flare_extent
        prox = _smoothstep(1.0 - t / e)
        dist = _smoothstep((t - (1.0 - e)) / e)
        return self.radius * (1.0 + (self.flare_proximal - 1.0) * prox + (self.flare_distal - 1.0) * dist)

    def cortex_at(self, t: np.ndarray) -> np.ndarray:
        """Cortical thickness in pixels: full at mid-shaft, thin in the flared, trabecular ends."""
        e = self.flare_extent
        endness = np.maximum(_smoothstep(1.0 - t / e), _smoothstep((t - (1.0 - e)) / e))
        return self.cortical_index * self.radius * (1.0 - 0.7 * endness)


@dataclass(frozen=True)
class Pose:
    rotation_deg: float
    translation: tuple[float, float]  # fraction of width, height
    scale: float
    spread: float
    right_hand: bool

    @staticmethod
    def draw(rng: np.random.Generator) -> Pose:
        return Pose(
            float(rng.uniform(-20, 20)),
            (float(rng.uniform(-0.05, 0.05)), float(rng.uniform(-0.04, 0.04))),
            float(rng.uniform(0.92, 1.08)),
            float(rng.uniform(0.6, 1.4)),
            bool(rng.random() < 0.5),
        )


@dataclass(frozen=True)
class Hand:
    tubes: list[Tube]
    soft_lines: list[tuple[np.ndarray, np.ndarray, float]]  # capsules (p0, p1, radius) in pixels
    soft_polygon: np.ndarray  # palm polygon in pixels
    mm_per_pixel: float  # at the detector, before magnification


class _Placer:
    """Maps canonical millimetres to pixels for one pose."""

    def __init__(self, pose: Pose, size: tuple[int, int], hand_scale: float):
        width, height = size
        self.mm_per_pixel = FIELD_HEIGHT_MM / height
        self.px_per_mm = pose.scale * hand_scale / self.mm_per_pixel
        a = np.deg2rad(pose.rotation_deg)
        self.rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        self.flip = -1.0 if pose.right_hand else 1.0
        self.centre = np.array([width * (0.5 + pose.translation[0]), height * (0.53 + pose.translation[1])])

    def __call__(self, p_mm) -> np.ndarray:
        p = (np.asarray(p_mm, float) - PALM_CENTRE_MM) * np.array([self.flip, 1.0])
        return self.centre + self.px_per_mm * (self.rot @ p)

    def length(self, mm: float) -> float:
        return mm * self.px_per_mm


def _direction(angle_deg: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([np.sin(a), -np.cos(a)])


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def build_hand(latent: SubjectLatent, pose: Pose, size: tuple[int, int], rng: np.random.Generator) -> Hand:
    place = _Placer(pose, size, latent.hand_scale)
    # latent widths already include the hand's scale; canonical lengths below are for a hand of scale 1
    width_px = {name: b.width_mm / latent.hand_scale * place.px_per_mm for name, b in latent.bones.items()}
    tubes: list[Tube] = []
    soft_lines: list[tuple[np.ndarray, np.ndarray, float]] = []
    for name, (fx, fy, flare, extent) in FOREARM.items():
        b = latent.bones[name]
        distal = np.array([fx, fy])
        proximal = distal + np.array([-3.0 if name == "radius" else 2.0, FOREARM_LENGTH_MM])
        tubes.append(
            Tube(
                name,
                BONE_IDS[name],
                place(proximal),
                place(distal),
                width_px[name] / 2,
                b.cortical_index,
                b.density,
                1.0,
                flare,
                extent,
            )
        )
    heads = []
    for name, (bx, by, angle, length) in METACARPALS.items():
        b = latent.bones[name]
        angle = angle * (pose.spread**0.5 if name == "M1" else pose.spread)
        base = np.array([bx, by])
        head = base + length * _direction(angle)
        heads.append(head)
        tubes.append(
            Tube(
                name,
                BONE_IDS[name],
                place(base),
                place(head),
                width_px[name] / 2,
                b.cortical_index,
                b.density,
                1.3,
                1.45,
                0.2,
            )
        )
        tubes.extend(_finger(name, head, angle * 1.25, width_px[name], latent, place, rng))
        tip = head + (sum(PHALANGES[name]) + 3.0 * len(PHALANGES[name])) * _direction(angle * 1.25)
        soft_lines.append((place(base), place(tip), place.length(0.5 * width_px[name] / place.px_per_mm + 8.5)))
    for name, (cx, cy, r, length, angle) in CARPALS.items():
        axis = 0.5 * length * _direction(angle)
        c = np.array([cx, cy])
        tubes.append(
            Tube(
                name,
                0,
                place(c - axis),
                place(c + axis),
                place.length(r * rng.uniform(0.93, 1.07)),
                latent.distractor_ci * 0.8,
                latent.distractor_density,
                1.0,
                1.0,
                0.3,
            )
        )
    forearm_top, forearm_bottom = np.array([-4.0, 5.0]), np.array([-4.0, 5.0 + FOREARM_LENGTH_MM])
    soft_lines.append((place(forearm_top), place(forearm_bottom), place.length(37.0)))
    bases = [np.array(v[:2]) for v in METACARPALS.values()]
    palm = np.array([*bases, *heads[::-1]] + [[-30.0, 0.0], [32.0, -2.0]])
    hull = _convex_hull(np.array([place(p) for p in palm]))
    return Hand(tubes, soft_lines, hull, place.mm_per_pixel)


def _finger(name, head, angle, mc_width_px, latent, place, rng) -> list[Tube]:
    tubes = []
    start = head + 2.5 * _direction(angle)
    widths = (1.1, 0.95, 0.8) if len(PHALANGES[name]) == 3 else (1.1, 0.9)
    for k, length in enumerate(PHALANGES[name]):
        end = start + length * _direction(angle)
        tubes.append(
            Tube(
                f"{name}_phalanx{k + 1}",
                0,
                place(start),
                place(end),
                0.5 * mc_width_px * widths[k] * rng.uniform(0.95, 1.05),
                latent.distractor_ci,
                latent.distractor_density,
                1.35,
                1.25,
                0.22,
            )
        )
        start = end + 2.5 * _direction(angle)
    return tubes


def _convex_hull(points: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.convexHull(points.astype(np.float32)).reshape(-1, 2)
