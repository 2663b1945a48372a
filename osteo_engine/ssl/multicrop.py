"""Multi-crop views of bone patches with the paper's augmentations, batched on tensors (paper §3.3).

Each view is one `grid_sample` of the whole batch: a random resized crop composed with rotation (±30°),
translation (±10%) and horizontal/vertical flips in a single affine map, then brightness and contrast
(50–150%) of the bone pixels alone, so that masked-out background stays exactly 0. In `constrained` mode a
view must keep at least 10% non-zero pixels: a bone patch is mostly black, and a view of background teaches
nothing. The rule holds for the view as it is finally sampled (rotation and translation included, not only
the crop box): candidate views are drawn for all tries at once and scored by sampling each patch's coverage
map (its share of non-zero pixels per cell) through the candidate's own affine map at low resolution, so the
constraint costs little; when no candidate passes, the best one is used and counted. Every view's actual
share of non-zero pixels is measured after sampling and reported (`CropStats.below_min`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from ..registry import MULTICROP_MODES

COVERAGE_CELLS = 32  # cells per side of a patch's coverage map
PROBE_SIZE = 16  # pixels per side at which candidate views are scored
NO_GAMMA, NO_NOISE = (1.0, 1.0), (0.0, 0.0)  # the acquisition ablation's ranges while it is off (the paper)
NO_BLUR = (0.0, 0.0)  # the blur ablation's range of sigmas while it is off (the paper)


@dataclass(frozen=True)
class ViewAugmentConfig:
    rotation_deg: float = 30.0
    translate: float = 0.1
    hflip: float = 0.5
    vflip: float = 0.5
    brightness: tuple[float, float] = (0.5, 1.5)
    contrast: tuple[float, float] = (0.5, 1.5)
    # beyond the paper (both off in it): a display gamma drawn log-uniformly from this range, and Gaussian noise
    # of a standard deviation drawn uniformly from this range, on the bone's pixels of each view; they vary what
    # varies between radiographs (the detector's response curve and dose), not between two views of one
    gamma: tuple[float, float] = NO_GAMMA
    noise: tuple[float, float] = NO_NOISE
    # beyond the paper too: a Gaussian blur of the bone with a sigma (view pixels) drawn uniformly from this range, so
    # that two views of one patch cannot be matched by the fine trabecular pattern they share
    blur: tuple[float, float] = NO_BLUR


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
    augment: ViewAugmentConfig = field(default_factory=ViewAugmentConfig)


@dataclass
class CropStats:
    crops: int = 0
    fallbacks: int = 0  # constrained views where no try reached the minimum, so the best one was used
    below_min: int = 0  # views whose sampled pixels are less than `min_nonzero` non-zero (measured)

    def add(self, other: CropStats) -> None:
        self.crops += other.crops
        self.fallbacks += other.fallbacks
        self.below_min += other.below_min


def sample_boxes(
    count: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator,
    device=None,
) -> torch.Tensor:
    """(count, 4) boxes x0, y0, w, h in pixels, random-resized-crop style (area fraction × aspect ratio)."""
    area = height * width * torch.empty(count, device=device).uniform_(*scale, generator=generator)
    log_ratio = torch.empty(count, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    aspect = torch.exp(log_ratio)
    w = torch.sqrt(area * aspect).clamp(1, width)
    h = torch.sqrt(area / aspect).clamp(1, height)
    x0 = torch.rand(count, generator=generator, device=device) * (width - w)
    y0 = torch.rand(count, generator=generator, device=device) * (height - h)
    return torch.stack([x0, y0, w, h], dim=1)


def coverage(images: torch.Tensor, cells: int = COVERAGE_CELLS) -> torch.Tensor:
    """(B, 1, C, C): the share of non-zero pixels in each of C×C cells of (B, 1, H, W) images. Pretraining
    makes it once per patch (a patch does not change between epochs)."""
    cells = max(1, min(cells, images.shape[-2], images.shape[-1]))
    return F.adaptive_avg_pool2d((images[:, :1] != 0).float(), cells)


def view_share(cover: torch.Tensor, theta: torch.Tensor, size: int = PROBE_SIZE) -> torch.Tensor:
    """(N,) estimated share of non-zero pixels in the views that `theta` (N, 2, 3) cuts from images whose
    coverage maps are `cover` (N, 1, C, C): the coverage sampled through the view's own affine map."""
    grid = F.affine_grid(theta, (len(theta), 1, size, size), align_corners=False)
    return F.grid_sample(cover, grid, mode="bilinear", padding_mode="zeros", align_corners=False).mean((1, 2, 3))


