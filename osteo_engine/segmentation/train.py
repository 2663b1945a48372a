"""Training the mixture segmenter: presets, the epoch loop, validation, checkpoints, exact resume."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .. import registry
from ..cards import Provenance, SegmenterCard
from ..errors import ConfigError
from ..events import CancelToken, Events, ignore
from ..registry import check_registry
from ..runs import RunFolder, load_model, warmup_cosine
from ..training import TrainingLoop, autocast, epoch_seed, to_device
from .augment import SegmentAugmentConfig, augment
from .data import SegmentationSample, load_samples
from .losses import background_weighted, gamma_schedule, ot_segmentation_loss
from .model import MixtureSegmenter, SegmenterConfig
from .transplant import can_transplant, transplant
from .validation import validate, validate_full_size, validation_images


@dataclass(frozen=True)
class SegmentTrainConfig:
    preset: str
    input_size: tuple[int, int]  # (width, height)
    model: SegmenterConfig
    samples: int = 2  # S per module during training
    val_samples: int = 4
    epochs: int = 40
    batch_size: int = 8
    lr: float = 2e-3
    # the U-Net's learning rate as a share of the heads' and router's: below 1, a warm start's shared features
    # move less than the modules that draw the raters' habits (docs/segmenter-modules.md)
    trunk_lr_scale: float = 1.0
    warmup_fraction: float = 0.03  # linear warm-up of the learning rate, then a cosine decay
    weight_decay: float = 1e-4
    gamma0: float | None = None  # None: 1/N, every sample carries mass at first (paper appendix A)
    anneal_fraction: float = 0.5
    # γ stays at γ0 this long: while the modules cannot yet segment, the best sample is the one that draws the
    # most bone, whatever the rater, and with γ free to rise it took the raters' mass from the other modules
    # for good (docs/segmenter-modules.md)
    hold_fraction: float = 0.0
    kl_weight: float | None = None  # None: 1/N, MoSE's (F.kl_div's mean over the N = K·S samples' weights)
    ce_weight: float = 1.0
    # < 1: one module's samples may take at most this share of a rater's mass (ot.py), so at least 1/cap modules
    # keep learning from every rater; 1 is MoSE's. On the real recipe the modules grew alike (docs).
    module_cap: float = 1.0
    # < 1: one module's samples may take at most this share of an image's raters' mass (ot.py); at 1/3 each of the
    # phantoms' three raters is coupled to a module of its own. 1 is MoSE's coupling.
    module_share: float = 1.0
    background_weight: float = 0.1  # of the cross-entropy; without it the network settles on "all background"
    seed: int = 0
    repeats: tuple[int, ...] = ()  # per data source: how often its training images occur in an epoch (default 1)
    augment: SegmentAugmentConfig = field(default_factory=SegmentAugmentConfig)
    init: str | None = None  # warm start: a segmenter .safetensors of the same architecture
    select_by: str = "ged"  # the best checkpoint (SELECTION): lowest validation GED (as MoSE), at full size, or Dice

    def to_json(self) -> dict:
        out = asdict(self)
        out["input_size"] = list(self.input_size)
        out["repeats"] = list(self.repeats)
        return out


PRESETS = {
    "cpu-small": SegmentTrainConfig(
        "cpu-small",
        (256, 320),
        SegmenterConfig(base_channels=16, depth=5, max_channels=128, modules=4, heads="shared"),
        samples=2,
        epochs=20,
        batch_size=4,
        lr=3e-3,
        hold_fraction=0.3,
        anneal_fraction=0.7,
    ),
    "paper": SegmentTrainConfig(
        "paper",
        (512, 704),
        SegmenterConfig(base_channels=32, depth=5, modules=4, head_channels=32, heads="shared"),
        samples=4,
        epochs=200,
        batch_size=16,
        lr=1e-3,
        hold_fraction=0.3,
        anneal_fraction=0.7,
    ),
}
check_registry("segmentation preset", PRESETS, registry.PRESETS)


def segment_preset(name: str, latent_size: int | None = None, **overrides) -> SegmentTrainConfig:
    """The preset `name` with the non-None `overrides` of SegmentTrainConfig's fields, and of the model's latent
    size. Raises ConfigError for an unknown preset or unusable settings."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
    if overrides.get("select_by") not in (None, *registry.CHECKPOINT_SELECTION):
        raise ConfigError(
            f"unknown checkpoint selection {overrides['select_by']!r}; choose one of "
            f"{', '.join(registry.CHECKPOINT_SELECTION)}."
        )
    config = replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})
    if latent_size is not None:
        if latent_size < 1:
            raise ConfigError(f"the modules' latent needs at least one dimension (got {latent_size}).")
        config = replace(config, model=replace(config.model, latent_size=latent_size))
    if config.anneal_fraction > 0 and not 0 <= config.hold_fraction < config.anneal_fraction <= 1:
        raise ConfigError(
            f"γ must be held for less of training than it takes to reach 1 (hold {config.hold_fraction:g}, "
            f"anneal {config.anneal_fraction:g}; both are shares of training, 0–1)."
        )
    if config.samples < 1:
        raise ConfigError(f"each module needs at least one sample per image (got {config.samples}).")
    if not 0 < config.background_weight <= 1:
        raise ConfigError(
            f"the background's weight in the cross-entropy must be in (0, 1], not {config.background_weight:g}."
        )
    if not 0 < config.trunk_lr_scale <= 1:
        raise ConfigError(f"the U-Net's share of the learning rate must be in (0, 1], not {config.trunk_lr_scale:g}.")
    for limit, value in (("module cap", config.module_cap), ("module share", config.module_share)):
        if not 1 / config.model.modules <= value <= 1:
            raise ConfigError(
                f"a {limit} of {value:g} cannot hold the raters' mass on {config.model.modules} modules; "
                f"choose 1/{config.model.modules}–1."
            )
    multiple = 2**config.model.depth
    if any(v % multiple or v <= 0 for v in config.input_size):
        raise ConfigError(
            f"the input size {config.input_size[0]}×{config.input_size[1]} must be made of multiples "
            f"of {multiple} for this preset's network (depth {config.model.depth})."
        )
    return config


