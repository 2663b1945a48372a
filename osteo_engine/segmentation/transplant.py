"""A warm start for a shared-head mixture (MoSE's design) from a trained per-module one, such as the segmenter
bundled before.

The U-Net and the router's hidden layer are copied. The source's most-routed module gives the new shared head
its three 1×1 convolutions, with that module's modulation at its prior mean folded into the scale's bias and the
first convolution's bias: the new module whose prior mean is 0 then draws exactly the source module's map at
its mean latent. The modulation weights W_s and W_b, the priors and the router's output layer keep their fresh
start, so the modules start apart and π starts near uniform. Started from scratch, the shared design's first
stage reached a lower atlas Dice than the bundled model in 20 epochs (docs/segmenter-modules.md); this lets
the trunk's long training carry over while the mixture is trained anew.
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from ..errors import ConfigError
from .model import MixtureSegmenter, SegmenterConfig

# the fields that decide the U-Net's and the head's feature sizes, which must match to carry weights over
CARRIED = ("in_channels", "num_classes", "base_channels", "depth", "max_channels", "head_channels")


def can_transplant(source: SegmenterConfig, target: SegmenterConfig) -> bool:
    """Whether `transplant` applies: a per-module source, a shared target, the same U-Net and feature sizes."""
    same_trunk = all(getattr(source, f) == getattr(target, f) for f in CARRIED)
    return source.heads == "per-module" and target.heads == "shared" and same_trunk


def transplant(
    state: dict[str, torch.Tensor], source: SegmenterConfig, model: MixtureSegmenter, images: torch.Tensor
) -> int:
    """Load into `model` (shared heads) what carries over from the per-module weights `state` of config
    `source` (see the module's docstring). `images` (B, 1, H, W), a few training images at the input size,
    choose the source module: the one with the largest mean π on them. Returns that module's index (0-based).
    Raises ConfigError when `can_transplant` is false."""
    if not can_transplant(source, model.config):
        raise ConfigError(
            "only a per-module segmenter with the same U-Net carries over to a shared-head one "
            f"({asdict(source)} against {asdict(model.config)})."
        )
    module = _most_routed(state, source, images)
    carried = {k: v for k, v in state.items() if k.startswith("unet.") or k.startswith("router.0.")}
    carried |= _head_of(state, module)
    unexpected = model.load_state_dict(carried, strict=False).unexpected_keys
    assert not unexpected, unexpected
    return module


def _most_routed(state: dict[str, torch.Tensor], source: SegmenterConfig, images: torch.Tensor) -> int:
    donor = MixtureSegmenter(source)
    donor.load_state_dict(state)
    _, routing = donor.mean_prediction(images, samples=1)
    return int(routing.mean(0).argmax())


def _head_of(state: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """Module k's head as a shared head (one parameter set) with its modulation at the prior mean folded in:
    s ⊙ (u + t) then W1 equals (W1 diag(s)) u + W1 (s ⊙ t), so the scale becomes s and b1 takes W1 (s ⊙ t)."""
    mean = state["heads.mu"][k]
    scale = state["heads.scale_bias"][k] + state["heads.w_scale"][k] @ mean
    shift = state["heads.w_bias"][k] @ mean
    head = {
        f"heads.{name}.{i}": state[f"heads.{name}.{i}"][k : k + 1].clone()
        for name in ("weights", "biases")
        for i in range(3)
    }
    head["heads.biases.0"] += (state["heads.weights.0"][k] @ (scale * shift))[None]
    head["heads.scale_bias"] = scale[None].clone()
    return head
