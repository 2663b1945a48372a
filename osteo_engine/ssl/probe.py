"""Linear probe on the frozen encoder (paper §3.4) and the subject decision.

Features of every patch are computed once. A linear layer learns osteoporosis from single bone patches; a
subject's probability is the mean over its present bones (and over its images). The epoch is chosen by the
validation subjects' macro-F1 and the decision threshold on validation too; both are stored with the probe.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..anatomy import BONE_NAMES
from ..errors import ConfigError
from ..evaluation import best_threshold, bootstrap_intervals, calibration, macro_f1, screening_metrics
from ..runs import load_checkpoint, pick_device, write_model
from .data import PatchBank
from .encoders import build_encoder


@dataclass(frozen=True)
class ProbeConfig:
    epochs: int = 100
    lr: float = 1e-2
    weight_decay: float = 1e-4
    seed: int = 0
    bootstrap_rounds: int = 1000


def load_encoder(path: str | Path, device: torch.device | None = None):
    state, card = load_checkpoint(path)
    try:
        config = card["method_config"]
        encoder, features = build_encoder(config["encoder"], config["stem"])
        encoder.load_state_dict(state)
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ConfigError(f"{Path(path).name} is not a pretrained patch encoder ({exc}).") from exc
    return encoder.eval().to(device or pick_device()), features, card


@torch.inference_mode()
def encode(encoder, patches: np.ndarray, batch: int = 256) -> np.ndarray:
    device = next(encoder.parameters()).device
    out = []
    for i in range(0, len(patches), batch):
        x = torch.from_numpy(patches[i:i + batch])[:, None].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out.append(encoder(x).float().cpu())
    return torch.cat(out).numpy()


def subject_scores(bank: PatchBank, patch_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(subjects, labels, probabilities): the mean of each subject's patch probabilities."""
    subjects = np.unique(bank.subjects)
    probs = np.array([patch_probs[bank.subjects == s].mean() for s in subjects])
    labels = np.array([bank.labels[bank.subjects == s][0] for s in subjects])
    return subjects, labels, probs


@dataclass
class Probe:
    weight: np.ndarray  # (F,)
    bias: float
    mean: np.ndarray  # feature standardisation from the training patches
    std: np.ndarray
    threshold: float

    def patch_probabilities(self, features: np.ndarray) -> np.ndarray:
        z = ((features - self.mean) / self.std) @ self.weight + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def save(self, path: str | Path, card: dict) -> Path:
        state = {"weight": torch.from_numpy(self.weight.astype(np.float32)),
                 "bias": torch.tensor([self.bias], dtype=torch.float32),
                 "mean": torch.from_numpy(self.mean.astype(np.float32)),
                 "std": torch.from_numpy(self.std.astype(np.float32))}
        return write_model(path, state, {**card, "threshold": self.threshold})

    @staticmethod
    def load(path: str | Path) -> tuple["Probe", dict]:
        state, card = load_checkpoint(path)
        return Probe(state["weight"].numpy(), float(state["bias"][0]), state["mean"].numpy(), state["std"].numpy(),
                     float(card["threshold"])), card


def train_probe(features: np.ndarray, bank: PatchBank, config: ProbeConfig = ProbeConfig()
                ) -> tuple[Probe, dict]:
    train = (bank.splits == "train") & (bank.labels >= 0)
    val = (bank.splits == "val") & (bank.labels >= 0)
    if len(np.unique(bank.labels[train])) < 2 or not val.any():
        raise ConfigError("the probe needs labelled training patches of both classes and labelled validation ones.")
    mean, std = features[train].mean(0), features[train].std(0) + 1e-6
    x = torch.from_numpy((features - mean) / std).float()
    y = torch.from_numpy(bank.labels.astype(np.float32))
    torch.manual_seed(config.seed)
    linear = torch.nn.Linear(x.shape[1], 1)
    optimiser = torch.optim.AdamW(linear.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    positive_share = float(y[train].mean())
    pos_weight = torch.tensor((1 - positive_share) / max(positive_share, 1e-6))  # the minority class counts as much
    best = {"score": -1.0}
    val_bank = bank.select(val)
    for epoch in range(1, config.epochs + 1):
        loss = F.binary_cross_entropy_with_logits(linear(x[train])[:, 0], y[train], pos_weight=pos_weight)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            probs = torch.sigmoid(linear(x[val])[:, 0]).numpy()
        _, labels, subject_probs = subject_scores(val_bank, probs)
        threshold = best_threshold(labels, subject_probs)
        score = macro_f1(labels, subject_probs, threshold)
        if score > best["score"]:
            best = {"score": score, "epoch": epoch, "threshold": threshold,
                    "weight": linear.weight.detach()[0].numpy().copy(), "bias": float(linear.bias.detach()[0])}
    probe = Probe(best["weight"], best["bias"], mean, std, best["threshold"])
    return probe, {"best_epoch": best["epoch"], "val_macro_f1": best["score"], "threshold": best["threshold"]}


def evaluate_probe(probe: Probe, features: np.ndarray, bank: PatchBank, split: str = "test",
                   rounds: int = 1000) -> dict:
    """Subject-level metrics with 95% bootstrap intervals, calibration, and per-bone contributions."""
    chosen = (bank.splits == split) & (bank.labels >= 0)
    if not chosen.any():
        raise ConfigError(f"no labelled {split} patches to evaluate.")
    part = bank.select(chosen)
    patch_probs = probe.patch_probabilities(features[chosen])
    subjects, labels, probs = subject_scores(part, patch_probs)
    metrics = screening_metrics(labels, probs, probe.threshold)
    cal = calibration(labels, probs)
    positives = set(subjects[(labels == 1) & (probs >= probe.threshold)])
    contributions = {}
    for bone in BONE_NAMES:
        values = patch_probs[(part.bones == bone) & np.isin(part.subjects, list(positives))]
        contributions[bone] = ({"mean": float(values.mean()), "sem": float(values.std() / np.sqrt(len(values))),
                                "n": int(len(values))} if len(values) else None)
    return {"split": split, "subjects": int(len(subjects)), "metrics": metrics,
            "intervals_95": bootstrap_intervals(labels, probs, probe.threshold, rounds),
            "calibration": asdict(cal), "bone_contributions": contributions,
            # labels and probabilities for ROC curves, without subject identifiers
            "subject_scores": [[int(y), float(p)] for y, p in zip(labels, probs)]}
