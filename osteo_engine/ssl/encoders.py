"""Patch encoders trained from scratch (no ImageNet weights exist offline): torchvision ResNets on one channel.

`small_input` swaps the 7×7 stride-2 stem and max-pool for a 3×3 stride-1 stem, as for CIFAR-sized inputs,
so a ResNet-18 still has spatial detail at the CPU preset's small crops.
"""
from __future__ import annotations

import torch.nn as nn
import torchvision

FEATURES = {"resnet18": 512, "resnet50": 2048}


def build_encoder(name: str, small_input: bool = False) -> tuple[nn.Module, int]:
    """(encoder mapping (B, 1, H, W) to (B, features), features)."""
    if name not in FEATURES:
        raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(FEATURES)}")
    net = getattr(torchvision.models, name)(weights=None)
    if small_input:
        net.conv1 = nn.Conv2d(1, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    else:
        net.conv1 = nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)
    net.fc = nn.Identity()
    return net, FEATURES[name]
