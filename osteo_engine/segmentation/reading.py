"""How the network reads one radiograph: its letterboxed input, latents drawn alike for every image, and the
orientation (quarter turns, contrast inversion) under which the hand looks upright and bone-bright to it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from ..anatomy import BONES
from .data import Letterbox
from .parts import MIN_AREA_FRACTION, components

if TYPE_CHECKING:
    from .predict import LoadedSegmenter

ORIENTATIONS = [(turns, inverted) for turns in range(4) for inverted in (False, True)]
# An as-stored reading scoring at least this in `plausibility` (all 7 bones found and whole at a mean confidence
# of 0.75) is taken without trying the other 7 orientations; `segment` scores its own reading of the file, so an
# upright file costs one pass of the network, not eight. `bench/orientation_margin.py` prints, for the bundled
# model, the upright and best turned scores that this value must lie between; run it again after changing the
# model. Bundled model: upright atlas val files 2.896 and phantoms 2.845 at the least, other readings 2.623 at
# the most. At 2.85, phantoms that sat just below it (about one in 16) each cost 7 more passes.
CONFIDENT_UPRIGHT = 2.75


def network_input(image: np.ndarray, segmenter: LoadedSegmenter) -> tuple[Letterbox, torch.Tensor]:
    """(the Letterbox that fits `image` (H, W) float32 to the network's input, the letterboxed image as a
    (1, 1, h, w) tensor on the segmenter's device)."""
    box = Letterbox.fit(image.shape, segmenter.input_size)
    return box, torch.from_numpy(box.image(image))[None, None].to(segmenter.device)


def repeatable(segmenter: LoadedSegmenter) -> torch.Generator:
    """The latents' generator, seeded alike for every image: the same file always gets the same maps."""
    return torch.Generator(segmenter.device).manual_seed(0)


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 convolutions natively: a CUDA GPU that supports it, or a processor with
    AVX-512 BF16 (oneDNN's bf16 kernels; elsewhere they are emulated and slower than float32). On a 2-core Zen 4
    the U-Net then takes 0.058 s an image at 384×480 instead of 0.142 s, and the label maps differ on 0.02% of
    a phantom's pixels (bench/patch_bank_speed.py)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())


def mean_prediction(x: torch.Tensor, segmenter: LoadedSegmenter, samples: int, bf16: bool) -> np.ndarray:
    """(B, C, h, w) float32 the mean probabilities of x (B, 1, h, w), in bfloat16 autocast when `bf16`."""
    x = x.to(segmenter.device).contiguous(memory_format=torch.channels_last)
    with torch.autocast(segmenter.device.type, dtype=torch.bfloat16, enabled=bf16):
        means, _ = segmenter.model.mean_prediction(x, samples=samples, generator=repeatable(segmenter))
    return means.float().cpu().numpy()


@torch.inference_mode()
def find_orientation(
    pixels: np.ndarray, segmenter: LoadedSegmenter, as_stored: float | None = None
) -> tuple[int, bool]:
    """The quarter turns (counter-clockwise) and contrast inversion under which the network finds the most
    bones with the highest confidence. Trained on upright, bone-bright hands, the network is less sure of itself
    on turned or inverted ones (`bench/orientation_margin.py` measures the margin), so a sideways or inverted
    file keeps M1 on the thumb. `pixels` as for `segment`; `as_stored`, the `plausibility` of a reading of the
    file as it is when the caller has one (`segment` does), saves that reading. Returns (quarter turns
    counter-clockwise, inverted)."""
    if as_stored is None:
        as_stored = orientation_scores(pixels, segmenter, ORIENTATIONS[:1])[0]
    if as_stored >= CONFIDENT_UPRIGHT:  # the common case, before any thumbnail (3 ms at 1024×1280, every bank image)
        return ORIENTATIONS[0]
    scores = [as_stored] + orientation_scores(pixels, segmenter, ORIENTATIONS[1:])
    return ORIENTATIONS[int(np.argmax(scores))]


@torch.inference_mode()
def orientation_scores(
    pixels: np.ndarray, segmenter: LoadedSegmenter, orientations: list = ORIENTATIONS
) -> list[float]:
    """`plausibility` of each (quarter turns, inverted) reading, read in one low-resolution batch."""
    small = _thumbnail(pixels, segmenter)
    return [plausibility(p) for p in _low_resolution_probabilities(small, segmenter, orientations)]


def _thumbnail(pixels: np.ndarray, segmenter: LoadedSegmenter) -> np.ndarray:
    """The image shrunk once to twice the network's input, so that 8 readings do not each resize it in full."""
    scale = min(1.0, 2 * max(segmenter.input_size) / max(pixels.shape))
    return cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else pixels


def _low_resolution_probabilities(small: np.ndarray, segmenter: LoadedSegmenter, orientations: list) -> np.ndarray:
    batch = []
    for turns, inverted in orientations:
        view = reorient(small, turns, inverted)
        batch.append(Letterbox.fit(view.shape, segmenter.input_size).image(view))
    return mean_prediction(torch.from_numpy(np.stack(batch))[:, None], segmenter, samples=1, bf16=False)


def plausibility(probs: np.ndarray) -> float:
    """Mean confidence over the pixels called bone, plus the share of the 7 bones found, plus how whole they are
    (each bone's share of its pixels in its largest part, averaged over the 7; 0 for a bone not found).
    Confidence alone did not tell a turned hand from an upright one for a mixture whose samples spread: the
    upright reading of atlas val won on 23 of 42 files, and on 42 of 42 with the wholeness added (README)."""
    labels, confidence = probs.argmax(0), probs.max(0)
    bone = labels > 0
    found = whole = 0.0
    for value in BONES:
        _, areas = components(labels == value)
        found += float(areas.sum() > MIN_AREA_FRACTION * labels.size)
        whole += float(areas.max() / areas.sum()) if areas.size else 0.0
    return (float(confidence[bone].mean()) if bone.any() else 0.0) + (found + whole) / len(BONES)


def reorient(pixels: np.ndarray, turns: int, inverted: bool) -> np.ndarray:
    view = np.rot90(pixels, turns) if turns else pixels
    return np.ascontiguousarray(1.0 - view if inverted else view, dtype=np.float32)


def turned_back(turns: int):
    """The map as the file stores it, from the upright reading."""
    return lambda a: np.ascontiguousarray(np.rot90(a, -turns)) if turns else a
