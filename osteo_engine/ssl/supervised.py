"""The paper's table-3 baseline: the same encoder trained with labels only (no self-supervision).

Encoder and a linear head learn osteoporosis from augmented single views of the labelled training patches;
the epoch with the best validation macro-F1 (subjects, mean over bones) is kept. It runs on the training
scaffold (training.py): a run folder with `last` and `best` checkpoints, exact resume, cancellation. The encoder is then
probed like a pretrained one, so the tables compare encoders under one protocol.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..cards import Provenance, SupervisedEncoderCard
from ..errors import ConfigError
from ..evaluation import best_threshold, macro_f1
from ..events import CancelToken, Events, ignore
from ..runs import RunFolder
from ..training import TrainingLoop, autocast, epoch_seed, to_device
from .data import PatchBank
from .encoders import build_encoder
from .multicrop import multicrop
from .pretrain import PretrainConfig
from .probe import encode, subject_scores


def train_supervised_encoder(
    bank: PatchBank,
    config: PretrainConfig,
    out: str | Path,
    lr: float = 1e-3,
    resume: bool | None = None,
    events: Events = ignore,
    cancel: CancelToken | None = None,
) -> Path:
    """Train encoder + head on the labelled train patches into the run folder `out`; returns the checkpoint of
    the epoch with the best validation macro-F1. `resume` (default: when `out` holds a resume state) continues
    a stopped run exactly. Raises ConfigError without both classes to learn from."""
    train = (bank.splits == "train") & (bank.labels >= 0)
    val = (bank.splits == "val") & (bank.labels >= 0)
    if len(np.unique(bank.labels[train])) < 2 or not val.any():
        raise ConfigError("supervised training needs labelled training patches of both classes and validation ones.")
    run = RunFolder(out)
    resume = (run.root / "resume.pt").exists() if resume is None else resume
    run.start({"task": "supervised", "config": config.to_json(), "lr": lr}, resume)
    loop = TrainingLoop(
        run, task="supervised training", epochs=config.epochs, seed=config.seed, events=events, cancel=cancel
    )
    device = loop.device
    encoder, features = build_encoder(config.method.encoder, config.method.stem)
    model = to_device(torch.nn.Sequential(encoder, torch.nn.Linear(features, 1)), device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    start = loop.resume(model, optimiser, resume)
    best_score = (loop.resumed_state or {}).get("best_score", -1.0)
    patches = torch.from_numpy(bank.patches[train])[:, None]
    labels = torch.from_numpy(bank.labels[train].astype(np.float32))
    pos_weight = torch.tensor((1 - float(labels.mean())) / max(float(labels.mean()), 1e-6), device=device)
    card = SupervisedEncoderCard(
        provenance=Provenance.capture(""),
        method_config={**asdict(config.method), "method": "supervised"},
        patch_size=config.patch_size,
        preset=config.preset,
        source=config.source,
        patches=len(bank.patches),
    )
    for epoch in range(start, config.epochs + 1):
        loss = _epoch(model, optimiser, patches, labels, pos_weight, config, epoch, loop)
        score = _validation_macro_f1(model, bank.select(val), device)
        record = {"epoch": epoch, "loss": loss, "val_macro_f1": score}
        checkpoints = {"last": (encoder.state_dict(), card)}
        if score > best_score:
            best_score = score
            checkpoints["best"] = (encoder.state_dict(), card.with_changes(val_macro_f1=score))
        loop.end_epoch(
            epoch,
            record,
            checkpoints,
            {"model": model.state_dict(), "optimiser": optimiser.state_dict(), "best_score": best_score},
        )
    loop.finish()
    return run.checkpoints / "best.safetensors"


def _epoch(
    model, optimiser, patches, labels, pos_weight, config: PretrainConfig, epoch: int, loop: TrainingLoop
) -> float:
    """One pass of augmented single views of the labelled training patches; the mean loss."""
    views = replace(config.multicrop, global_crops=1, local_crops=0, mode="conventional", global_scale=(0.6, 1.0))
    model.train()
    generator = torch.Generator().manual_seed(epoch_seed(config.seed, epoch))
    order = torch.randperm(len(patches), generator=generator)
    losses, guard = [], loop.guard(epoch)
    for b in range(0, len(order), config.batch_size):
        loop.step()
        index = order[b : b + config.batch_size]
        (view,), _, _ = multicrop(patches[index], views, generator)
        with autocast(loop.device):
            logits = model(view.to(loop.device))[:, 0].float()
        loss = F.binary_cross_entropy_with_logits(logits, labels[index].to(loop.device), pos_weight=pos_weight)
        losses.append(loop.optimise(loss, optimiser, guard))
    losses = [v for v in losses if v is not None]
    return float(np.mean(losses)) if losses else float("nan")


def _validation_macro_f1(model, val_bank: PatchBank, device) -> float:
    """Macro-F1 of the validation subjects (mean over their bones), whole patches as the probe will see them."""
    model.eval()
    encoder, head = model[0], model[1]
    with torch.no_grad():
        features_val = torch.from_numpy(encode(encoder, val_bank.patches)).to(device)
        probs = torch.sigmoid(head(features_val)[:, 0]).cpu().numpy()
    _, y, subject_probs = subject_scores(val_bank, probs)
    return float(macro_f1(y, subject_probs, best_threshold(y, subject_probs)))