@dataclass
class TrainResult:
    run: Path
    epochs_done: int
    best_epoch: int
    best_metrics: dict

    def to_json(self) -> dict:
        return {
            "run": str(self.run),
            "epochs": self.epochs_done,
            "best_epoch": self.best_epoch,
            "best_metrics": self.best_metrics,
        }

    def describe(self, select_by: str) -> str:
        best = self.best_metrics
        return (
            f"run {self.run}: {self.epochs_done} epochs, best epoch {self.best_epoch} (by {select_by}: val GED "
            f"{best.get('val_ged', math.nan):.3f}, val mean Dice {best.get('val_mean_dice', math.nan):.3f})"
        )


def _batch(samples: list[SegmentationSample], rng: np.random.Generator, config: SegmentTrainConfig):
    images, maps, weights = [], [], []
    m = max(len(s.annotations) for s in samples)
    for s in samples:
        image, annotations = augment(s.image, s.annotations, s.content, rng, config.augment)
        # images with fewer raters repeat their maps with zero weight, so that a batch is rectangular
        pad = m - len(annotations)
        images.append(image)
        maps.append(np.concatenate([annotations, annotations[:1].repeat(pad, 0)]) if pad else annotations)
        weights.append(np.concatenate([s.weights, np.zeros(pad, np.float32)]))
    return (
        torch.from_numpy(np.stack(images))[:, None],
        torch.from_numpy(np.stack(maps)).long(),
        torch.from_numpy(np.stack(weights)),
    )


