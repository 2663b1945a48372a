"""LARC: layer-wise adaptive rate scaling with clipping, wrapped around SGD (as in SwAV's training code).

For each parameter p with gradient g: trust = η‖p‖ / (‖g‖ + λ‖p‖), clipped so the step never exceeds the
global rate (`clip=True`: scale = min(trust / lr, 1)); weight decay λ is folded into the gradient here and
taken off the inner optimiser. Parameters with a zero norm or zero gradient keep their plain step.
"""

from __future__ import annotations

import torch


class LARC(torch.optim.Optimizer):
    def __init__(
        self, optimizer: torch.optim.Optimizer, trust_coefficient: float = 0.001, clip: bool = True, eps: float = 1e-8
    ):
        self.optim = optimizer
        self.trust_coefficient, self.clip, self.eps = trust_coefficient, clip, eps

    # the wrapper shares the inner optimiser's state, so schedulers and checkpoints see one optimiser
    @property
    def param_groups(self):
        return self.optim.param_groups

    @property
    def state(self):
        return self.optim.state

    @property
    def defaults(self):
        return self.optim.defaults

    def state_dict(self):
        return self.optim.state_dict()

    def load_state_dict(self, state_dict):
        self.optim.load_state_dict(state_dict)

    def zero_grad(self, set_to_none: bool = True):
        self.optim.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self, closure=None):
        decays = []
        for group in self.optim.param_groups:
            decay = group.get("weight_decay", 0.0)
            decays.append(decay)
            group["weight_decay"] = 0.0
            for p in group["params"]:
                if p.grad is None:
                    continue
                p_norm, g_norm = torch.norm(p), torch.norm(p.grad)
                if p_norm == 0 or g_norm == 0:
                    continue
                trust = self.trust_coefficient * p_norm / (g_norm + p_norm * decay + self.eps)
                if self.clip:
                    trust = torch.clamp(trust / group["lr"], max=1.0)
                p.grad.add_(p, alpha=decay).mul_(trust)
        try:
            return self.optim.step(closure)
        finally:
            for group, decay in zip(self.optim.param_groups, decays):
                group["weight_decay"] = decay
