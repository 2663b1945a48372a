"""Self-supervised pretraining of the patch encoder: presets, the loop (LARC, warm-up, cosine), exact resume.

Pretraining sees the training split and the unlabelled rows of a manifest, never validation or test images.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .. import registry
from ..cards import EncoderCard, Provenance
from ..cohort import save_split_assignment
from ..errors import ConfigError
from ..events import CancelToken, Events, ignore
from ..registry import POSITIVES, STEMS, check_registry
from ..runs import RunFolder, pick_device, warmup_cosine
from ..training import TrainingLoop, autocast, epoch_seed, to_device
from .data import PatchBank, pretraining_inputs
from .larc import LARC
from .losses import rank_and_world
from .methods import MethodConfig, build_method
from .multicrop import (
    NO_BLUR,
    NO_GAMMA,
    NO_NOISE,
    CropStats,
    MultiCropConfig,
    ViewAugmentConfig,
    coverage,
    multicrop,
    paired_multicrop,
)


@dataclass(frozen=True)
class PretrainConfig:
    preset: str
    method: MethodConfig
    patch_size: int
    multicrop: MultiCropConfig
    batch_size: int = 64
    epochs: int = 10
    lr: float = 0.3
    weight_decay: float = 1e-6
    momentum: float = 0.9
    trust_coefficient: float = 0.001
    warmup_fraction: float = 0.1
    source: str = "patches"  # or "raw" (paper table 2)
    seed: int = 0
    # "view": positives are views of one patch (the paper); "subject": half of each patch's views come from another
    # bone of its subject, so the encoder learns what a subject's bones share (docs/results/phantom/diagnosis.md)
    positives: str = "view"

    def to_json(self) -> dict:
        """The config as a run records it. Options added after the paper's runs (`positives`, the views' gamma, noise
        and blur) appear only when they are on, so that runs made before them keep their settings' hash and resume."""
        record = asdict(self)
        augment = record["multicrop"]["augment"]
        for key, off in (("gamma", NO_GAMMA), ("noise", NO_NOISE), ("blur", NO_BLUR)):
            if augment[key] == off:
                del augment[key]
        if self.positives == "view":
            del record["positives"]
        return record


PRESETS = {
    "cpu-small": PretrainConfig(
        "cpu-small",
        MethodConfig(encoder="resnet18", stem="compact", projector_hidden=512, projector_out=128, prototypes=100),
        patch_size=64,
        multicrop=MultiCropConfig(global_size=48, local_size=24),
        batch_size=64,
        epochs=10,
        lr=0.3,
    ),
    "paper": PretrainConfig(
        "paper",
        MethodConfig(encoder="resnet50", stem="imagenet", projector_hidden=2048, projector_out=128, prototypes=3000),
        patch_size=256,
        multicrop=MultiCropConfig(global_size=224, local_size=96),
        batch_size=128,
        epochs=100,
        lr=0.6,
    ),
}
check_registry("pretraining preset", PRESETS, registry.PRESETS)


