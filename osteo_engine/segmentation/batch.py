"""Label maps of many radiographs, batched through the network: all that a patch bank needs of each image.

`segment` makes everything a reader of one radiograph sees (three uncertainty maps, each module's map, the
per-bone statistics) and settles the orientation with a low-resolution pass of its own. A patch bank needs
only the label map of each of hundreds of images, so here:
- images go through the network `batch_size` at a time, channels-last, in bfloat16 where the processor computes
  it natively (`native_bf16`), and only the samples' weighted mean is made
  (`MixtureSegmenter.mean_prediction`), never every sample's logits;
- the as-stored reading's own mean prediction settles the orientation when `find_orientation` finds it
  plausible enough; otherwise that search's low-resolution readings do, and only a hand found turned or inverted
  is read again, upright (a fallback to `segment` read the file twice more and made its full-size maps: 3.4 s);
- the label map is restored per bone: the bone's box at the network's size (with a margin of one pixel) is
  enlarged with the bilinear weights of `Letterbox.restore` and its arg-max taken there, so the background,
  most of a radiograph, costs nothing, and no full-size probability map is ever made.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

import numpy as np
import torch

from ..anatomy import BONES
from .data import Letterbox
from .parts import largest_component
from .predict import LoadedSegmenter
from .reading import (
    find_orientation,
    mean_prediction,
    native_bf16,
    network_input,
    plausibility,
    reorient,
    turned_back,
)


@torch.inference_mode()
def label_maps(
    images: Iterable[np.ndarray],
    segmenter: LoadedSegmenter,
    samples: int = 4,
    batch_size: int = 4,
    *,
    bf16: bool | None = None,
) -> Iterator[np.ndarray]:
    """Yield each image's label map (H, W) uint8 in the file's orientation, in order: what
    `segment(pixels, segmenter, samples=samples, modules=False).labels` gives, up to the samples' noise.
    `images` are (H, W) float32 in 0–1, as for `segment`; they are read `batch_size` at a time. `bf16`: run the
    network in bfloat16 (autocast); None chooses it where the processor computes it natively (`native_bf16`)."""
    bf16 = native_bf16(segmenter.device) if bf16 is None else bf16
    iterator = iter(images)
    while chunk := list(islice(iterator, batch_size)):
        boxes = [Letterbox.fit(p.shape, segmenter.input_size) for p in chunk]
        x = torch.from_numpy(np.stack([box.image(p) for box, p in zip(boxes, chunk)]))[:, None]
        means = mean_prediction(x, segmenter, samples, bf16)
        for pixels, box, mean in zip(chunk, boxes, means):
            yield _oriented_labels(pixels, box, mean, segmenter, samples, bf16)


def _oriented_labels(
    pixels: np.ndarray, box: Letterbox, mean: np.ndarray, segmenter: LoadedSegmenter, samples: int, bf16: bool
) -> np.ndarray:
    """The label map of one image in the file's orientation, given the mean prediction of its as-stored reading:
    that reading's own, unless `find_orientation` finds the hand turned or inverted."""
    turns, inverted = find_orientation(pixels, segmenter, plausibility(mean))
    if not (turns or inverted):
        return bone_labels(mean, box)
    upright_box, x = network_input(reorient(pixels, turns, inverted), segmenter)
    upright_mean = mean_prediction(x, segmenter, samples, bf16)[0]
    return turned_back(turns)(bone_labels(upright_mean, upright_box))


def bone_labels(mean: np.ndarray, box: Letterbox) -> np.ndarray:
    """The label map (uint8, `box.original`) of mean class probabilities (C, h, w) at the network's size: the
    arg-max of their bilinear enlargement, as `restored_labels` makes it, with each bone reduced to its
    largest connected part (as `segment` does). Only each bone's box is enlarged, so a pixel counts as bone c
    when one of its four source pixels is labelled c at the network's size: an interpolated win of a class
    that wins none of the four is not found (it is not in practice: a mean of the four cannot make it)."""
    content = mean[:, : box.content[0], : box.content[1]]
    coarse = content.argmax(0)
    rows, cols = (_bilinear_taps(n, big) for n, big in zip(box.content, box.original))
    labels = np.zeros(box.original, np.uint8)
    for value in BONES:
        ys, xs = np.nonzero(coarse == value)
        if not len(ys):
            continue
        (y_out, y_in, ay), (x_out, x_in, ax) = (
            _window(taps, n, lo, hi)
            for taps, n, lo, hi in (
                (rows, box.content[0], ys.min(), ys.max()),
                (cols, box.content[1], xs.min(), xs.max()),
            )
        )
        patch = content[:, y_in, x_in]
        enlarged = np.matmul(np.matmul(ay, patch), ax.T)  # (C, Y, X)
        mine = largest_component(enlarged.argmax(0) == value)
        labels[y_out, x_out][mine] = value
    return labels


def _bilinear_taps(n: int, big: int) -> tuple[np.ndarray, np.ndarray]:
    """For each of `big` output positions, OpenCV's INTER_LINEAR source index and weight of the next one."""
    position = (np.arange(big) + 0.5) * (n / big) - 0.5
    index = np.floor(position).astype(int)
    frac = position - index
    frac[index < 0] = 0.0
    index = np.clip(index, 0, n - 1)
    frac[index >= n - 1] = 0.0
    return index, frac


def _window(taps: tuple[np.ndarray, np.ndarray], n: int, lo: int, hi: int) -> tuple[slice, slice, np.ndarray]:
    """(the output positions whose two source pixels lie within [lo − 1, hi + 1], the box and its margin among
    `n` source pixels; that source range; the interpolation matrix, outputs × source pixels of the range)."""
    index, frac = taps
    start, stop = max(0, lo - 1), min(n - 1, hi + 1)
    source = slice(start, stop + 1)
    chosen = np.nonzero((index >= start) & (index + (frac > 0) <= stop))[0]
    if not len(chosen):
        return slice(0, 0), source, np.zeros((0, stop - start + 1), np.float32)
    first, last = int(chosen[0]), int(chosen[-1]) + 1
    local = index[first:last] - start
    matrix = np.zeros((last - first, stop - start + 1), np.float32)
    steps = np.arange(last - first)
    matrix[steps, local] = 1.0 - frac[first:last]
    nxt = np.minimum(local + 1, stop - start)
    matrix[steps, nxt] += frac[first:last]
    return slice(first, last), source, matrix
