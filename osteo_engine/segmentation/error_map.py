"""A learned map of where a segmentation is likely wrong, beside the entropy and the mutual information.

The segmenter's own uncertainty finds the edges of the bones, but its remaining errors on real hands are sure
ones away from them: bones drawn too wide over the soft tissue between the metacarpals and over their bases
(docs/segmenter-modules.md). Those pixels look like soft tissue yet carry a bone's label. A small per-pixel
classifier reads that: from the segmentation's own maps (total entropy, mutual information, the label and the
signed distance to its nearest edge) and from the radiograph's intensity relative to the hand's own bone and
soft tissue (at four scales, and their local contrast), it gives the probability that the label map is wrong
there. It is fitted to the pixels of training images whose reference masks are known (error_fit.py), and
stored as safetensors beside the segmenter, where `load_segmenter` finds it (`companion_path`).

Every length is in units of the hand's scale (the square root of the label map's bone area over
HAND_SCALE_PIXELS), so the features mean the same at any resolution, and the intensity is relative to the label
map's own bone and background medians, so an inverted file reads the same as an upright one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy import ndimage

from ..anatomy import NUM_CLASSES
from ..cards import ErrorMapCard
from ..errors import ConfigError
from ..runs import load_model, write_model
from .metrics import bones_box

BLUR_SIGMAS = (2.0, 6.0, 16.0)  # pixels, at hand scale 1
CONTINUOUS = (
    "total_entropy",
    "mutual_information",
    "signed_edge_distance",  # + inside a bone, − outside, in hand-scale units × 100
    "intensity",  # (pixel − background median) / (bone median − background median)
    *(f"intensity_blur{s:g}" for s in BLUR_SIGMAS),
    "local_contrast",  # the first blur − the last
)
HAND_SCALE_PIXELS = 500.0  # √(bone area) of a typical atlas hand at its own resolution, pixels
HIDDEN = 32
CHUNK = 1 << 18  # pixels per pass of the classifier: bounds its memory
# The map is made on a grid of at most this many pixels and enlarged: for 1280x1024 pixels on 2 cores it takes
# 0.11 s so and 0.70 s at full size, and the errors it flags are bands, not single pixels.
GRID_PIXELS = 250_000


@dataclass
class ErrorMap:
    """The fitted classifier: a 2-layer perceptron on the standardised CONTINUOUS features, with the label's
    one-hot as a per-class bias of its first layer. `state` holds float32 tensors: mean, std (F,), w1 (HIDDEN,
    F), b1 (HIDDEN, NUM_CLASSES), w2 (HIDDEN, HIDDEN), b2 (HIDDEN,), w3 (1, HIDDEN), b3 (1,)."""

    state: dict[str, torch.Tensor]
    card: ErrorMapCard

    def probability(self, features: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """P(label map wrong) per pixel, float32 (N,), for `features` (N, F) and `labels` (N,) uint8."""
        out = np.empty(len(labels), np.float32)
        with torch.inference_mode():
            for start in range(0, len(labels), CHUNK):
                x = torch.from_numpy(features[start : start + CHUNK])
                c = torch.from_numpy(labels[start : start + CHUNK].astype(np.int64))
                out[start : start + CHUNK] = torch.sigmoid(self._logits(x, c)).numpy()
        return out

    def _logits(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        s = self.state
        h = torch.relu((x - s["mean"]) / s["std"] @ s["w1"].T + s["b1"].T[labels])
        h = torch.relu(h @ s["w2"].T + s["b2"])
        return (h @ s["w3"].T + s["b3"])[:, 0]

    def map(self, pixels: np.ndarray, labels: np.ndarray, entropy: np.ndarray, mutual_information: np.ndarray):
        """P(wrong) at every pixel, (H, W) float32 in 0–1, for a radiograph (H, W) and its segmentation's maps:
        made on the GRID_PIXELS grid (`on_grid`) and enlarged."""
        grid = on_grid(pixels, labels, entropy, mutual_information)
        features = pixel_features(*grid).reshape(-1, len(CONTINUOUS))
        probability = self.probability(features, grid[1].ravel()).reshape(grid[1].shape)
        if probability.shape == labels.shape:
            return probability
        return cv2.resize(probability, labels.shape[::-1], interpolation=cv2.INTER_LINEAR)


def on_grid(*maps: np.ndarray) -> list[np.ndarray]:
    """The (H, W) maps at the error map's working size, at most GRID_PIXELS pixels of the same aspect: uint8 maps
    (labels) by their nearest pixel, float maps by area averaging."""
    h, w = maps[0].shape
    scale = min(1.0, (GRID_PIXELS / (h * w)) ** 0.5)
    if scale == 1.0:
        return list(maps)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return [
        cv2.resize(m, size, interpolation=cv2.INTER_NEAREST if m.dtype == np.uint8 else cv2.INTER_AREA) for m in maps
    ]


def pixel_features(
    pixels: np.ndarray, labels: np.ndarray, entropy: np.ndarray, mutual_information: np.ndarray
) -> np.ndarray:
    """(H, W, F) float32, the CONTINUOUS features of every pixel (module docstring). All inputs (H, W); `labels`
    uint8 (0 background). A label map without bone or without background gives relative intensities of 0."""
    bone = labels > 0
    scale = max(np.sqrt(bone.sum()) / HAND_SCALE_PIXELS, 0.05)
    image = pixels.astype(np.float32)
    relative = _relative_intensity(image, bone)
    blurred = [relative(cv2.GaussianBlur(image, (0, 0), s * scale)) for s in BLUR_SIGMAS]
    distance = ndimage.distance_transform_edt(~label_edges(labels)).astype(np.float32)
    distance *= 100 / (scale * HAND_SCALE_PIXELS)
    maps = [entropy, mutual_information, np.where(bone, distance, -distance), relative(image), *blurred]
    maps.append(blurred[0] - blurred[-1])
    return np.stack([m.astype(np.float32, copy=False) for m in maps], axis=-1)


def _relative_intensity(image: np.ndarray, bone: np.ndarray):
    """values -> (values − background median) / (bone median − background median), the medians taken inside
    `bones_box` (the soft tissue around the bones, not the empty film)."""
    if bone.all() or not bone.any():
        return np.zeros_like
    box = bones_box(bone)
    inside, near = image[box], bone[box]
    background = float(np.median(inside[~near])) if (~near).any() else float(np.median(image[~bone]))
    span = float(np.median(inside[near])) - background
    span = span if abs(span) > 1e-6 else 1e-6
    return lambda values: (values - background) / span


def label_edges(labels: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose label differs from the next pixel's below or to the right."""
    edge = np.zeros(labels.shape, bool)
    edge[:-1] |= labels[:-1] != labels[1:]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    return edge