def pretrain_preset(name: str, method: str = "simclr", **overrides) -> PretrainConfig:
    """The preset with `overrides` of PretrainConfig's fields (None: the preset's), plus `multicrop_mode`,
    `jitter` (the half-width j of the views' brightness and contrast factors, drawn from [1 − j, 1 + j]; the
    paper's 0.5, 0 for none), `contrast_jitter` (the contrast factor's alone, overriding `jitter`'s),
    `gamma_jitter` G (each view's display gamma from [1/(1 + G), 1 + G]) and `noise` S (Gaussian noise of a
    standard deviation up to S added to the bone, pixels in [0, 1]) and `blur` B (a Gaussian blur of the bone with
    a sigma up to B view pixels); the last three are off in the paper; and
    `stem`, the encoder's first layer (`registry.STEMS`). Raises ConfigError for an unknown preset, positives or
    stem, a jitter outside [0, 1), or a negative gamma jitter, noise or blur."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
    base = PRESETS[name]
    multicrop_mode = overrides.pop("multicrop_mode", None)
    jitter = overrides.pop("jitter", None)
    contrast_jitter = overrides.pop("contrast_jitter", None)
    acquisition = {k: overrides.pop(k, None) for k in ("gamma_jitter", "noise", "blur")}
    stem = overrides.pop("stem", None) or base.method.stem
    if stem not in STEMS:
        raise ConfigError(f"unknown stem {stem!r}; choose one of {', '.join(STEMS)}.")
    config = replace(
        base,
        method=replace(base.method, method=method, stem=stem),
        **{k: v for k, v in overrides.items() if v is not None},
    )
    if config.patch_size != base.patch_size:  # crops keep their share of the patch
        scale = config.patch_size / base.patch_size
        config = replace(
            config,
            multicrop=replace(
                config.multicrop,
                global_size=round(base.multicrop.global_size * scale),
                local_size=round(base.multicrop.local_size * scale),
            ),
        )
    if config.positives not in POSITIVES:
        raise ConfigError(f"unknown positives {config.positives!r}; choose one of {', '.join(POSITIVES)}.")
    if multicrop_mode:
        config = replace(config, multicrop=replace(config.multicrop, mode=multicrop_mode))
    augment = config.multicrop.augment
    if jitter is not None:
        augment = replace(augment, brightness=_span(jitter), contrast=_span(jitter))
    if contrast_jitter is not None:
        augment = replace(augment, contrast=_span(contrast_jitter))
    augment = _with_acquisition(augment, **acquisition)
    return replace(config, multicrop=replace(config.multicrop, augment=augment))


def _with_acquisition(
    augment: ViewAugmentConfig, gamma_jitter: float | None, noise: float | None, blur: float | None
) -> ViewAugmentConfig:
    if any(v is not None and v < 0 for v in (gamma_jitter, noise, blur)):
        raise ConfigError(f"gamma jitter {gamma_jitter}, noise {noise} and blur {blur} must not be negative.")
    if gamma_jitter is not None:
        augment = replace(augment, gamma=(1 / (1 + gamma_jitter), 1 + gamma_jitter))
    if noise is not None:
        augment = replace(augment, noise=(0.0, noise))
    if blur is not None:
        augment = replace(augment, blur=(0.0, blur))
    return augment


def _span(jitter: float) -> tuple[float, float]:
    if not 0 <= jitter < 1:
        raise ConfigError(f"jitter {jitter} is outside [0, 1): brightness and contrast factors must stay positive.")
    return (1 - jitter, 1 + jitter)


@dataclass
class PretrainResult:
    run: Path
    epochs_done: int
    crop_stats: dict = field(default_factory=dict)


def pretraining_patches(bank: PatchBank, method: str = "simclr") -> PatchBank:
    """Training split and unlabelled rows: validation and test images never shape the encoder. SupCon pulls
    together patches of one label, so it takes the labelled training patches alone."""
    chosen = (bank.splits == "train") | (bank.labels < 0)
    if method == "supcon":
        chosen &= bank.labels >= 0
    return bank.select(chosen)


def _barrier() -> None:
    import torch.distributed as dist

    if rank_and_world()[1] > 1:
        dist.barrier()


def pretrain(
    bank: PatchBank,
    out: str | Path,
    config: PretrainConfig,
    resume: bool = False,
    provenance: Provenance | None = None,
    events: Events = ignore,
    cancel: CancelToken | None = None,
) -> PretrainResult:
    """Pretrain an encoder on `bank` into the run folder `out` (checkpoint `last`, splits.json). Single process,
    or one rank of a torchrun job (gloo on CPU, NCCL on GPU): each rank takes its share of every global batch,
    the losses gather across ranks, and rank 0 alone writes the run folder and reports events. Raises
    ConfigError for too few patches, `Cancelled` when `cancel` is set (`resume=True` continues). `provenance`
    (the command, package versions and data hashes) goes into the encoder's card."""
    rank, world = rank_and_world()
    run = RunFolder(out)
    if rank == 0:
        run.start({"task": "pretraining", "config": config.to_json(), "world_size": world}, resume)
        save_split_assignment(run.splits, bank.subjects, bank.splits)
    _barrier()
    data = pretraining_patches(pretraining_inputs(bank, config.patch_size, config.seed), config.method.method)
    if len(data.patches) < config.batch_size:
        raise ConfigError(f"{len(data.patches)} pretraining patches are fewer than one batch ({config.batch_size}).")
    if config.batch_size % world:
        raise ConfigError(f"the batch of {config.batch_size} does not split evenly over {world} processes.")
    loop = TrainingLoop(
        run,
        task="pretraining",
        epochs=config.epochs,
        seed=config.seed,
        events=events if rank == 0 else ignore,
        cancel=cancel,
        writer=rank == 0,
        device=_rank_device(rank, world),
    )
    device = loop.device
    method = to_device(build_method(config.method), device)
    model = _distributed(method, device) if world > 1 else method
    inner = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    optimiser = LARC(inner, trust_coefficient=config.trust_coefficient)
    steps_per_epoch = len(data.patches) // config.batch_size
    total = steps_per_epoch * config.epochs
    start = loop.resume(method, optimiser, resume)
    patches = torch.from_numpy(data.patches)[:, None]
    labels = torch.from_numpy(data.labels.astype(np.int64))
    cover = coverage(patches)  # once: patches never change
    groups = subject_groups(data.subjects) if config.positives == "subject" else None
    card = EncoderCard(
        provenance=provenance or Provenance.capture(""),
        method_config=asdict(config.method),
        patch_size=config.patch_size,
        preset=config.preset,
        source=config.source,
        patches=len(data.patches),
    )
    totals = CropStats()
    for epoch in range(start, config.epochs + 1):
        started = time.perf_counter()
        losses, stats = _epoch(
            model, optimiser, patches, cover, labels, groups, config, epoch, steps_per_epoch, total, loop
        )
        totals.add(stats)
        record = {
            "epoch": epoch,
            "loss": float(np.mean(losses)) if losses else float("nan"),
            "lr": optimiser.param_groups[0]["lr"],
            "seconds": round(time.perf_counter() - started, 2),
            "crops": stats.crops,
            "crop_fallbacks": stats.fallbacks,
            "views_below_min": stats.below_min,
        }
        loop.end_epoch(
            epoch,
            record,
            {"last": (method.encoder.state_dict(), card)},
            {"model": method.state_dict(), "optimiser": optimiser.state_dict()},
        )
        _barrier()
    loop.finish()
    return PretrainResult(run.root, config.epochs, asdict(totals))