def choose_views(
    images: torch.Tensor,
    cover: torch.Tensor | None,
    scale,
    config: MultiCropConfig,
    generator: torch.Generator,
    count: int = 1,
) -> tuple[torch.Tensor, CropStats]:
    """`count` views per image as affine maps theta (count·B, 2, 3), crop-major. Constrained: of `tries`
    candidates each, the first whose estimated share of non-zero pixels reaches `min_nonzero`."""
    b, _, h, w = images.shape
    n = count * b
    if config.mode not in MULTICROP_MODES:
        raise ValueError(f"unknown multi-crop mode {config.mode!r}; choose one of {', '.join(MULTICROP_MODES)}")
    tries = config.tries if config.mode == "constrained" else 1
    boxes = sample_boxes(n * tries, h, w, scale, config.ratio, generator, images.device)
    theta = _affine(boxes, h, w, config.augment, generator)
    if config.mode == "conventional":
        return theta, CropStats(n)
    index = torch.arange(b, device=images.device).repeat(count).repeat_interleave(tries)
    share = view_share(cover[index], theta).view(n, tries)
    passed = share >= config.min_nonzero
    first = torch.where(passed.any(1), passed.float().argmax(1), share.argmax(1))
    chosen = theta.view(n, tries, 2, 3)[torch.arange(n, device=images.device), first]
    return chosen, CropStats(n, int((~passed.any(1)).sum()))


