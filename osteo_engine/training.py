"""One training scaffold for segmentation training, pretraining and the supervised baseline.

The scaffold holds what the three trainers share: seeds (one formula), the device with bf16 autocast and
channels_last on CUDA, exact resume, the per-epoch record, safetensors checkpoints with their cards, the
divergence guard, progress events and cancellation. A trainer keeps only its own step and validation.

Exactness: every epoch seeds its randomness from (seed, epoch) alone, and the resume state is written after
each epoch, so a run stopped at any moment (crash, cancellation mid-epoch) and resumed ends with the weights
an uninterrupted run has.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch

from .cards import ModelCard
from .events import CancelToken, Event, Events, ignore
from .runs import DivergenceGuard, RunFolder, pick_device

SEED_STRIDE = 100_003  # epoch seeds: seed · stride + epoch, so that seeds never share an epoch's randomness


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's randomness (shuffling, augmentation, crops)."""
    return seed * SEED_STRIDE + epoch


def autocast(device: torch.device):
    """bf16 autocast on CUDA; nothing on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model on `device`, channels_last on CUDA."""
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if device.type == "cuda" else model


@dataclass
class TrainingLoop:
    """`loop = TrainingLoop(RunFolder(out), task="segmentation", epochs=20, seed=0)`; then
    `start = loop.resume(model, optimiser)` (1 for a new run), and for each epoch from `start`: steps that call
    `loop.step()` (cancellation) and `guard.finite(loss)`, then `loop.end_epoch(...)`, and `loop.finish()`."""

    run: RunFolder
    task: str
    epochs: int
    seed: int = 0
    events: Events = ignore
    cancel: CancelToken | None = None
    writer: bool = True  # rank 0 of a distributed job; the other ranks write nothing
    device: torch.device | None = None

    def __post_init__(self):
        self.device = self.device or pick_device()
        self.resumed_state: dict | None = None
        torch.manual_seed(self.seed)  # the model is built after the loop: its initial weights follow the seed

    def resume(self, model: torch.nn.Module, optimiser, resume: bool) -> int:
        """The first epoch to train: 1, or the one after the saved state when `resume` (which it loads into
        `model` and `optimiser`; `resumed_state` keeps the rest of it)."""
        self.resumed_state = self.run.restore(model, optimiser) if resume else None
        start = self.resumed_state["epoch"] + 1 if self.resumed_state else 1
        self.events(Event("start", self.task, done=start - 1, total=self.epochs))
        return start

    def guard(self, epoch: int) -> DivergenceGuard:
        return DivergenceGuard(self.task, epoch)

    def step(self) -> None:
        """Call before every step: raises `Cancelled` once the job was asked to stop."""
        if self.cancel is not None:
            self.cancel.check(self.task)

    @staticmethod
    def optimise(
        loss: torch.Tensor, optimiser, guard: DivergenceGuard, clip: tuple[object, float] | None = None
    ) -> float | None:
        """One optimiser step on `loss`, or none when it is not finite (the guard counts it, and stops the run
        after too many). `clip`: (parameters, max gradient norm). Returns the loss, or None when skipped."""
        if not guard.finite(loss):
            return None
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(clip[0], clip[1])
        optimiser.step()
        return loss.item()

    def end_epoch(
        self, epoch: int, record: dict, checkpoints: dict[str, tuple[dict, ModelCard]], resume_state: dict
    ) -> None:
        """Write the epoch: its checkpoints (name -> (state_dict, card)), the metrics record and the resume
        state (model, optimiser and whatever else the trainer needs, plus the epoch), then report it."""
        if self.writer:
            for name, (state, card) in checkpoints.items():
                path = self.run.save_checkpoint(name, state, card.with_changes(epoch=epoch, metrics=record))
                self.events(Event("checkpoint", self.task, epoch=epoch, path=str(path)))
            self.run.append_metrics(record)
            self.run.save_resume({**resume_state, "epoch": epoch})
            self.events(Event("epoch", self.task, epoch=epoch, done=epoch, total=self.epochs, metrics=record))

    def finish(self, result: str | Path | None = None) -> None:
        self.events(Event("done", self.task, done=self.epochs, total=self.epochs, path=str(result or self.run.root)))
