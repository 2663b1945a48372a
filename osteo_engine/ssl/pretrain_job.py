"""The pretraining job (`osteo pretrain`): patch bank, then `pretrain`, in one process or as one rank of a
torchrun job (which it joins and leaves itself)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..cards import Provenance
from ..events import CancelToken, Events, ignore
from .data import cached_patch_bank
from .pretrain import PretrainResult, pretrain, pretrain_preset


@dataclass(frozen=True, kw_only=True)
class PretrainRequest:
    method: str  # registry.SSL_METHODS
    data: Path  # manifest CSV; unlabelled rows are pretraining data too
    out: Path  # run folder (its cache/ keeps the patch bank)
    preset: str = "cpu-small"
    multicrop: str = "constrained"  # registry.MULTICROP_MODES
    source: str = "patches"  # registry.PATCH_INPUTS
    segmenter: Path | None = None  # for bone patches; None: the bundled segmenter
    epochs: int | None = None  # None: the preset's
    batch_size: int | None = None
    patch_size: int | None = None
    seed: int | None = None
    resume: bool = False
    command: str = ""


@dataclass(frozen=True)
class PretrainJobResult:
    result: PretrainResult | None  # None on ranks other than 0
    world_size: int
    skipped: list[str]  # images of the manifest that could not be used, and why
    min_nonzero: float  # the multi-crop rule the crop statistics refer to


def pretrain_job(
    request: PretrainRequest,
    events: Events = ignore,
    cancel: CancelToken | None = None,
    bank_progress: Callable[[int, int], None] | None = None,
) -> PretrainJobResult:
    """Build (or reuse) the patch bank and pretrain. Under torchrun (WORLD_SIZE > 1) rank 0 builds the bank
    while the others wait, then every rank trains its share. Raises ConfigError for unusable settings or
    data, `Cancelled` when `cancel` is set."""
    config = pretrain_preset(
        request.preset,
        request.method,
        epochs=request.epochs,
        seed=request.seed,
        source=request.source,
        batch_size=request.batch_size,
        patch_size=request.patch_size,
        multicrop_mode=request.multicrop,
    )
    rank, world = _join_process_group()
    try:

        def bank():
            return cached_patch_bank(
                request.data,
                config.patch_size,
                config.source,
                request.segmenter,
                request.out / "cache",
                config.seed,
                bank_progress if rank == 0 else None,
            )

        if rank == 0:  # one rank builds the patch bank; the others read it from the cache
            bank()
        _barrier(world)
        patches = bank()
        result = pretrain(
            patches,
            request.out,
            config,
            resume=request.resume,
            provenance=Provenance.capture(request.command, [request.data]),
            events=events,
            cancel=cancel,
        )
    finally:
        _leave_process_group(world)
    return PretrainJobResult(result if rank == 0 else None, world, list(patches.skipped), config.multicrop.min_nonzero)


def _join_process_group() -> tuple[int, int]:
    """(rank, world size); under torchrun, joins the process group (NCCL on GPU, gloo on CPU)."""
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def _barrier(world: int) -> None:
    import torch.distributed as dist

    if world > 1:
        dist.barrier()


def _leave_process_group(world: int) -> None:
    import torch.distributed as dist

    if world > 1 and dist.is_initialized():
        dist.destroy_process_group()
