"""The four pretraining methods on one base class (after solo-learn): an encoder, a projector, and a loss
over the multi-crop views. With more than two views, SimCLR uses every other view of an image as a
positive (the multi-positive form of NT-Xent, which is SupCon with one class per image) and VICReg averages
its loss over every pair of a global view with any other view; SwAV predicts the global views' codes."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import SSL_METHODS
from .encoders import build_encoder
from .losses import simclr_loss, supcon_loss, swav_loss, vicreg_loss

METHODS = SSL_METHODS


@dataclass(frozen=True)
class MethodConfig:
    method: str = "simclr"
    encoder: str = "resnet18"
    stem: str = "compact"
    projector_hidden: int = 512
    projector_out: int = 128
    temperature: float = 0.1
    prototypes: int = 100  # SwAV
    vicreg_weights: tuple[float, float, float] = (25.0, 25.0, 1.0)


def _mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1], bias=i == len(dims) - 2))
        if i < len(dims) - 2:
            layers += [nn.BatchNorm1d(dims[i + 1]), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class SSLMethod(nn.Module):
    def __init__(self, config: MethodConfig):
        super().__init__()
        self.config = config
        self.encoder, self.features = build_encoder(config.encoder, config.stem)
        self.projector = _mlp(self.projector_dims())
        self.distributed = False

    def projector_dims(self) -> list[int]:
        return [self.features, self.config.projector_hidden, self.config.projector_out]

    def project(self, views: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each view through encoder and projector; views of one size share a forward pass."""
        out: list[torch.Tensor | None] = [None] * len(views)
        by_size: dict[tuple, list[int]] = {}
        for i, v in enumerate(views):
            by_size.setdefault(tuple(v.shape[-2:]), []).append(i)
        for indices in by_size.values():
            z = self.projector(self.encoder(torch.cat([views[i] for i in indices])))
            for i, part in zip(indices, z.chunk(len(indices))):
                out[i] = part
        return out

    def loss(
        self, global_views: list[torch.Tensor], local_views: list[torch.Tensor], labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, global_views, local_views, labels=None) -> torch.Tensor:
        """The loss, as `forward` so that DistributedDataParallel can wrap the method."""
        return self.loss(global_views, local_views, labels)


class SimCLR(SSLMethod):
    def loss(self, global_views, local_views, labels=None):
        z = self.project(global_views + local_views)
        if len(z) == 2:
            return simclr_loss(z[0], z[1], self.config.temperature, self.distributed)
        own_class = torch.arange(len(z[0]), device=z[0].device)
        return supcon_loss(torch.stack(z, 1), own_class, self.config.temperature, self.distributed)


class SupCon(SSLMethod):
    def loss(self, global_views, local_views, labels=None):
        if labels is None:
            raise ValueError("SupCon needs the images' labels")
        z = self.project(global_views + local_views)
        return supcon_loss(torch.stack(z, 1), labels, self.config.temperature, self.distributed)


class SwAV(SSLMethod):
    def __init__(self, config: MethodConfig):
        super().__init__(config)
        self.prototypes = nn.Linear(config.projector_out, config.prototypes, bias=False)

    def loss(self, global_views, local_views, labels=None):
        with torch.no_grad():
            self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))
        scores = [self.prototypes(F.normalize(z, dim=1)) for z in self.project(global_views + local_views)]
        n = len(global_views)
        return swav_loss(scores[:n], scores[n:], self.config.temperature, distributed=self.distributed)


class VICReg(SSLMethod):
    def projector_dims(self) -> list[int]:
        hidden = self.config.projector_hidden
        return [self.features, hidden, hidden, hidden]

    def loss(self, global_views, local_views, labels=None):
        z = self.project(global_views + local_views)
        pairs = [(i, j) for i in range(len(global_views)) for j in range(i + 1, len(z))]  # each global with the rest
        return sum(
            vicreg_loss(z[i], z[j], *self.config.vicreg_weights, distributed=self.distributed) for i, j in pairs
        ) / len(pairs)


def build_method(config: MethodConfig) -> SSLMethod:
    classes = {"simclr": SimCLR, "supcon": SupCon, "swav": SwAV, "vicreg": VICReg}
    if config.method not in classes:
        raise ValueError(f"unknown method {config.method!r}; choose one of {', '.join(METHODS)}")
    return classes[config.method](config)
