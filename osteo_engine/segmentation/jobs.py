"""The segmentation jobs (`osteo segment train|predict|evaluate|agreement`): one typed request each, one
function each. The CLI and the app call these and nothing below them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..events import CancelToken, Events, ignore
from ..registry import REFINERS
from ..storage import atomic_write_bytes, strict_json
from .evaluate import Evaluation, evaluate_segmenter, rater_agreement
from .train import TrainResult, segment_preset, train_segmenter

Progress = Callable[[int, int], None] | None


@dataclass(frozen=True, kw_only=True)
class SegmentTrainRequest:
    data: tuple[Path, ...]  # annotation project folders or manifest CSVs
    out: Path  # run folder
    preset: str = "cpu-small"  # registry.PRESETS
    epochs: int | None = None  # None: the preset's, as for every field below
    seed: int | None = None
    lr: float | None = None
    trunk_lr_scale: float | None = None  # the U-Net's learning rate as a share of the heads' (0–1]
    anneal_fraction: float | None = None  # share of training by whose end γ has risen to 1
    background_weight: float | None = None  # the background's weight in the cross-entropy (0–1]
    hold_fraction: float | None = None  # share of training for which γ stays at γ0 first
    samples: int | None = None  # S, each module's samples per training image
    module_cap: float | None = None  # the most of a rater's mass one module's samples may take (1: MoSE's)
    module_share: float | None = None  # the most of all the raters' mass one module's samples may take (1: MoSE's)
    latent_size: int | None = None  # L, each module's Gaussian latent; 2^L ≥ K puts every prior mean on a corner
    init: Path | None = None  # warm start from a segmenter of the preset's architecture
    select_by: str = "ged"  # registry.CHECKPOINT_SELECTION
    repeat: tuple[int, ...] | None = None  # per data source, how often its training images occur in an epoch
    input_size: tuple[int, int] | None = None  # network input (width, height), pixels
    resume: bool = False
    command: str = ""


def segment_train_job(
    request: SegmentTrainRequest, events: Events = ignore, cancel: CancelToken | None = None
) -> TrainResult:
    """Train the mixture segmenter as `request` says; returns a TrainResult. Raises ConfigError for unusable
    settings or data, `Cancelled` when `cancel` is set (the last epoch's checkpoint stays; resume continues)."""
    config = segment_preset(
        request.preset,
        epochs=request.epochs,
        seed=request.seed,
        lr=request.lr,
        trunk_lr_scale=request.trunk_lr_scale,
        anneal_fraction=request.anneal_fraction,
        background_weight=request.background_weight,
        hold_fraction=request.hold_fraction,
        samples=request.samples,
        module_cap=request.module_cap,
        module_share=request.module_share,
        latent_size=request.latent_size,
        init=str(request.init) if request.init else None,
        select_by=request.select_by,
        repeats=request.repeat or None,
        input_size=request.input_size or None,
    )
    return train_segmenter(
        list(request.data),
        request.out,
        config,
        resume=request.resume,
        command=request.command,
        events=events,
        cancel=cancel,
    )


@dataclass(frozen=True, kw_only=True)
class PredictRequest:
    images: tuple[Path, ...]  # radiographs
    out: Path  # folder for each image's maps and JSON summary (predict_images lists them)
    model: Path | None = None  # a segmenter .safetensors; None: the bundled one
    samples: int = 4  # samples per module
    anatomical_order: bool = False  # one identity per metacarpal part, in order across the hand
    refine: str = "none"  # registry.REFINERS: "sam" redraws each bone with LiteMedSAM from the network's box
    save_samples: bool = False  # also every sample's label map, under samples/
    second_opinion: bool = False  # also score the map against LiteMedSAM's redraw (second_opinion.py)


@dataclass(frozen=True)
class PredictResult:
    out: Path
    results: dict[str, dict] = field(default_factory=dict)  # image file name -> its JSON summary

    def to_json(self) -> dict:
        return {"results": self.results}


def predict_images(request: PredictRequest, progress: Progress = None) -> PredictResult:
    """Segment every image and write into `request.out`, per image (label maps are PNGs of values 0–7; the
    uncertainty maps are 8-bit, 255 = log 8 nats):

        <stem>_labels.png        the weighted mean's label map
        <stem>_uncertainty.png   total predictive entropy
        <stem>_mi.png            mutual information (where the samples disagree)
        <stem>_error.png         when the model has an error map: P(label wrong), 255 = 1 (error_map.py)
        <stem>_module<k>.png     module k's own label map, k = 1..K
        samples/<stem>_module<k>_sample<j>.png   with save_samples: every sample's label map
        <stem>.json              summary: bones, routing, uncertainty, modules (and samples) with their files

    Raises OsteoError subclasses for an unreadable image or model; files of earlier images stay written."""
    from ..io import load_radiograph
    from .predict import load_segmenter, segment

    segmenter, refiner = load_segmenter(request.model), load_refiner(request.refine)
    result = PredictResult(request.out)
    for k, path in enumerate(request.images):
        seg = segment(
            load_radiograph(path).pixels,
            segmenter,
            samples=request.samples,
            anatomical_order=request.anatomical_order,
            refine=refiner,
            second_opinion=load_refiner("sam") if request.second_opinion else None,
            keep_samples=request.save_samples,
        )
        summary = {"image": path.name, **_write_maps(seg, request.out, path.stem), "model": segmenter.card.command}
        atomic_write_bytes(request.out / f"{path.stem}.json", strict_json(summary, indent=2).encode())
        result.results[path.name] = summary
        if progress:
            progress(k + 1, len(request.images))
    return result


def _write_maps(seg, out: Path, stem: str) -> dict:
    """Write one segmentation's PNGs; its summary, with each module's and sample's file (relative to out)."""
    import numpy as np

    from ..sheets import write_png
    from .predict import entropy_png

    write_png(seg.labels, out / f"{stem}_labels.png")
    write_png(entropy_png(seg.entropy), out / f"{stem}_uncertainty.png")
    write_png(entropy_png(seg.mutual_information), out / f"{stem}_mi.png")
    if seg.error is not None:
        write_png(np.round(seg.error * 255).astype(np.uint8), out / f"{stem}_error.png")
    summary = seg.summary()
    for k, (module, entry) in enumerate(zip(seg.modules, summary["modules"]), start=1):
        entry["labels"] = f"{stem}_module{k}.png"
        write_png(module.labels, out / entry["labels"])
    per_module = len(seg.samples) // max(1, len(seg.modules))
    if seg.samples:
        summary["samples"] = []
    for j, sample in enumerate(seg.samples):
        name = f"samples/{stem}_module{sample.module + 1}_sample{j % per_module + 1}.png"
        write_png(sample.labels, out / name)
        summary["samples"].append({"module": sample.module + 1, "weight": round(sample.weight, 6), "labels": name})
    return summary


@dataclass(frozen=True, kw_only=True)
class EvaluateRequest:
    data: Path  # manifest CSV whose folder holds the annotation project
    split: str = "val"
    model: Path | None = None  # None: the bundled segmenter
    landmarks: Path | None = None  # atlas landmark CSV, for the landmark checks
    samples: int = 4
    refine: str = "none"
    anatomical_order: bool = False
    truth: bool = False  # score against a phantom cohort's true label maps instead of its raters' maps
    second_opinion: bool = False  # also rank the images by the scores made with LiteMedSAM (second_opinion.py)
    command: str = ""  # recorded in the result, so that a model card says how its figures were made


def evaluate_job(request: EvaluateRequest, progress: Progress = None) -> dict:
    """Dice per bone, bones found and (with landmarks) landmark checks of a segmenter on the manifest's split,
    as a summary dict with the command. Raises ConfigError for an unusable model or split."""
    from .predict import load_segmenter

    evaluation = evaluate_segmenter(
        load_segmenter(request.model),
        request.data,
        request.split,
        request.landmarks,
        request.samples,
        request.anatomical_order,
        load_refiner(request.refine),
        progress=progress,
        against_truth=request.truth,
        second_opinion=load_refiner("sam") if request.second_opinion else None,
    )
    return _with_command(evaluation, request.command)


@dataclass(frozen=True, kw_only=True)
class AgreementRequest:
    data: Path  # manifest CSV whose folder holds the annotation project
    split: str = "test"
    truth: bool = False  # each rater against the phantom's true label maps
    command: str = ""


def agreement_job(request: AgreementRequest) -> dict:
    """Dice between the raters of the split (or each rater against the truth): the ceiling for a model scored
    against them. Raises ConfigError when no image has maps to compare."""
    return _with_command(rater_agreement(request.data, request.split, request.truth), request.command)


def _with_command(evaluation: Evaluation, command: str) -> dict:
    return {**evaluation.summary(), "command": command}


_REFINERS: dict = {}


def load_refiner(kind: str):
    """The SAM prompter that `refine` names ("sam": LiteMedSAM, loaded once per process), or None for "none".
    Raises ConfigError for a name not in registry.REFINERS."""
    if kind not in REFINERS:
        raise ConfigError(f"unknown refiner {kind!r}; choose one of {', '.join(REFINERS)}.")
    if kind == "none":
        return None
    if kind not in _REFINERS:
        from ..sam import BonePrompter, load_sam

        _REFINERS[kind] = BonePrompter(load_sam("litemedsam"))
    return _REFINERS[kind]


__all__ = [
    "AgreementRequest",
    "EvaluateRequest",
    "PredictRequest",
    "PredictResult",
    "SegmentTrainRequest",
    "TrainResult",
    "agreement_job",
    "evaluate_job",
    "predict_images",
    "segment_train_job",
]
