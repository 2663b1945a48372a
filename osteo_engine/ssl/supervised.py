"""The paper's table-3 baseline: the same encoder trained with labels only (no self-supervision).

Encoder and a linear head learn osteoporosis from augmented single views of the labelled training patches;
the epoch with the best validation macro-F1 (subjects, mean over bones) is kept. The encoder is then
probed like a pretrained one, so the tables compare encoders under one protocol.
"""
from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..evaluation import best_threshold, macro_f1
from ..runs import pick_device, write_model
from .data import PatchBank
from .encoders import build_encoder
from .multicrop import multicrop
from .pretrain import PretrainConfig
from .probe import encode, subject_scores


def train_supervised_encoder(bank: PatchBank, config: PretrainConfig, out: str | Path, lr: float = 1e-3) -> Path:
    train = (bank.splits == "train") & (bank.labels >= 0)
    val = (bank.splits == "val") & (bank.labels >= 0)
    if len(np.unique(bank.labels[train])) < 2 or not val.any():
        raise ConfigError("supervised training needs labelled training patches of both classes and validation ones.")
    device = pick_device()
    torch.manual_seed(config.seed)
    encoder, features = build_encoder(config.method.encoder, config.method.stem)
    encoder, head = encoder.to(device), torch.nn.Linear(features, 1).to(device)
    optimiser = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=lr, weight_decay=1e-4)
    views = replace(config.multicrop, global_crops=1, local_crops=0, mode="conventional", global_scale=(0.6, 1.0))
    patches = torch.from_numpy(bank.patches[train])[:, None]
    labels = torch.from_numpy(bank.labels[train].astype(np.float32))
    pos_weight = torch.tensor((1 - float(labels.mean())) / max(float(labels.mean()), 1e-6), device=device)
    val_bank = bank.select(val)
    best_score, best_state = -1.0, None
    for epoch in range(1, config.epochs + 1):
        encoder.train()
        generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        order = torch.randperm(len(patches), generator=generator)
        for b in range(0, len(order), config.batch_size):
            index = order[b:b + config.batch_size]
            (view,), _, _ = multicrop(patches[index], views, generator)
            logits = head(encoder(view.to(device)))[:, 0]
            loss = F.binary_cross_entropy_with_logits(logits, labels[index].to(device), pos_weight=pos_weight)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        encoder.eval()
        with torch.no_grad():  # whole patches, as the probe will see them
            features_val = torch.from_numpy(encode(encoder, val_bank.patches)).to(device)
            probs = torch.sigmoid(head(features_val)[:, 0]).cpu().numpy()
        _, y, subject_probs = subject_scores(val_bank, probs)
        score = macro_f1(y, subject_probs, best_threshold(y, subject_probs))
        if score > best_score:
            best_score = score
            best_state = {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()}
    card = {"model": "SupervisedEncoder", "method_config": {**asdict(config.method), "method": "supervised"},
            "patch_size": config.patch_size, "preset": config.preset, "source": config.source,
            "val_macro_f1": best_score}
    return write_model(Path(out) / "encoder.safetensors", best_state, card)