def _train_one_epoch(
    model,
    optimiser,
    train: list[SegmentationSample],
    config: SegmentTrainConfig,
    epoch: int,
    total_steps: int,
    gamma0: float,
    class_weights: torch.Tensor,
    loop: TrainingLoop,
):
    """One pass over the training images; the epoch alone seeds its randomness, so a resume is exact."""
    model.train()
    device = loop.device
    rng = np.random.default_rng([config.seed, epoch])
    torch.manual_seed(epoch_seed(config.seed, epoch))
    order = rng.permutation(len(train))
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    losses, guard = [], loop.guard(epoch)
    mass = torch.zeros(config.model.modules)
    for b in range(steps_per_epoch):
        loop.step()
        step = (epoch - 1) * steps_per_epoch + b
        for group in optimiser.param_groups:
            group["lr"] = warmup_cosine(step, total_steps, config.lr, config.warmup_fraction) * group["scale"]
        chosen = [train[i] for i in order[b * config.batch_size : (b + 1) * config.batch_size]]
        x, y, beta = (t.to(device) for t in _batch(chosen, rng, config))
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device):
            out = model(x, samples=config.samples)
        loss = ot_segmentation_loss(
            out.logits.float(),
            out.routing.float(),
            y,
            beta,
            gamma_schedule(step, total_steps, gamma0, config.anneal_fraction, config.hold_fraction),
            kl_weight(config),
            config.ce_weight,
            class_weights,
            module_cap=config.module_cap,
            module_share=config.module_share,
        )
        losses.append(loop.optimise(loss.total, optimiser, guard, clip=(model.parameters(), 5.0)))
        mass += loss.coupling.detach().sum(2).reshape(len(chosen), config.model.modules, -1).sum((0, 2)).cpu()
    return [v for v in losses if v is not None], guard.bad, (mass / mass.sum().clamp_min(1e-12)).tolist()


def kl_weight(config: SegmentTrainConfig) -> float:
    """The routing KL's weight: as configured, or MoSE's 1/N (its KL is a mean over the N = K·S samples)."""
    return config.kl_weight if config.kl_weight is not None else 1.0 / (config.model.modules * config.samples)


# select_by -> (the validation figure, its sign for "higher is better", how a card names the choice)
SELECTION = {
    "ged": ("val_ged", -1, "lowest validation GED"),
    "ged-full": ("val_ged_full", -1, "lowest validation GED at full size"),
    "dice": ("val_mean_dice", 1, "highest validation mean Dice"),
}
check_registry("checkpoint selection", SELECTION, registry.CHECKPOINT_SELECTION)


def selection_score(record: dict, select_by: str) -> float:
    """Higher is better: −validation GED (at the network's input or at full size), or validation mean Dice;
    −loss when there is no validation split (or its figure is not a number)."""
    key, sign, _ = SELECTION[select_by]
    value = sign * record.get(key, math.nan)
    return float(value) if math.isfinite(value) else -float(record["loss"])


def _selected_by(record: dict, select_by: str) -> str:
    key, _, named = SELECTION[select_by]
    return named if math.isfinite(record.get(key, math.nan)) else "lowest training loss (no validation images)"


TRANSPLANT_IMAGES = 8  # training images whose mean routing picks the module a transplant carries over


def _warm_start(model: MixtureSegmenter, config: SegmentTrainConfig, train: list[SegmentationSample]) -> str:
    """Load `config.init` into `model`: all of it for the same architecture, the trunk and one module's head for a
    per-module init of a shared-head model (transplant.py). Returns what was loaded, for the model card. Raises
    ConfigError for any other architecture."""
    state, card = load_model(config.init, SegmenterCard)
    source = SegmenterConfig(**card.model_config)
    if source == config.model:
        model.load_state_dict(state)
        return str(config.init)
    if can_transplant(source, config.model):
        images = torch.from_numpy(np.stack([s.image for s in train[:TRANSPLANT_IMAGES]]))[:, None]
        module = transplant(state, source, model, images)
        return f"{config.init} (its U-Net and module {module + 1}'s head; the mixture started anew)"
    raise ConfigError(
        f"{Path(config.init).name} has another architecture than the preset "
        f"({card.model_config} against {asdict(config.model)})."
    )


def _parameter_groups(model: MixtureSegmenter, config: SegmentTrainConfig) -> list[dict]:
    """The optimiser's groups, each with the share of the scheduled learning rate it takes ("scale"): one group
    at the default scale (as runs were resumed before the option), else the U-Net's and the rest."""
    if config.trunk_lr_scale == 1.0:
        return [{"params": list(model.parameters()), "scale": 1.0}]
    trunk = {id(p) for p in model.unet.parameters()}
    return [
        {"params": list(model.unet.parameters()), "scale": config.trunk_lr_scale},
        {"params": [p for p in model.parameters() if id(p) not in trunk], "scale": 1.0},
    ]


