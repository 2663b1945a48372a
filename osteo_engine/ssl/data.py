"""The patch bank: every image of a manifest turned into bone patches once, cached beside the run.

Patches always come from the segmenter's predicted masks (paper §3.2), for training and test alike, phantoms
included. `raw` input (the paper's table 2, no segmentation) keeps each whole radiograph instead, letterboxed
into a square of `RAW_SCALE` times the patch size: the probe sees the whole image once (one prediction per
radiograph, as the paper does), and pretraining sees 7 random squares of it, drawn anew with the run's seed
(`pretraining_inputs`), so that it gets as many samples per image as with bone patches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path

import cv2
import numpy as np

from ..cards import SegmenterCard
from ..cohort import read_manifest, subject_key
from ..errors import ConfigError, OsteoError
from ..io import load_radiograph
from ..patches import bone_patches
from ..radiogrammetry import FEATURES, bone_bright, feature_vector, length_unit, measure_bones
from ..registry import PATCH_INPUTS
from ..storage import atomic_write_bytes

RAW_PATCHES = 7
RAW_SCALE = 4  # a raw bank keeps each radiograph at 4× the patch size, so that its squares keep detail
SEGMENT_BATCH = 4  # images per pass of the segmenter when making a patch bank
# Latent samples per module behind a bank's label maps. The mean of the K modules' single samples labelled 0.089%
# of pixels otherwise than the 16 samples' mean (16 with another seed: 0.067%), with the same Dice against the
# phantoms' truth (0.9565 against 0.9563, 16 images), and made the label maps in 0.38 s an image against 0.55.
BANK_SAMPLES = 1
WHOLE = "whole"  # the `bones` entry of a whole radiograph in a raw bank


@dataclass
class PatchBank:
    patches: np.ndarray  # (N, S, S) float32
    bones: np.ndarray  # (N,) bone name, or "raw"
    subjects: np.ndarray  # (N,)
    labels: np.ndarray  # (N,) 1 osteoporosis, 0 normal, -1 unlabelled
    splits: np.ndarray  # (N,)
    images: np.ndarray  # (N,) image file name
    skipped: list[str]  # sentences: images that could not be used, and why
    # (N, len(radiogrammetry.FEATURES)): the patch's image's radiogrammetry indices (NaN where not measured);
    # None for a raw bank
    radiogrammetry: np.ndarray | None = None
    # the unit of its T and W: "mm" or "px" when every image's was the same (radiogrammetry.BoneMeasurement),
    # "mixed" when not; None for a raw bank, or one cached before the unit was kept
    radiogrammetry_unit: str | None = None

    def with_splits(self, assignment: dict[str, str] | None) -> PatchBank:
        """The same patches with each subject that `assignment` (subject_key -> split) knows moved to its split."""
        if not assignment:
            return self
        splits = np.array([assignment.get(subject_key(str(s)), v) for s, v in zip(self.subjects, self.splits)])
        return replace(self, splits=splits)

    def select(self, index: np.ndarray) -> PatchBank:
        """The patches a boolean mask or an index array picks."""
        return replace(self, **{k: v[index] for k, v in self._per_patch().items()})

    def _per_patch(self) -> dict[str, np.ndarray]:
        names = ("patches", "bones", "subjects", "labels", "splits", "images", "radiogrammetry")
        return {k: getattr(self, k) for k in names if getattr(self, k) is not None}

    def save(self, path: Path) -> None:
        import io

        buffer = io.BytesIO()
        arrays = self._per_patch() | {"patches": self.patches.astype(np.float16)}
        unit = {} if self.radiogrammetry_unit is None else {"radiogrammetry_unit": np.array(self.radiogrammetry_unit)}
        np.savez_compressed(buffer, **arrays, **unit, skipped=np.array(self.skipped, dtype=str))
        atomic_write_bytes(path, buffer.getvalue())

    @staticmethod
    def load(path: Path) -> PatchBank:
        with np.load(path, allow_pickle=False) as z:
            return PatchBank(
                z["patches"].astype(np.float32),
                z["bones"],
                z["subjects"],
                z["labels"],
                z["splits"],
                z["images"],
                list(z["skipped"]),
                z["radiogrammetry"] if "radiogrammetry" in z.files else None,
                str(z["radiogrammetry_unit"]) if "radiogrammetry_unit" in z.files else None,
            )


def letterboxed(pixels: np.ndarray, size: int) -> np.ndarray:
    """The image scaled to fit a size × size square, centred, zeros around it."""
    h, w = pixels.shape
    scale = size / max(h, w)
    small = cv2.resize(pixels, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    out = np.zeros((size, size), np.float32)
    y, x = (size - small.shape[0]) // 2, (size - small.shape[1]) // 2
    out[y : y + small.shape[0], x : x + small.shape[1]] = small
    return out


def is_raw(bank: PatchBank) -> bool:
    return len(bank.bones) > 0 and bool((bank.bones == WHOLE).all())


def pretraining_inputs(bank: PatchBank, size: int, seed: int) -> PatchBank:
    """What pretraining sees: bone patches as they are; for a raw bank, 7 random squares of every radiograph
    (drawn with `seed`, at `size`)."""
    if not is_raw(bank):
        return bank
    rng = np.random.default_rng(seed)
    squares = np.concatenate([raw_patches(_content(image), size, rng) for image in bank.patches])
    repeated = bank.select(np.repeat(np.arange(len(bank.patches)), RAW_PATCHES))
    return replace(repeated, patches=squares, bones=np.full(len(squares), "raw"))


def _content(image: np.ndarray) -> np.ndarray:
    """The radiograph inside its letterbox (the rows and columns that are not all zero)."""
    rows, cols = np.flatnonzero(image.any(1)), np.flatnonzero(image.any(0))
    return image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] if len(rows) and len(cols) else image


def probe_inputs(bank: PatchBank, size: int) -> PatchBank:
    """What the probe sees: bone patches as they are; for a raw bank, each whole radiograph at `size`."""
    if not is_raw(bank) or bank.patches.shape[-1] == size:
        return bank
    whole = np.stack([cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA) for image in bank.patches])
    return replace(bank, patches=whole.astype(np.float32))


def raw_patches(pixels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """7 random squares (a quarter of the shorter side) of a radiograph, resized to `size`."""
    h, w = pixels.shape
    side = max(8, min(h, w) // 4)
    out = []
    for _ in range(RAW_PATCHES):
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        out.append(cv2.resize(pixels[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_AREA))
    return np.stack(out).astype(np.float32)


def build_patch_bank(
    manifest: str | Path,
    size: int,
    source: str = "patches",
    segmenter=None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> PatchBank:
    """Patches of every usable image in a manifest; `segmenter` (a LoadedSegmenter) is needed for patches. The
    images are segmented `SEGMENT_BATCH` at a time, with `BANK_SAMPLES` latent samples per module
    (segmentation/batch.py)."""
    if source not in PATCH_INPUTS:
        raise ValueError(f"unknown input {source!r}; choose patches or raw")
    cohort = read_manifest(manifest, seed=seed)
    rows: dict[str, list] = {k: [] for k in ("patches", "bones", "subjects", "labels", "splits", "images", "rg")}
    units: set[str] = set()
    skipped: list[str] = []
    readable = _readable(cohort.rows, skipped)
    while chunk := list(islice(readable, SEGMENT_BATCH)):
        for (k, row, image), (stack, names, indices) in zip(chunk, _patch_stacks(chunk, source, size, segmenter)):
            if progress:
                progress(k + 1, len(cohort.rows))
            if not names:
                skipped.append(f"line {row.line}: the segmenter found no bone in {row.image.name}")
                continue
            rows["patches"].append(stack)
            rows["bones"] += names
            rows["subjects"] += [row.subject_id] * len(names)
            rows["labels"] += [-1 if row.label is None else row.label] * len(names)
            rows["splits"] += [row.split] * len(names)
            rows["images"] += [row.image.name] * len(names)
            rows["rg"] += [indices] * len(names)
            units.add(length_unit(image.pixel_spacing_mm))
    if not rows["patches"]:
        raise OsteoError(f"no usable image in {manifest}: " + "; ".join(skipped[:3]))
    return PatchBank(
        np.concatenate(rows["patches"]),
        *(np.array(rows[k]) for k in ("bones", "subjects", "labels", "splits", "images")),
        skipped,
        None if source == "raw" else np.array(rows["rg"], np.float32),
        None if source == "raw" else (units.pop() if len(units) == 1 else "mixed"),
    )


def _readable(rows, skipped: list[str]):
    """(position, row, Radiograph) of each manifest row whose image loads; the others are noted in `skipped`."""
    for k, row in enumerate(rows):
        try:
            yield k, row, load_radiograph(row.image)
        except OsteoError as exc:
            skipped.append(f"line {row.line}: {exc}")


def _patch_stacks(chunk: list, source: str, size: int, segmenter):
    """(patches, bone names, radiogrammetry features) of each (position, row, Radiograph) in `chunk`: its bones
    and their indices, or the whole letterboxed image and None."""
    if source == "raw":
        return [(letterboxed(image.pixels, RAW_SCALE * size)[None], [WHOLE], None) for *_, image in chunk]
    from ..segmentation.batch import label_maps

    out = []
    for (*_, image), labels in zip(
        chunk, label_maps([image.pixels for *_, image in chunk], segmenter, samples=BANK_SAMPLES)
    ):
        spacing = image.pixel_spacing_mm[0] if image.pixel_spacing_mm else None
        found = bone_patches(image.pixels, labels, size, pixel_spacing_mm=spacing)
        if not found.patches:
            out.append((None, [], None))
            continue
        indices = feature_vector(measure_bones(bone_bright(image.pixels, labels), labels, spacing))
        out.append((found.stack(), found.names, indices))
    return out


def cached_patch_bank(
    manifest: str | Path,
    size: int,
    source: str,
    segmenter_path: str | Path | None,
    cache_dir: str | Path,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> PatchBank:
    """The manifest's patch bank, from `cache_dir` when the manifest, size, input and segmenter match, else
    built (segmenting every image) and cached. Its `skipped` lists the images that could not be used."""
    from ..segmentation.predict import load_segmenter

    segmenter = load_segmenter(segmenter_path) if source == "patches" else None
    cached = Path(cache_dir) / bank_cache_name(manifest, size, source, segmenter.card if segmenter else None)
    if cached.exists():
        return PatchBank.load(cached)
    bank = build_patch_bank(manifest, size, source, segmenter, seed, progress=progress)
    bank.save(cached)
    return bank


def cached_bone_banks(cache_dir: str | Path) -> list[PatchBank]:
    """Every bone-patch bank an experiment cached in `cache_dir`, fewest subjects first (an internal cohort,
    then a larger external one, as the benches that read a finished experiment take them). Raises ConfigError
    when there is none."""
    files = sorted(Path(cache_dir).glob("patches-patches-*.npz"))
    if not files:
        raise ConfigError(f"no cached bone-patch bank in {cache_dir}")
    return sorted((PatchBank.load(f) for f in files), key=lambda bank: len(np.unique(bank.subjects)))


def bank_cache_name(manifest: str | Path, size: int, source: str, segmenter_card: SegmenterCard | None) -> str:
    """A file name that changes with the manifest's content, the patch size, the input and the segmenter."""
    digest = hashlib.sha256(Path(manifest).read_bytes())
    made_by = f"{segmenter_card.command}|{_blank(segmenter_card.epoch)}|{BANK_SAMPLES}" if segmenter_card else "|"
    if segmenter_card and segmenter_card.background_logit_offset:  # same run, other label maps
        made_by += f"|{segmenter_card.background_logit_offset:.6f}"
    kept = "whole x4" if source == "raw" else "radiogrammetry " + ",".join(FEATURES)
    digest.update(f"{size}|{source}|{kept}|{made_by}".encode())
    return f"patches-{source}-{size}-{digest.hexdigest()[:12]}.npz"


def _blank(value) -> str:
    return "" if value is None else str(value)
