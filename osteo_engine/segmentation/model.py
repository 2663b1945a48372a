"""The mixture-of-stochastic-heads segmenter (paper §3.1.2, after MoSE).

A U-Net runs once per image and gives encoder features u_e and decoded features u_d. Each of K modules
has a learned Gaussian prior N(μ_k, σ_k² I) over a latent z of size L; a sample modulates the decoded
features as (W_s z + b_s) ⊙ (u_d + W_b z) and three 1×1 convolutions map them to C classes. A routing MLP on
the average-pooled u_e gives π_k(x). Only the cheap per-sample head sees the noise.

`heads="shared"` is MoSE's design: W_s, W_b and the 1×1 convolutions are shared by all modules, which
differ only by their priors, started at σ = 1/8 with means spread over [0, 1] (module 1 at 0, module 2 at
1). W_s and W_b start Xavier-uniform as MoSE's, so the modules start apart; b_s starts at 1 (MoSE's starts
at 0, which makes a module whose mean is near 0 start by erasing the features). Started at N(0, 0.1²)
instead, the modules drew nearly the same maps, no module came to stand for one rater's habit, and once γ
reached 1 one module took the phantom raters' mass (runs measured in docs/segmenter-modules.md).
`heads="per-module"` gives each module its own modulation and convolutions, with priors N(0, 0.5²)-spread
means and σ = 1: the design of the segmenter bundled before, kept so that its weights still load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..anatomy import NUM_CLASSES


@dataclass(frozen=True)
class SegmenterConfig:
    in_channels: int = 1
    num_classes: int = NUM_CLASSES
    base_channels: int = 16
    depth: int = 4  # number of down-sampling steps
    max_channels: int | None = None  # cap on the widths, which double per level: depth buys context, not size
    modules: int = 4  # K
    latent_size: int = 1  # L
    head_channels: int = 16
    heads: str = "per-module"  # "shared": MoSE's (see above); "per-module": each module its own head


@dataclass
class SegmenterOutput:
    logits: torch.Tensor  # (B, K, S, C, H, W)
    routing: torch.Tensor  # π, (B, K), rows sum to one

    @property
    def sample_weights(self) -> torch.Tensor:
        """α_i = π_k / S for each of the N = K·S samples, (B, N)."""
        b, k, s = self.logits.shape[:3]
        return (self.routing[:, :, None] / s).expand(b, k, s).reshape(b, k * s)

    def flat_logits(self) -> torch.Tensor:
        b, k, s = self.logits.shape[:3]
        return self.logits.reshape(b, k * s, *self.logits.shape[3:])

    def mean_probabilities(self) -> torch.Tensor:
        """The predictive distribution's mean: Σ_i α_i softmax(s_i), (B, C, H, W)."""
        probs = self.flat_logits().softmax(dim=2)
        return (probs * self.sample_weights[:, :, None, None, None]).sum(1)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.GroupNorm(min(8, cout), cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.GroupNorm(min(8, cout), cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    def __init__(self, in_channels: int, base: int, depth: int, max_channels: int | None = None):
        super().__init__()
        widths = [min(base * 2**i, max_channels or base * 2**i) for i in range(depth + 1)]
        self.down = nn.ModuleList(
            [_block(in_channels, widths[0])] + [_block(widths[i], widths[i + 1]) for i in range(depth)]
        )
        self.up = nn.ModuleList(
            [nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(depth))]
        )
        self.merge = nn.ModuleList([_block(2 * widths[i], widths[i]) for i in reversed(range(depth))])
        self.encoder_channels, self.decoder_channels = widths[-1], widths[0]
        self.multiple = 2**depth

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        encoded = x
        for up, merge, skip in zip(self.up, self.merge, reversed(skips[:-1])):
            x = merge(torch.cat([up(x), skip], dim=1))
        return encoded, x


class StochasticHeads(nn.Module):
    """K modules: Gaussian priors, latent modulation of u_d, and three 1×1 convolutions per module.

    The 1×1 convolutions are written as batched matrix products. The first one absorbs the modulation,
    W1 (s ⊙ (u_d + b)) = (W1 diag(s)) u_d + W1 (s ⊙ b), so the modulated features are never materialised.
    """

    def __init__(self, features: int, config: SegmenterConfig):
        super().__init__()
        if config.heads not in HEAD_DESIGNS:
            raise ValueError(f"unknown head design {config.heads!r}; choose one of {', '.join(HEAD_DESIGNS)}")
        k, latent, hidden, classes = config.modules, config.latent_size, config.head_channels, config.num_classes
        self.k = k
        shared = config.heads == "shared"
        h = 1 if shared else k  # parameter sets: one for all modules, or one per module
        self.mu = nn.Parameter(_spread_means(k, latent) if shared else torch.randn(k, latent) * 0.5)
        self.log_sigma = nn.Parameter(torch.full((k, latent), math.log(1 / 8) if shared else 0.0))
        self.w_scale = nn.Parameter(_modulation_init(h, features, latent, shared))
        self.scale_bias = nn.Parameter(torch.ones(h, features))
        self.w_bias = nn.Parameter(_modulation_init(h, features, latent, shared))
        self.weights = nn.ParameterList(
            [_pointwise(h, hidden, features), _pointwise(h, hidden, hidden), _pointwise(h, classes, hidden)]
        )
        self.biases = nn.ParameterList([nn.Parameter(torch.zeros(h, n)) for n in (hidden, hidden, classes)])

    def _per_module(self, parameter: torch.Tensor) -> torch.Tensor:
        """A parameter with one set per module (K, ...): shared ones are expanded, not copied."""
        return parameter.expand(self.k, *parameter.shape[1:])

    def sample_latents(self, batch: int, samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        shape = (batch, self.k, samples, self.mu.shape[1])
        eps = torch.randn(shape, device=self.mu.device, dtype=self.mu.dtype, generator=generator)
        return self.mu[None, :, None] + self.log_sigma.exp()[None, :, None] * eps  # (B, K, S, L)

    def forward(self, decoded: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Logits (B, K, S, C, H, W) of decoded features (B, F, H, W) for latents z (B, K, S, L)."""
        b, k, s, _ = z.shape
        h, w = decoded.shape[-2:]
        terms, flat = self._pointwise_terms(z), decoded.flatten(2)
        chunk = _pixel_chunk(terms[0])
        if torch.is_grad_enabled() or flat.shape[-1] <= chunk:
            return self._logits(flat, *terms).reshape(b, k, s, -1, h, w)
        out = flat.new_empty(b, k, s, self.biases[-1].shape[-1], h * w)
        for start in range(0, h * w, chunk):
            out[..., start : start + chunk] = self._logits(flat[..., start : start + chunk], *terms)
        return out.view(b, k, s, -1, h, w)

    def mean_probabilities(self, decoded: torch.Tensor, z: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Σ_i α_i softmax(s_i), (B, C, H, W), for latents z (B, K, S, L) and sample weights α (B, K, S), made a
        chunk of pixels at a time (`_pixel_chunk`): no (B, K, S, C, H, W) tensor is ever held."""
        h, w = decoded.shape[-2:]
        terms, flat = self._pointwise_terms(z), decoded.flatten(2)
        chunk = _pixel_chunk(terms[0])
        out = flat.new_empty(flat.shape[0], self.biases[-1].shape[-1], h * w)
        for start in range(0, h * w, chunk):
            # the softmax and the weighted sum in place: 20% faster than softmax() and an einsum (2 CPU cores)
            logits = self._logits(flat[..., start : start + chunk], *terms)  # (B, K, S, C, P)
            exp = logits.sub_(logits.amax(3, keepdim=True)).exp_()
            out[..., start : start + chunk] = exp.mul_(weights[..., None, None] / exp.sum(3, keepdim=True)).sum((1, 2))
        return out.view(out.shape[0], -1, h, w)

    def _pointwise_terms(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The three 1×1 convolutions of every sample, the first with the modulation absorbed."""
        w_scale, scale_bias, w_bias = (self._per_module(p) for p in (self.w_scale, self.scale_bias, self.w_bias))
        scale = torch.einsum("kfl,bksl->bksf", w_scale, z) + scale_bias[None, :, None]
        shift = torch.einsum("kfl,bksl->bksf", w_bias, z)
        w1, w2, w3 = (self._per_module(p) for p in self.weights)
        b1, b2, b3 = (self._per_module(p) for p in self.biases)
        effective = w1[None, :, None] * scale[:, :, :, None, :]  # (B, K, S, Hd, F)
        constant = torch.einsum("khf,bksf->bksh", w1, scale * shift) + b1[None, :, None]
        return effective, constant, w2, b2, w3, b3

    @staticmethod
    def _logits(flat: torch.Tensor, effective, constant, w2, b2, w3, b3) -> torch.Tensor:
        """(B, K, S, C, P) of decoded features (B, F, P)."""
        b, k, s = effective.shape[:3]
        # one (K·S·Hd × F) @ (F × P) product per image, so u_d is never copied K·S times
        x = torch.baddbmm(constant.reshape(b, -1, 1), effective.reshape(b, -1, effective.shape[-1]), flat).view(
            b, k, s, -1, flat.shape[-1]
        )  # (B, K, S, Hd, P)
        x = torch.matmul(w2[None, :, None], x.relu_()).add_(b2[None, :, None, :, None])
        return torch.matmul(w3[None, :, None], x.relu_()).add_(b3[None, :, None, :, None])

    def forward_module(self, decoded: torch.Tensor, z: torch.Tensor, k: int) -> torch.Tensor:
        """Logits (B, C, H, W) of module k alone for latents z (B, L), the plain way."""
        w_scale, scale_bias, w_bias = (self._per_module(p)[k] for p in (self.w_scale, self.scale_bias, self.w_bias))
        scale = z @ w_scale.T + scale_bias
        shift = z @ w_bias.T
        x = scale[..., None, None] * (decoded + shift[..., None, None])
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            x = F.conv2d(x, self._per_module(weight)[k][..., None, None], self._per_module(bias)[k])
            x = F.relu(x) if i < len(self.weights) - 1 else x
        return x


HEAD_DESIGNS = ("shared", "per-module")
# Without gradients the heads run a chunk of pixels at a time, so that the K·S samples' hidden features hold at
# most this many values (8 MB): over a whole 384×480 batch of 4 they took 755 MB, and the heads' mean took
# 430–600 ms an image against 60 ms in chunks of 2M values, 170 ms in chunks of 8M (2 cores, S = 4).
CHUNK_VALUES = 2**21


def _pixel_chunk(effective: torch.Tensor) -> int:
    """Pixels per chunk for the first pointwise weights (B, K, S, Hd, F)."""
    b, k, s, hidden = effective.shape[:4]
    return max(1, CHUNK_VALUES // (b * k * s * hidden))


def _spread_means(k: int, latent: int) -> torch.Tensor:
    """MoSE's prior means: the first 2^L modules on the corners of the unit cube, the rest uniform in it."""
    means = torch.rand(k, latent)
    corners = min(k, 2**latent)
    for i in range(corners):
        means[i] = torch.tensor([(i >> (latent - 1 - d)) & 1 for d in range(latent)], dtype=means.dtype)
    return means


def _modulation_init(h: int, features: int, latent: int, shared: bool) -> torch.Tensor:
    """W_s or W_b (h, F, L): MoSE's Xavier-uniform for the shared head, so that modules whose prior means lie
    apart start drawing different maps; the per-module design's N(0, 0.1²)."""
    if not shared:
        return torch.randn(h, features, latent) * 0.1
    bound = math.sqrt(6.0 / (features + latent))
    return torch.empty(h, features, latent).uniform_(-bound, bound)


def _pointwise(k: int, out_channels: int, in_channels: int) -> nn.Parameter:
    bound = 1.0 / in_channels**0.5  # PyTorch's default initialisation for a 1×1 convolution
    return nn.Parameter(torch.empty(k, out_channels, in_channels).uniform_(-bound, bound))


class MixtureSegmenter(nn.Module):
    def __init__(self, config: SegmenterConfig = SegmenterConfig()):
        super().__init__()
        self.config = config
        self.unet = UNet(config.in_channels, config.base_channels, config.depth, config.max_channels)
        self.heads = StochasticHeads(self.unet.decoder_channels, config)
        width = self.unet.encoder_channels
        self.router = nn.Sequential(nn.Linear(width, width), nn.ReLU(inplace=True), nn.Linear(width, config.modules))

    def forward(self, x: torch.Tensor, samples: int = 4, generator: torch.Generator | None = None) -> SegmenterOutput:
        """x (B, 1, H, W) with H and W multiples of 2^depth; `generator` draws the latents (a seeded one makes
        the samples, and so every map, repeatable)."""
        decoded, routing, z = self._trunk(x, samples, generator)
        return SegmenterOutput(self.heads(decoded, z), routing)

    @torch.inference_mode()
    def mean_prediction(
        self, x: torch.Tensor, samples: int = 4, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(the mean probabilities Σ_i α_i softmax(s_i), (B, C, H, W); π, (B, K)): what
        `self(x, samples, generator).mean_probabilities()` gives for the same latents, without the per-sample
        logits: all that a label map needs."""
        decoded, routing, z = self._trunk(x, samples, generator)
        weights = (routing / samples)[:, :, None].expand(-1, -1, samples)
        return self.heads.mean_probabilities(decoded, z, weights), routing

    def _trunk(self, x: torch.Tensor, samples: int, generator: torch.Generator | None):
        """(decoded features, π (B, K), latents (B, K, S, L)) of x, after checking its size."""
        multiple = self.unet.multiple
        if x.shape[-1] % multiple or x.shape[-2] % multiple:
            raise ValueError(f"input height and width must be multiples of {multiple}, got {tuple(x.shape[-2:])}")
        encoded, decoded = self.unet(x)
        routing = self.router(encoded.mean(dim=(2, 3))).softmax(dim=1)
        return decoded, routing, self.heads.sample_latents(x.shape[0], samples, generator)

    def forward_full_per_sample(self, x: torch.Tensor, samples: int = 4) -> SegmenterOutput:
        """Reference path that reruns the whole network for each of the K·S samples (speed benchmark)."""
        k = self.config.modules
        z = self.heads.sample_latents(x.shape[0], samples)
        logits = torch.empty(x.shape[0], k, samples, self.config.num_classes, *x.shape[-2:], device=x.device)
        routing = None
        for m in range(k):
            for s in range(samples):
                encoded, decoded = self.unet(x)
                routing = self.router(encoded.mean(dim=(2, 3))).softmax(dim=1)
                logits[:, m, s] = self.heads.forward_module(decoded, z[:, m, s], m)
        return SegmenterOutput(logits, routing)