def _affine(boxes: torch.Tensor, h: int, w: int, aug: ViewAugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """theta (B, 2, 3) mapping output coordinates in [-1, 1] to input coordinates: crop ∘ augmentation."""
    n, device = len(boxes), boxes.device
    angle = torch.empty(n, device=device).uniform_(-aug.rotation_deg, aug.rotation_deg, generator=generator)
    angle = angle * math.pi / 180
    shift = torch.empty(n, 2, device=device).uniform_(-aug.translate, aug.translate, generator=generator) * 2
    flip_x = torch.where(torch.rand(n, generator=generator, device=device) < aug.hflip, -1.0, 1.0)
    flip_y = torch.where(torch.rand(n, generator=generator, device=device) < aug.vflip, -1.0, 1.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # augmentation in the crop's normalised frame: flip, rotate, translate
    a = torch.stack(
        [
            torch.stack([cos * flip_x, -sin * flip_y, shift[:, 0]], 1),
            torch.stack([sin * flip_x, cos * flip_y, shift[:, 1]], 1),
        ],
        1,
    )
    sx, sy = boxes[:, 2] / w, boxes[:, 3] / h
    cx = (boxes[:, 0] + boxes[:, 2] / 2) / w * 2 - 1
    cy = (boxes[:, 1] + boxes[:, 3] / 2) / h * 2 - 1
    crop = torch.zeros(n, 3, 3, device=device)
    crop[:, 0, 0], crop[:, 1, 1], crop[:, 0, 2], crop[:, 1, 2], crop[:, 2, 2] = sx, sy, cx, cy, 1.0
    return (crop @ torch.cat([a, torch.tensor([0.0, 0.0, 1.0], device=device).expand(n, 1, 3)], 1))[:, :2]


def _view(images, theta, size, aug: ViewAugmentConfig, generator) -> torch.Tensor:
    """The views `theta` cuts from `images`, with brightness and contrast applied to the bone alone: each
    pixel's bone weight w (the mask sampled like the image; numerical bleed under 1% dropped) scales the
    jitter, so background stays exactly 0 and bone edges blend as sampled."""
    b, c, _, _ = images.shape
    grid = F.affine_grid(theta, (b, c, size, size), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    weight = F.grid_sample((images != 0).float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    weight = torch.where(weight < 0.01, torch.zeros_like(weight), weight)
    brightness = torch.empty(b, 1, 1, 1, device=images.device).uniform_(*aug.brightness, generator=generator)
    contrast = torch.empty(b, 1, 1, 1, device=images.device).uniform_(*aug.contrast, generator=generator)
    mean = (out * (weight > 0)).sum((2, 3), keepdim=True) / weight.sum((2, 3), keepdim=True).clamp_min(1e-6)
    jittered = ((out - weight * mean) * contrast + weight * mean) * brightness
    jittered = _acquisition(_blur(jittered, weight, aug, generator), weight, aug, generator)
    return torch.where(weight > 0, jittered, torch.zeros_like(out))


def _blur(views: torch.Tensor, weight: torch.Tensor, aug: ViewAugmentConfig, generator) -> torch.Tensor:
    """views (B, 1, S, S) each blurred by a Gaussian of its own sigma within the bone (a convolution normalised by
    the blurred bone mask, so the background neither darkens the edges nor gains bone); unchanged while off."""
    if aug.blur == NO_BLUR:
        return views
    b, _, s, _ = views.shape
    sigma = torch.empty(b, 1, device=views.device).uniform_(*aug.blur, generator=generator).clamp_min(1e-3)
    radius = max(1, math.ceil(3 * aug.blur[1]))
    x = torch.arange(-radius, radius + 1, device=views.device, dtype=views.dtype)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True))[:, None, None, :]  # (B, 1, 1, 2r + 1)
    bone = (weight > 0).to(views.dtype)

    def smooth(t: torch.Tensor) -> torch.Tensor:  # one group per view: each with its own kernel
        t = F.conv2d(t.reshape(1, b, s, s), kernel, padding=(0, radius), groups=b)
        return F.conv2d(t, kernel.transpose(2, 3), padding=(radius, 0), groups=b).reshape(b, 1, s, s)

    return smooth(views * bone) / smooth(bone).clamp_min(1e-6) * bone


def _acquisition(views: torch.Tensor, weight: torch.Tensor, aug: ViewAugmentConfig, generator) -> torch.Tensor:
    """views (B, 1, S, S) with the augmentation's gamma (of the views clipped at 0) and noise, the noise scaled by
    the bone weight; the views unchanged where both are off."""
    if aug.gamma == NO_GAMMA and aug.noise == NO_NOISE:
        return views
    b, device = len(views), views.device
    low, high = math.log(aug.gamma[0]), math.log(aug.gamma[1])
    gamma = torch.empty(b, 1, 1, 1, device=device).uniform_(low, high, generator=generator).exp()
    sigma = torch.empty(b, 1, 1, 1, device=device).uniform_(*aug.noise, generator=generator)
    noise = torch.randn(views.shape, generator=generator, device=device)
    return views.clamp_min(0).pow(gamma) + sigma * weight * noise


def multicrop(
    images: torch.Tensor, config: MultiCropConfig, generator: torch.Generator, cover: torch.Tensor | None = None
) -> tuple[list[torch.Tensor], list[torch.Tensor], CropStats]:
    """images (B, 1, H, W) -> global views [(B, 1, G, G)] and local views [(B, 1, L, L)], and crop stats.

    `cover` is the images' `coverage`, when the caller keeps one per patch (patches do not change)."""
    if images.ndim != 4:
        raise ValueError(f"expected images (B, C, H, W), got {tuple(images.shape)}")
    if config.mode == "constrained" and cover is None:
        cover = coverage(images)
    stats = CropStats()
    views = []
    for count, size, scale in (
        (config.global_crops, config.global_size, config.global_scale),
        (config.local_crops, config.local_size, config.local_scale),
    ):
        if not count:
            views.append([])
            continue
        thetas, found = choose_views(images, cover, scale, config, generator, count)
        made = [_view(images, part, size, config.augment, generator) for part in thetas.split(len(images))]
        found.below_min = sum(int(((v != 0).float().mean((1, 2, 3)) < config.min_nonzero).sum()) for v in made)
        stats.add(found)
        views.append(made)
    return views[0], views[1], stats


def paired_multicrop(
    images: torch.Tensor,
    partners: torch.Tensor,
    config: MultiCropConfig,
    generator: torch.Generator,
    cover: torch.Tensor | None = None,
    partner_cover: torch.Tensor | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor], CropStats]:
    """`multicrop` whose first half of the global and of the local views come from `images` and the second half
    from `partners` (B, 1, H, W), image i's positive counterpart: views i of every list then show two bones of
    one subject. Raises ValueError for an odd number of global or local crops."""
    if config.global_crops % 2 or config.local_crops % 2:
        raise ValueError(
            f"paired views need even numbers of crops, not {config.global_crops} global and {config.local_crops} local"
        )
    half = replace(config, global_crops=config.global_crops // 2, local_crops=config.local_crops // 2)
    own_global, own_local, stats = multicrop(images, half, generator, cover)
    partner_global, partner_local, partner_stats = multicrop(partners, half, generator, partner_cover)
    stats.add(partner_stats)
    return own_global + partner_global, own_local + partner_local, stats
