"""Multi-crop views of bone patches with the paper's augmentations, batched on tensors (paper §3.3).

Each view is one `grid_sample` of the whole batch: a random resized crop composed with rotation (±30°),
translation (±10%) and horizontal/vertical flips in a single affine map, then brightness and contrast
(50–150%). In `constrained` mode a crop must keep at least 10% non-zero pixels: a bone patch is mostly
black, and a crop of background teaches nothing. Candidate boxes are drawn for all tries at once and scored
with a summed-area table, so the constraint costs almost nothing; when no candidate passes, the best one
is used and counted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


SAT_CELL = 4  # pixels per summed-area cell


@dataclass(frozen=True)
class AugmentConfig:
    rotation_deg: float = 30.0
    translate: float = 0.1
    hflip: float = 0.5
    vflip: float = 0.5
    brightness: tuple[float, float] = (0.5, 1.5)
    contrast: tuple[float, float] = (0.5, 1.5)


@dataclass(frozen=True)
class MultiCropConfig:
    global_size: int = 224
    local_size: int = 96
    global_crops: int = 2
    local_crops: int = 4
    global_scale: tuple[float, float] = (0.4, 1.0)
    local_scale: tuple[float, float] = (0.05, 0.4)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    mode: str = "constrained"  # or "conventional"
    min_nonzero: float = 0.1
    tries: int = 10
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class CropStats:
    crops: int = 0
    fallbacks: int = 0  # constrained crops where no try reached the minimum, so the best one was used

    def add(self, other: "CropStats") -> None:
        self.crops += other.crops
        self.fallbacks += other.fallbacks


def sample_boxes(count: int, height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float],
                 generator: torch.Generator, device=None) -> torch.Tensor:
    """(count, 4) boxes x0, y0, w, h in pixels, random-resized-crop style (area fraction × aspect ratio)."""
    area = height * width * torch.empty(count, device=device).uniform_(*scale, generator=generator)
    log_ratio = torch.empty(count, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1]),
                                                           generator=generator)
    aspect = torch.exp(log_ratio)
    w = torch.sqrt(area * aspect).clamp(1, width)
    h = torch.sqrt(area / aspect).clamp(1, height)
    x0 = torch.rand(count, generator=generator, device=device) * (width - w)
    y0 = torch.rand(count, generator=generator, device=device) * (height - h)
    return torch.stack([x0, y0, w, h], dim=1)


def nonzero_fraction(area: SummedArea, boxes: torch.Tensor, image_index: torch.Tensor) -> torch.Tensor:
    """Share of non-zero pixels in each box (x0, y0, w, h in pixels) of image `image_index`."""
    integral = area.table
    h, w = integral.shape[1] - 1, integral.shape[2] - 1
    boxes = boxes / area.cell
    x0 = boxes[:, 0].round().long().clamp(0, w)
    y0 = boxes[:, 1].round().long().clamp(0, h)
    x1 = (boxes[:, 0] + boxes[:, 2]).round().long().clamp(0, w)
    y1 = (boxes[:, 1] + boxes[:, 3]).round().long().clamp(0, h)
    t, i = integral, image_index
    inside = t[i, y1, x1] - t[i, y0, x1] - t[i, y1, x0] + t[i, y0, x0]
    return inside / ((x1 - x0) * (y1 - y0)).clamp_min(1)


@dataclass
class SummedArea:
    table: torch.Tensor  # (B, H/cell + 1, W/cell + 1) running sums of the non-zero share per cell
    cell: int  # pixels per cell side


def summed_area(images: torch.Tensor, cell: int = SAT_CELL) -> SummedArea:
    """Summed-area tables of where (B, 1, H, W) images are non-zero, over cells of a few pixels: the table
    stays small, and the constraint is a 10% threshold, not an exact count."""
    cell = max(1, min(cell, images.shape[-1] // 8, images.shape[-2] // 8))
    share = F.avg_pool2d((images[:, :1] != 0).float(), cell, ceil_mode=True)[:, 0]
    return SummedArea(F.pad(share.cumsum(1).cumsum(2), (1, 0, 1, 0)), cell)


def choose_boxes(images: torch.Tensor, integral: SummedArea | None, scale, config: MultiCropConfig,
                 generator: torch.Generator, count: int = 1) -> tuple[torch.Tensor, CropStats]:
    """`count` boxes per image, (count·B, 4) crop-major: all tries of all crops are drawn and scored at once."""
    b, _, h, w = images.shape
    n = count * b
    if config.mode == "conventional":
        return sample_boxes(n, h, w, scale, config.ratio, generator, images.device), CropStats(n, 0)
    if config.mode != "constrained":
        raise ValueError(f"unknown multi-crop mode {config.mode!r}")
    tries = config.tries
    boxes = sample_boxes(n * tries, h, w, scale, config.ratio, generator, images.device).view(n, tries, 4)
    index = torch.arange(b, device=images.device).repeat(count).repeat_interleave(tries)
    fraction = nonzero_fraction(integral, boxes.view(-1, 4), index).view(n, tries)
    passed = fraction >= config.min_nonzero
    first = torch.where(passed.any(1), passed.float().argmax(1), fraction.argmax(1))
    chosen = boxes[torch.arange(n, device=images.device), first]
    return chosen, CropStats(n, int((~passed.any(1)).sum()))


def _affine(boxes: torch.Tensor, h: int, w: int, aug: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """theta (B, 2, 3) mapping output coordinates in [-1, 1] to input coordinates: crop ∘ augmentation."""
    n, device = len(boxes), boxes.device
    angle = torch.empty(n, device=device).uniform_(-aug.rotation_deg, aug.rotation_deg, generator=generator)
    angle = angle * math.pi / 180
    shift = torch.empty(n, 2, device=device).uniform_(-aug.translate, aug.translate, generator=generator) * 2
    flip_x = torch.where(torch.rand(n, generator=generator, device=device) < aug.hflip, -1.0, 1.0)
    flip_y = torch.where(torch.rand(n, generator=generator, device=device) < aug.vflip, -1.0, 1.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # augmentation in the crop's normalised frame: flip, rotate, translate
    a = torch.stack([torch.stack([cos * flip_x, -sin * flip_y, shift[:, 0]], 1),
                     torch.stack([sin * flip_x, cos * flip_y, shift[:, 1]], 1)], 1)
    sx, sy = boxes[:, 2] / w, boxes[:, 3] / h
    cx = (boxes[:, 0] + boxes[:, 2] / 2) / w * 2 - 1
    cy = (boxes[:, 1] + boxes[:, 3] / 2) / h * 2 - 1
    crop = torch.zeros(n, 3, 3, device=device)
    crop[:, 0, 0], crop[:, 1, 1], crop[:, 0, 2], crop[:, 1, 2], crop[:, 2, 2] = sx, sy, cx, cy, 1.0
    return (crop @ torch.cat([a, torch.tensor([0.0, 0.0, 1.0], device=device).expand(n, 1, 3)], 1))[:, :2]


def _view(images, boxes, size, aug: AugmentConfig, generator) -> torch.Tensor:
    b, c, h, w = images.shape
    theta = _affine(boxes, h, w, aug, generator)
    grid = F.affine_grid(theta, (b, c, size, size), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    brightness = torch.empty(b, 1, 1, 1, device=images.device).uniform_(*aug.brightness, generator=generator)
    contrast = torch.empty(b, 1, 1, 1, device=images.device).uniform_(*aug.contrast, generator=generator)
    mean = out.mean(dim=(2, 3), keepdim=True)
    return ((out - mean) * contrast + mean) * brightness


def multicrop(images: torch.Tensor, config: MultiCropConfig, generator: torch.Generator,
              area: SummedArea | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor], CropStats]:
    """images (B, 1, H, W) -> global views [(B, 1, G, G)] and local views [(B, 1, L, L)], and crop stats.

    `area` is the images' `summed_area`, when the caller keeps one per patch (patches do not change)."""
    if images.ndim != 4:
        raise ValueError(f"expected images (B, C, H, W), got {tuple(images.shape)}")
    if config.mode == "constrained" and area is None:
        area = summed_area(images)
    stats = CropStats()
    views = []
    for count, size, scale in ((config.global_crops, config.global_size, config.global_scale),
                               (config.local_crops, config.local_size, config.local_scale)):
        boxes, found = choose_boxes(images, area, scale, config, generator, count)
        stats.add(found)
        views.append([_view(images, part, size, config.augment, generator) for part in boxes.split(len(images))]
                     if count else [])
    return views[0], views[1], stats
