"""Run folders: resolved config, per-epoch metrics as JSON lines, safetensors checkpoints with model cards,
and a resume state. Every file is written atomically, so a crash never loses the last good checkpoint.

    RUN/config.json  RUN/metrics.jsonl  RUN/checkpoints/{last,best}.safetensors (+ .json model card)
    RUN/resume.pt    (optimizer and RNG state; loaded with weights_only=True)
    RUN/splits.json  (pretraining: the subject split, by hashed subject ID, that the probe and export reuse)
"""

from __future__ import annotations

import io
import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import torch
from safetensors.torch import load, save

from .cards import ModelCard, card_from_json
from .errors import ConfigError
from .storage import atomic_write_bytes, atomic_write_json, strict_json

Card = TypeVar("Card", bound=ModelCard)


class RunFolder:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def splits(self) -> Path:
        """Which split each subject was in (cohort.save_split_assignment): later steps of the run reuse it."""
        return self.root / "splits.json"

    @staticmethod
    def of_checkpoint(checkpoint: str | Path) -> RunFolder:
        """The run folder that holds RUN/checkpoints/NAME.safetensors."""
        return RunFolder(Path(checkpoint).resolve().parent.parent)

    def start(self, config: dict, resume: bool) -> None:
        path = self.root / "config.json"
        if path.exists():
            if not resume:
                raise ConfigError(
                    f"{self.root} already holds a run; pass --resume to continue it or pick a new folder."
                )
            saved = json.loads(path.read_text())
            if saved != json.loads(json.dumps(config)):
                raise ConfigError(f"{self.root} was started with different settings; resume with the same ones.")
            return
        if resume and not path.exists():
            raise ConfigError(f"{self.root} holds no run to resume.")
        atomic_write_json(path, config)

    def append_metrics(self, record: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(strict_json(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def metrics(self) -> list[dict]:
        path = self.root / "metrics.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def truncate_metrics(self, last_epoch: int) -> None:
        """Drop records of epochs after the resume point (an epoch that crashed before its checkpoint)."""
        kept = [m for m in self.metrics() if m.get("epoch", 0) <= last_epoch]
        atomic_write_bytes(self.root / "metrics.jsonl", "".join(strict_json(m) + "\n" for m in kept).encode())

    def save_checkpoint(self, name: str, state: dict[str, torch.Tensor], card: ModelCard) -> Path:
        saved = card.with_changes(saved=datetime.now(UTC).isoformat(timespec="seconds"))
        return write_model(self.checkpoints / f"{name}.safetensors", state, saved)

    def save_resume(self, state: dict) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.root / "resume.pt", buffer.getvalue())

    def load_resume(self) -> dict | None:
        path = self.root / "resume.pt"
        if not path.exists():
            return None
        state = load_tensors_file(path, "resume state")
        if not isinstance(state, dict):
            raise ConfigError(f"{path} is not a resume state (a dictionary of training state).")
        return state

    def restore(self, model: torch.nn.Module, optimiser) -> dict | None:
        """Load resume.pt into `model` and `optimiser` and drop the metrics of epochs after it; returns the
        state (its "epoch" and whatever else the trainer saved), or None when there is none to resume."""
        state = self.load_resume()
        if state is None:
            return None
        try:
            model.load_state_dict(state["model"])
            optimiser.load_state_dict(state["optimiser"])
            epoch = int(state["epoch"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ConfigError(
                f"{self.root / 'resume.pt'} does not fit this run ({_first_line(exc)}); start a new "
                "run folder, or resume with the settings it was made with."
            ) from None
        self.truncate_metrics(epoch)
        return state


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


def load_tensors_file(path: str | Path, what: str):
    """`torch.load(weights_only=True)` of a .pt file, whose failures become one sentence naming the file.
    torch's own message for a refused pickle advises `weights_only=False`, which would run whatever code the
    file carries: that advice must never reach a user, so no part of torch's message is passed on for it."""
    import pickle

    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch cannot tell a hostile pickle from a damaged one, nor can we
        raise ConfigError(
            f"{path} was refused: it is damaged, or holds objects other than tensors and plain "
            f"values, which are never loaded (a {what} holds only those). Use a file written by "
            "this program or by the model's authors."
        ) from None
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist.") from None
    except (EOFError, RuntimeError, KeyError, ValueError, OSError, AttributeError, TypeError):
        raise ConfigError(f"{path} is truncated or corrupt: it is not a readable {what}.") from None


def write_model(path: str | Path, state: dict[str, torch.Tensor], card: ModelCard) -> Path:
    """Weights as safetensors and the model card beside them as JSON, both written atomically."""
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    atomic_write_bytes(path, save(tensors, metadata={"format": "pt"}))
    atomic_write_json(path.with_suffix(".json"), card.to_json())
    return path


def load_model(path: str | Path, kind: type[Card]) -> tuple[dict[str, torch.Tensor], Card]:
    """Weights and their typed card of `kind`. Raises ConfigError for a missing or unreadable file, weights
    that are not numbers, or a card of another kind or lacking a required field."""
    state, card = load_checkpoint(path)
    return state, kind.from_json(card, path)


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Weights (safetensors) and the model card beside them, as its JSON object (`load_model` types it)."""
    path = Path(path)
    card_path = path.with_suffix(".json")
    try:
        state = load(path.read_bytes())
        card = json.loads(card_path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{exc.filename} is missing; a model is a .safetensors file with its .json card.") from exc
    except Exception as exc:
        raise ConfigError(f"{path.name} is not a readable model ({str(exc).splitlines()[0][:200]}).") from exc
    if not isinstance(card, dict):
        raise ConfigError(f"{card_path.name} is not a model card (a JSON object).")
    broken = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise ConfigError(
            f"{path.name} holds weights that are not numbers (NaN or infinite, in {broken[0]}"
            + (f" and {len(broken) - 1} more" if len(broken) > 1 else "")
            + "); the model is damaged."
        )
    return state, card


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The device asked for, else CUDA when present, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def publish_checkpoint(checkpoint: str | Path, out: str | Path, evaluations: dict[str, dict], note: str = "") -> Path:
    """Copy a checkpoint and its card to `out`, adding the named evaluations (e.g. from `segment evaluate`)
    and a note on its provenance; the card's `source_checkpoint` names the run checkpoint (kept when `checkpoint`
    is itself a published copy, whose evaluations are then replaced). Its companions (`NAME.PART.safetensors`
    beside `NAME.safetensors`, such as a segmenter's error map) are copied beside `out` with their cards,
    unchanged. Raises ConfigError, before writing anything, when a companion has no card."""
    checkpoint, out = Path(checkpoint), Path(out)
    state, card = load_checkpoint(checkpoint)
    typed = card_from_json(card, checkpoint)
    companions = sorted(checkpoint.parent.glob(f"{checkpoint.stem}.*.safetensors"))
    for companion in companions:
        if not companion.with_suffix(".json").is_file():
            raise ConfigError(
                f"{companion.name} has no card ({companion.with_suffix('.json').name}) beside it; "
                "refit it or move it away before publishing."
            )
    source = typed.source_checkpoint or str(checkpoint)  # a published copy published again keeps its run's
    published = typed.with_changes(evaluations=evaluations, note=note or typed.note, source_checkpoint=source)
    written = write_model(out, state, published)
    for companion in companions:
        part = companion.name[len(checkpoint.stem) : -len(".safetensors")]
        for source in (companion, companion.with_suffix(".json")):
            atomic_write_bytes(out.with_name(f"{out.stem}{part}{source.suffix}"), source.read_bytes())
    return written


class DivergenceGuard:
    """Skips steps whose loss is not finite; too many in one epoch stop training with a plain message (the
    checkpoints written so far stay)."""

    def __init__(self, task: str, epoch: int, limit: int = 20):
        self.task, self.epoch, self.limit, self.bad = task, epoch, limit, 0

    def finite(self, loss: torch.Tensor) -> bool:
        if torch.isfinite(loss):
            return True
        self.bad += 1
        if self.bad > self.limit:
            from .errors import ConfigError

            raise ConfigError(
                f"{self.task} diverged (loss not finite {self.bad} times in epoch {self.epoch}); "
                "the last checkpoint is kept. Lower the learning rate."
            )
        return False


def warmup_cosine(step: int, total: int, peak: float, warmup_fraction: float) -> float:
    """Learning rate at `step` of `total`: linear warm-up over `warmup_fraction`, then cosine decay to zero."""
    warmup = max(1, int(warmup_fraction * total))
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