def _rank_device(rank: int, world: int) -> torch.device:
    device = pick_device()
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device


def _distributed(method, device: torch.device):
    """DDP around the method; the losses gather embeddings across ranks; BatchNorm syncs on GPU (PyTorch's
    SyncBatchNorm needs CUDA)."""
    from torch.nn.parallel import DistributedDataParallel

    method.distributed = True
    if device.type == "cuda":
        method = torch.nn.SyncBatchNorm.convert_sync_batchnorm(method)
        return DistributedDataParallel(method, device_ids=[device.index])
    return DistributedDataParallel(method)


def _epoch(
    model,
    optimiser,
    patches,
    cover: torch.Tensor,
    labels,
    groups: list[np.ndarray] | None,
    config: PretrainConfig,
    epoch: int,
    steps: int,
    total: int,
    loop: TrainingLoop,
):
    model.train()
    device = loop.device
    rank, world = rank_and_world()
    # every rank draws the same permutation and keeps its share of each batch; crops are drawn per rank
    order = torch.randperm(len(patches), generator=torch.Generator().manual_seed(epoch_seed(config.seed, epoch)))
    generator = torch.Generator().manual_seed(epoch_seed(config.seed, epoch) * 1_009 + rank)
    losses, stats, guard = [], CropStats(), loop.guard(epoch)
    for b in range(steps):
        loop.step()
        step = (epoch - 1) * steps + b
        for group in optimiser.param_groups:
            group["lr"] = warmup_cosine(step, total, config.lr, config.warmup_fraction)
        index = order[b * config.batch_size : (b + 1) * config.batch_size][rank::world]
        if groups is None:
            global_views, local_views, found = multicrop(patches[index], config.multicrop, generator, cover[index])
        else:
            pair = partners(index, groups, generator)
            global_views, local_views, found = paired_multicrop(
                patches[index], patches[pair], config.multicrop, generator, cover[index], cover[pair]
            )
        stats.add(found)
        global_views = [v.to(device) for v in global_views]
        local_views = [v.to(device) for v in local_views]
        with autocast(device):
            loss = model(global_views, local_views, labels[index].to(device))
        losses.append(loop.optimise(loss, optimiser, guard))
    return [v for v in losses if v is not None], stats


def subject_groups(subjects: np.ndarray) -> list[np.ndarray]:
    """For each patch, the indices of every patch of its subject (itself included), in bank order."""
    by_subject: dict[str, list[int]] = {}
    for i, s in enumerate(subjects):
        by_subject.setdefault(str(s), []).append(i)
    members = {s: np.array(v) for s, v in by_subject.items()}
    return [members[str(s)] for s in subjects]


def partners(index: torch.Tensor, groups: list[np.ndarray], generator: torch.Generator) -> torch.Tensor:
    """For each patch in `index`, another patch of its subject drawn at random (itself when it is alone)."""
    out = []
    for i in index.tolist():
        group = groups[i]
        others = group[group != i]
        pool = others if len(others) else group
        out.append(int(pool[torch.randint(len(pool), (1,), generator=generator)]))
    return torch.tensor(out, dtype=torch.long)