def train_segmenter(
    data: list[str | Path],
    out: str | Path,
    config: SegmentTrainConfig,
    resume: bool = False,
    command: str = "",
    events: Events = ignore,
    cancel: CancelToken | None = None,
) -> TrainResult:
    """Train on the annotation projects or manifests in `data` into the run folder `out` (checkpoints `last`
    and `best`, chosen by `config.select_by`). Raises ConfigError for unusable data or settings, `Cancelled`
    when `cancel` is set (the last finished epoch stays, and `resume=True` continues from it)."""
    run = RunFolder(out)
    run.start({"task": "segmentation", "data": [str(d) for d in data], "config": config.to_json()}, resume)
    splits = _samples(data, config)
    loop = TrainingLoop(
        run, task="segmentation training", epochs=config.epochs, seed=config.seed, events=events, cancel=cancel
    )
    model = MixtureSegmenter(config.model)
    started_from = _warm_start(model, config, splits["train"]) if config.init and not resume else config.init
    model = to_device(model, loop.device)
    optimiser = torch.optim.AdamW(_parameter_groups(model, config), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(splits["train"]) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    full_size_val = validation_images(data, config.seed) if config.select_by == "ged-full" else []
    start_epoch = loop.resume(model, optimiser, resume)
    best = (loop.resumed_state or {}).get("best", {"epoch": 0, "score": -math.inf, "metrics": {}})
    class_weights = background_weighted(config.model.num_classes, config.background_weight).to(loop.device)
    n_samples = config.model.modules * config.samples
    gamma0 = config.gamma0 if config.gamma0 is not None else 1.0 / n_samples
    card = SegmenterCard(
        provenance=Provenance.capture(command, data),
        model_config=asdict(config.model),
        input_size=list(config.input_size),
        data=[str(d) for d in data],
        preset=config.preset,
        init=str(started_from) if started_from else None,
        background_logit_offset=-math.log(config.background_weight),
        train_images=len(splits["train"]),
        val_images=len(splits["val"]),
    )
    for epoch in range(start_epoch, config.epochs + 1):
        started = time.perf_counter()
        losses, bad, module_mass = _train_one_epoch(
            model, optimiser, splits["train"], config, epoch, total_steps, gamma0, class_weights, loop
        )
        record = {
            "epoch": epoch,
            "loss": float(np.mean(losses)) if losses else float("nan"),
            "skipped_steps": bad,
            "module_mass": module_mass,  # each module's share of the raters' coupled mass this epoch
            "lr": optimiser.param_groups[0]["lr"],
            "seconds": round(time.perf_counter() - started, 2),
            "gamma": gamma_schedule(
                epoch * steps_per_epoch, total_steps, gamma0, config.anneal_fraction, config.hold_fraction
            ),
        }
        if splits["val"]:
            record.update(validate(model, splits["val"], config, loop.device, card.background_logit_offset))
        if full_size_val:
            record.update(validate_full_size(model, full_size_val, card, config.val_samples, loop.device))
        checkpoints = {"last": (model.state_dict(), card)}
        score = selection_score(record, config.select_by)
        if score > best["score"]:
            best = {"epoch": epoch, "score": float(score), "metrics": record}
            checkpoints["best"] = (
                model.state_dict(),
                card.with_changes(selected_by=_selected_by(record, config.select_by)),
            )
        loop.end_epoch(
            epoch, record, checkpoints, {"model": model.state_dict(), "optimiser": optimiser.state_dict(), "best": best}
        )
    loop.finish()
    return TrainResult(run.root, config.epochs, best["epoch"], best["metrics"])


def _samples(data: list[str | Path], config: SegmentTrainConfig) -> dict[str, list[SegmentationSample]]:
    """Letterboxed samples per split from every source, training images repeated as `config.repeats` says."""
    splits: dict[str, list[SegmentationSample]] = {"train": [], "val": [], "test": []}
    if config.repeats and len(config.repeats) != len(data):
        raise ConfigError(f"{len(config.repeats)} repeats given for {len(data)} data sources.")
    for i, source in enumerate(data):
        for split, items in load_samples(source, config.input_size, config.seed).items():
            # a small real set next to a large phantom cohort needs more weight than its share
            splits[split].extend(items * (config.repeats[i] if config.repeats and split == "train" else 1))
    if not splits["train"]:
        raise ConfigError("no annotated training images found in the data given.")
    return splits
