"""Patch encoders trained from scratch (no ImageNet weights exist offline): torchvision ResNets on one channel.

The stem decides how much a small crop keeps: `imagenet` is torchvision's (7×7 stride 2, then max-pool:
÷4), `compact` a 3×3 stride-2 convolution without max-pool (÷2, the CPU preset's trade of detail for
speed), `cifar` a 3×3 stride-1 convolution (full detail, 4× the compute of `compact`).
"""

from __future__ import annotations

import torch.nn as nn
import torchvision

from .. import registry

FEATURES = {"resnet18": 512, "resnet50": 2048}


def build_encoder(name: str, stem: str = "imagenet") -> tuple[nn.Module, int]:
    """(encoder mapping (B, 1, H, W) to (B, features), features)."""
    if name not in FEATURES:
        raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(FEATURES)}")
    if stem not in registry.STEMS:
        raise ValueError(f"unknown stem {stem!r}; choose one of {', '.join(registry.STEMS)}")
    net = getattr(torchvision.models, name)(weights=None)
    if stem == "imagenet":
        net.conv1 = nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)
    else:
        net.conv1 = nn.Conv2d(1, 64, 3, stride=2 if stem == "compact" else 1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return net, FEATURES[name]