def train_error_classifier(
    features: np.ndarray, labels: np.ndarray, wrong: np.ndarray, *, epochs: int = 3, seed: int = 0, progress=None
) -> dict[str, torch.Tensor]:
    """Fit the perceptron by binary cross-entropy (Adam, batches of 4096) to pixels' `features` (N, F), their
    `labels` (N,) and whether each is `wrong` (N,) bool. Returns ErrorMap's state. Raises ValueError when the
    pixels are not both right and wrong, or a feature is not finite."""
    if not 0 < wrong.sum() < len(wrong):
        raise ValueError("an error map needs pixels the segmentation got right and pixels it got wrong")
    if not np.isfinite(features).all():
        raise ValueError("an error map's features must be finite")
    generator = torch.Generator().manual_seed(seed)
    x, c = torch.from_numpy(features.astype(np.float32)), torch.from_numpy(labels.astype(np.int64))
    y = torch.from_numpy(wrong.astype(np.float32))
    state = _initial_state(x, generator)
    parameters = [v.requires_grad_() for k, v in state.items() if k not in ("mean", "std")]
    optimizer = torch.optim.Adam(parameters, lr=3e-3)
    model = ErrorMap(state, ErrorMapCard())
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 4096):
            batch = order[start : start + 4096]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model._logits(x[batch], c[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if progress:
            progress(epoch + 1, epochs)
    return {k: v.detach().clone() for k, v in state.items()}


def _initial_state(x: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
    def layer(rows: int, cols: int) -> torch.Tensor:
        return (torch.rand(rows, cols, generator=generator) * 2 - 1) / cols**0.5

    return {
        "mean": x.mean(0),
        "std": x.std(0).clamp_min(1e-6),
        "w1": layer(HIDDEN, x.shape[1]),
        "b1": torch.zeros(HIDDEN, NUM_CLASSES),
        "w2": layer(HIDDEN, HIDDEN),
        "b2": torch.zeros(HIDDEN),
        "w3": layer(1, HIDDEN),
        "b3": torch.zeros(1),
    }


def companion_path(segmenter_path: str | Path) -> Path:
    """Where a segmenter's error map lies: `<name>.errors.safetensors` beside `<name>.safetensors`."""
    path = Path(segmenter_path)
    return path.with_name(f"{path.stem}.errors.safetensors")


def save_error_map(path: str | Path, error_map: ErrorMap) -> Path:
    return write_model(path, error_map.state, error_map.card)


def load_error_map(path: str | Path) -> ErrorMap:
    """The error map at `path` (safetensors and its card). Raises ConfigError for a missing, unreadable or
    damaged file, or one whose features are not this version's."""
    state, card = load_model(path, ErrorMapCard)
    shapes = {"mean": (len(CONTINUOUS),), "w1": (HIDDEN, len(CONTINUOUS)), "b1": (HIDDEN, NUM_CLASSES)}
    if tuple(card.features) != CONTINUOUS or any(
        k not in state or tuple(state[k].shape) != v for k, v in shapes.items()
    ):
        raise ConfigError(
            f"{Path(path).name} is an error map for other features; fit it again (`osteo segment fit-errors`)."
        )
    return ErrorMap({k: v.float() for k, v in state.items()}, card)
